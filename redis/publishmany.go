package redis

import (
	"context"
	"fmt"

	"github.com/redis/rueidis"

	"github.com/sessiond/sessiond"
)

// publishBatch bounds the commands of one pipeline, each pipeline getting
// its own deadline.
const publishBatch = 1000

// PublishMany implements sessiond.Broker, pipelined: signing out every
// other device of a user with 10,000 sessions otherwise waits for 10,000
// SPUBLISH round trips one after the other, far longer than the revoke
// itself (docs/benchmarks.md has the figures). Events Redis did not take are delivered to this process's subscribers directly,
// and the first error is returned.
func (b *Broker) PublishMany(ctx context.Context, events []sessiond.Event) error {
	c := b.s.client
	var first error
	for len(events) > 0 {
		batch := events[:min(len(events), publishBatch)]
		events = events[len(batch):]
		cmds := make(rueidis.Commands, 0, len(batch))
		sent := make([]sessiond.Event, 0, len(batch))
		for _, e := range batch {
			msg, err := encodeEvent(e)
			if err != nil {
				if first == nil {
					first = fmt.Errorf("redis: publish: %w", err)
				}
				continue
			}
			cmds = append(cmds, c.B().Spublish().Channel(EventsChannel(e.UserID)).Message(string(msg)).Build())
			sent = append(sent, e)
		}
		dctx, cancel := b.s.deadline(ctx)
		for i, r := range c.DoMulti(dctx, cmds...) {
			if err := r.Error(); err != nil {
				b.local.Deliver(sent[i])
				if first == nil {
					first = wrap(err, "publish")
				}
			}
		}
		cancel()
	}
	return first
}
