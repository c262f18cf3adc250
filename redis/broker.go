package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/sessiond/sessiond"
)

// Broker is a sessiond.Broker over Redis sharded pub/sub, so events cross
// instances: Publish sends SPUBLISH to the user's EventsChannel, and each
// instance holds one SSUBSCRIBE per user that has subscribers on it and
// hands what arrives to its local subscribers. Sharded channels live on
// the user's slot, so on Cluster an event goes to one shard, not to every
// node. Needs Redis 7.
type Broker struct {
	s     *Store
	local *sessiond.LocalBroker

	mu    sync.Mutex
	users map[string]*userSub
}

var _ sessiond.Broker = (*Broker)(nil)

// userSub is the Redis subscription of one user's channel on this process.
type userSub struct {
	refs   int
	cancel context.CancelFunc
	ready  chan struct{} // closed at the first confirmed SSUBSCRIBE
	done   chan struct{} // closed when the receive loop has ended
}

// NewBroker returns a Broker that uses s's connections.
func NewBroker(s *Store) *Broker {
	return &Broker{s: s, local: sessiond.NewLocalBroker(), users: map[string]*userSub{}}
}

// wireEvent is an event on the channel, JSON-encoded. The user is the
// channel's; times are unix ms.
type wireEvent struct {
	Type      sessiond.EventType `json:"type"`
	SessionID string             `json:"session_id"`
	Reason    sessiond.Reason    `json:"reason,omitempty"`
	Session   *wireSession       `json:"s,omitempty"`
}

type wireSession struct {
	DeviceID    string `json:"di,omitempty"`
	Device      string `json:"d,omitempty"`
	DeviceClass string `json:"c,omitempty"`
	Name        string `json:"n,omitempty"`
	IPAddress   string `json:"i,omitempty"`
	Location    string `json:"l,omitempty"`
	CreatedAt   int64  `json:"t"`
	LastActive  int64  `json:"a"`
	ExpiresAt   int64  `json:"x"`
	Generation  uint64 `json:"g"`
	RotatedAt   int64  `json:"r"`
}

func encodeEvent(e sessiond.Event) ([]byte, error) {
	w := wireEvent{Type: e.Type, SessionID: e.SessionID, Reason: e.Reason}
	if s := e.Session; s != nil {
		w.Session = &wireSession{
			DeviceID: s.DeviceID, Device: s.Device, DeviceClass: s.DeviceClass, Name: s.Name,
			IPAddress: s.IPAddress, Location: s.Location,
			CreatedAt: s.CreatedAt.UnixMilli(), LastActive: s.LastActive.UnixMilli(),
			ExpiresAt: s.ExpiresAt.UnixMilli(), Generation: s.Generation, RotatedAt: s.RotatedAt.UnixMilli(),
		}
	}
	return json.Marshal(w)
}

func decodeEvent(userID string, b []byte) (sessiond.Event, error) {
	var w wireEvent
	if err := json.Unmarshal(b, &w); err != nil {
		return sessiond.Event{}, err
	}
	e := sessiond.Event{Type: w.Type, UserID: userID, SessionID: w.SessionID, Reason: w.Reason}
	if ws := w.Session; ws != nil {
		e.Session = &sessiond.Session{
			ID: w.SessionID, UserID: userID, DeviceID: ws.DeviceID, Device: ws.Device,
			DeviceClass: ws.DeviceClass, Name: ws.Name, IPAddress: ws.IPAddress, Location: ws.Location,
			CreatedAt: time.UnixMilli(ws.CreatedAt).UTC(), LastActive: time.UnixMilli(ws.LastActive).UTC(),
			ExpiresAt: time.UnixMilli(ws.ExpiresAt).UTC(), Generation: ws.Generation,
			RotatedAt: time.UnixMilli(ws.RotatedAt).UTC(),
		}
	}
	return e, nil
}

// Publish implements sessiond.Broker. The event reaches this process's
// subscribers through Redis like everyone else's; if Redis cannot take it,
// they get it directly and the error is returned.
func (b *Broker) Publish(ctx context.Context, e sessiond.Event) error {
	msg, err := encodeEvent(e)
	if err != nil {
		return fmt.Errorf("redis: publish: %w", err)
	}
	ctx, cancel := b.s.deadline(ctx)
	defer cancel()
	c := b.s.client
	if err := c.Do(ctx, c.B().Spublish().Channel(EventsChannel(e.UserID)).Message(string(msg)).Build()).Error(); err != nil {
		b.local.Deliver(e)
		return wrap(err, "publish")
	}
	return nil
}

// subscribeWait bounds how long Subscribe waits for Redis to confirm the
// subscription of a user that had none on this process.
const subscribeWait = 2 * time.Second

// Subscribe implements sessiond.Broker. It returns once Redis has confirmed
// the user's subscription, so an event published anywhere after it returns
// is delivered.
func (b *Broker) Subscribe(ctx context.Context, userID string) (<-chan sessiond.Event, func(), error) {
	var us *userSub
	for {
		b.mu.Lock()
		us = b.users[userID]
		if us != nil && us.refs == 0 {
			// The last subscriber just left and the loop is unsubscribing;
			// a new SSUBSCRIBE must not race its SUNSUBSCRIBE.
			b.mu.Unlock()
			select {
			case <-us.done:
				continue
			case <-ctx.Done():
				return nil, nil, fmt.Errorf("redis: subscribe: %w: %w", sessiond.ErrUnavailable, ctx.Err())
			}
		}
		if us == nil {
			loopCtx, cancel := context.WithCancel(context.Background())
			us = &userSub{cancel: cancel, ready: make(chan struct{}), done: make(chan struct{})}
			b.users[userID] = us
			go b.receive(loopCtx, userID, us)
		}
		us.refs++
		b.mu.Unlock()
		break
	}

	wait := time.NewTimer(subscribeWait)
	defer wait.Stop()
	select {
	case <-us.ready:
	case <-ctx.Done():
		b.release(us)
		return nil, nil, fmt.Errorf("redis: subscribe: %w: %w", sessiond.ErrUnavailable, ctx.Err())
	case <-wait.C:
		b.release(us)
		return nil, nil, fmt.Errorf("redis: subscribe: %w: no confirmation within %s", sessiond.ErrUnavailable, subscribeWait)
	}
	ch, unsub, err := b.local.Subscribe(ctx, userID)
	if err != nil {
		b.release(us)
		return nil, nil, err
	}
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			unsub()
			b.release(us)
		})
	}, nil
}

// release drops one reference to us; the last one ends the receive loop,
// which removes us from b.users when it has unsubscribed.
func (b *Broker) release(us *userSub) {
	b.mu.Lock()
	us.refs--
	last := us.refs == 0
	b.mu.Unlock()
	if last {
		us.cancel()
	}
}

// receive keeps userID's channel subscribed until ctx ends, resubscribing
// after a lost connection or a slot migration.
func (b *Broker) receive(ctx context.Context, userID string, us *userSub) {
	defer func() {
		b.mu.Lock()
		if b.users[userID] == us {
			delete(b.users, userID)
		}
		b.mu.Unlock()
		close(us.done)
	}()
	c := b.s.client
	channel := EventsChannel(userID)
	var readyOnce sync.Once
	rctx := rueidis.WithOnSubscriptionHook(ctx, func(s rueidis.PubSubSubscription) {
		if s.Kind == "ssubscribe" {
			readyOnce.Do(func() { close(us.ready) })
		}
	})
	rctx = rueidis.WithOnReceiveReturnHook(rctx, func(err error, cc rueidis.CommandClient) error {
		if errors.Is(err, context.Canceled) {
			uctx, cancel := context.WithTimeout(context.Background(), b.s.timeout)
			defer cancel()
			_ = cc.Do(uctx, cc.B().Sunsubscribe().Channel(channel).Build()).Error()
		}
		return err
	})
	backoff := 10 * time.Millisecond
	for {
		err := c.Receive(rctx, c.B().Ssubscribe().Channel(channel).Build(), func(m rueidis.PubSubMessage) {
			if e, err := decodeEvent(userID, []byte(m.Message)); err == nil {
				b.local.Deliver(e)
			}
		})
		if ctx.Err() != nil || errors.Is(err, rueidis.ErrClosing) {
			return
		}
		if err == nil { // unsubscribed by a slot migration: subscribe again at once
			backoff = 10 * time.Millisecond
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}
