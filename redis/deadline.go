package redis

import (
	"context"
	"sync"
	"time"
)

// lazyDeadline is a context with a timeout that starts, and whose timer is
// created, only when something asks for its deadline or waits on it. A Get
// served from the client-side cache never looks at its context, so it skips
// context.WithTimeout's clock read, timer and allocations (a third of a
// cached Get's cost); a Get that goes to Redis asks at once and gets the
// full timeout for its round trip.
type lazyDeadline struct {
	parent  context.Context
	timeout time.Duration

	once   sync.Once
	ctx    context.Context
	cancel context.CancelFunc
}

func (c *lazyDeadline) init() {
	c.once.Do(func() { c.ctx, c.cancel = context.WithTimeout(c.parent, c.timeout) })
}

func (c *lazyDeadline) Deadline() (time.Time, bool) { c.init(); return c.ctx.Deadline() }
func (c *lazyDeadline) Done() <-chan struct{}       { c.init(); return c.ctx.Done() }
func (c *lazyDeadline) Err() error                  { c.init(); return c.ctx.Err() }
func (c *lazyDeadline) Value(key any) any           { return c.parent.Value(key) }

// canceled stands in for the context of a call that is over.
var canceled = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// release ends the call: it frees the timer, if one was made, and anything
// that looks at the context afterwards finds it canceled.
func (c *lazyDeadline) release() {
	c.once.Do(func() { c.ctx = canceled })
	if c.cancel != nil {
		c.cancel()
	}
}

// lazyTimeout bounds ctx by the store's Timeout, for the hot path. The
// caller must call release on the result.
func (s *Store) lazyTimeout(ctx context.Context) *lazyDeadline {
	return &lazyDeadline{parent: ctx, timeout: s.timeout}
}
