package sessiond

import (
	"context"
	"sync"
)

// EventType names what happened to a session.
type EventType string

// Event types streamed to a user's open pages.
const (
	EventCreated EventType = "created"
	EventRenamed EventType = "renamed"
	EventRevoked EventType = "revoked"
)

// Event is a change to one of a user's sessions.
type Event struct {
	Type      EventType
	UserID    string
	SessionID string
	// Reason is set for revoked events.
	Reason Reason
	// Session is set for created and renamed events.
	Session *Session
}

// Broker carries session events to subscribers of the same user, on this
// instance or (for shared brokers) on every instance.
type Broker interface {
	// Publish delivers e to the subscribers of e.UserID. It does not block
	// on slow subscribers: a subscriber that cannot keep up misses events.
	Publish(ctx context.Context, e Event) error
	// PublishMany publishes events as Publish does, each in order; a
	// shared broker sends them at once (a revoke-all of 10,000 sessions
	// otherwise waits for 10,000 round trips one after the other). With an
	// error, some events may have been delivered.
	PublishMany(ctx context.Context, events []Event) error
	// Subscribe returns a channel of the user's events and a function that
	// ends the subscription and closes the channel.
	Subscribe(ctx context.Context, userID string) (<-chan Event, func(), error)
}

// LocalBroker is an in-process Broker, for a single instance.
type LocalBroker struct {
	mu   sync.Mutex
	subs map[string]map[chan Event]struct{}
}

var _ Broker = (*LocalBroker)(nil)

// NewLocalBroker returns an empty in-process broker.
func NewLocalBroker() *LocalBroker {
	return &LocalBroker{subs: make(map[string]map[chan Event]struct{})}
}

// Publish implements Broker.
func (b *LocalBroker) Publish(_ context.Context, e Event) error {
	b.Deliver(e)
	return nil
}

// PublishMany implements Broker.
func (b *LocalBroker) PublishMany(_ context.Context, events []Event) error {
	for _, e := range events {
		b.Deliver(e)
	}
	return nil
}

// Deliver hands e to this process's subscribers of e.UserID without
// blocking. Shared brokers call it for events that arrive from elsewhere.
func (b *LocalBroker) Deliver(e Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.subs[e.UserID] {
		select {
		case ch <- e:
		default:
		}
	}
}

// Subscribe implements Broker.
func (b *LocalBroker) Subscribe(_ context.Context, userID string) (<-chan Event, func(), error) {
	ch := make(chan Event, 64)
	b.mu.Lock()
	if b.subs[userID] == nil {
		b.subs[userID] = make(map[chan Event]struct{})
	}
	b.subs[userID][ch] = struct{}{}
	b.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			b.mu.Lock()
			delete(b.subs[userID], ch)
			if len(b.subs[userID]) == 0 {
				delete(b.subs, userID)
			}
			b.mu.Unlock()
			close(ch)
		})
	}, nil
}
