package sessiond

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Delivery defaults (docs/design.md, "Delivering events").
var (
	// DefaultDeliveryBackoff is the wait after each failed delivery: the
	// last one repeats until DeliveryHorizon.
	DefaultDeliveryBackoff = []time.Duration{
		5 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute, 30 * time.Minute, time.Hour,
	}
)

const (
	defaultDeliveryPoll  = time.Second
	defaultDeliveryLease = time.Minute
	// deliverySendLimit bounds one Send, whatever the Sender's own
	// timeout.
	deliverySendLimit = 30 * time.Second
	// deliveryWorkers is how many users' queues one instance delivers at
	// once per queue; each user's own messages go one at a time.
	deliveryWorkers = 16
	// deliveryBatch is how many messages of one user are read at once.
	deliveryBatch = 16
)

// delivery is the Manager's side of the outbox: who it is to the leases,
// and a wake-up for its own new messages.
type delivery struct {
	owner string
	wakes map[string]chan struct{}
	// userDone, for tests, runs as a worker has delivered what it found of
	// a user and still holds the user busy.
	userDone func(queue, userID string)
}

func newDelivery() delivery {
	return delivery{
		owner: "sd_" + randomID(),
		wakes: map[string]chan struct{}{QueueWebhook: make(chan struct{}, 1), QueueMail: make(chan struct{}, 1)},
	}
}

// wake tells this instance's delivery loops that messages were recorded,
// so that they go out at once instead of at the next poll.
func (d *delivery) wake() {
	for q := range d.wakes {
		d.wakeQueue(q)
	}
}

// wakeQueue wakes the delivery loop of queue.
func (d *delivery) wakeQueue(queue string) {
	select {
	case d.wakes[queue] <- struct{}{}:
	default:
	}
}

// Deliver sends the messages of the outbox until ctx ends: webhooks and
// e-mails, for every queue that has a Sender (Parts.Webhooks, Parts.Mail).
// Every instance runs it: a lease per user and queue makes one instance
// deliver a user's messages at a time, in order. A message is sent until
// its Sender succeeds, waiting DeliveryBackoff between attempts, and
// dropped with a log line once DeliveryHorizon has passed since it was
// recorded. A lease left by an instance that died expires within a
// minute. Deliver returns when ctx ends, after the sends under way.
func (m *Manager) Deliver(ctx context.Context) {
	if !m.recording() {
		return
	}
	var wg sync.WaitGroup
	for q, snd := range m.senders {
		if snd != nil {
			wg.Go(func() { m.deliverQueue(ctx, q, snd) })
		}
	}
	wg.Wait()
}

// deliverQueue polls queue for due users and delivers each one's messages
// in a worker of its own.
func (m *Manager) deliverQueue(ctx context.Context, queue string, snd Sender) {
	poll := m.DeliveryPoll
	if poll <= 0 {
		poll = defaultDeliveryPoll
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		busy = map[string]bool{}
		// again holds the busy users that were due once more while their
		// worker ran: a message recorded as the worker finds the queue
		// empty goes out when it ends, not at the next poll.
		again  = map[string]bool{}
		slots  = make(chan struct{}, deliveryWorkers)
		failed bool // the last Due failed: logged once until it works
	)
	defer wg.Wait()
	for {
		users, err := m.activity.Due(ctx, queue, m.now(), 4*deliveryWorkers)
		switch {
		case err != nil && ctx.Err() == nil && !failed:
			m.Logger.LogAttrs(ctx, slog.LevelWarn, "outbox unreachable: deliveries wait", slog.String("queue", queue), slog.String("err", err.Error()))
			failed = true
		case err == nil:
			failed = false
		}
		for _, u := range users {
			mu.Lock()
			if busy[u] {
				again[u] = true
				mu.Unlock()
				continue
			}
			busy[u] = true
			mu.Unlock()
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			wg.Go(func() {
				defer func() {
					mu.Lock()
					delete(busy, u)
					rerun := again[u]
					delete(again, u)
					mu.Unlock()
					<-slots
					if rerun {
						m.delivery.wakeQueue(queue)
					}
				}()
				m.deliverUser(ctx, queue, snd, u)
				if h := m.delivery.userDone; h != nil {
					h(queue, u)
				}
			})
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-m.delivery.wakes[queue]:
		}
	}
}

// deliverUser delivers userID's messages of queue in order while it holds
// their lease, and stops at the first that fails or is not due.
func (m *Manager) deliverUser(ctx context.Context, queue string, snd Sender, userID string) {
	lease := m.DeliveryLease
	if lease <= 0 {
		lease = defaultDeliveryLease
	}
	owner := m.delivery.owner
	held := false
	defer func() {
		if held {
			if err := m.activity.Unlease(context.WithoutCancel(ctx), queue, userID, owner); err != nil {
				m.Logger.LogAttrs(ctx, slog.LevelWarn, "outbox lease not released", slog.String("queue", queue), slog.String("err", err.Error()))
			}
		}
	}()
	// take renews the lease before each send, so that a slow receiver
	// never lets another instance send the same user's messages at once.
	take := func() bool {
		now := m.now()
		ok, err := m.activity.Lease(ctx, queue, userID, owner, now, now.Add(lease))
		// A Lease that failed may have taken the lease all the same (its
		// answer lost to a cancelled context or a timeout): release it
		// too, or the user waits for it to expire.
		held = held || ok || err != nil
		return err == nil && ok
	}
	for take() {
		msgs, err := m.activity.Pending(ctx, queue, userID, deliveryBatch)
		if err != nil || len(msgs) == 0 {
			return
		}
		for i, msg := range msgs {
			if i > 0 && !take() {
				return
			}
			now := m.now()
			if msg.NextAt.After(now) {
				// Recorded behind a message that waits for its retry:
				// the user is due again when that message is.
				m.retry(ctx, queue, userID, msg, msg.Attempts, msg.NextAt)
				return
			}
			sctx, cancel := context.WithTimeout(ctx, deliverySendLimit)
			err := snd.Send(sctx, userID, msg)
			cancel()
			if err == nil {
				m.observer.Delivered(queue, m.now().Sub(msg.CreatedAt))
				m.delivered(ctx, queue, userID, msg.ID)
				continue
			}
			if ctx.Err() != nil {
				return
			}
			attempts := msg.Attempts + 1
			if !m.now().Before(msg.CreatedAt.Add(DeliveryHorizon)) {
				m.Logger.LogAttrs(ctx, slog.LevelWarn, "outbox message dropped after retrying for 24 h",
					slog.String("queue", queue), slog.String("message_id", msg.ID), slog.String("user_id", userID),
					slog.Int("attempts", attempts), slog.String("err", err.Error()))
				m.observer.Dropped(queue)
				m.delivered(ctx, queue, userID, msg.ID)
				continue
			}
			wait := m.backoff(attempts)
			m.Logger.LogAttrs(ctx, slog.LevelInfo, "outbox delivery failed, retrying",
				slog.String("queue", queue), slog.String("message_id", msg.ID), slog.Int("attempts", attempts),
				slog.Int64("retry_in_ms", wait.Milliseconds()), slog.String("err", err.Error()))
			m.observer.Retried(queue)
			m.retry(ctx, queue, userID, msg, attempts, now.Add(wait))
			return
		}
	}
}

func (m *Manager) delivered(ctx context.Context, queue, userID, id string) {
	if err := m.activity.Delivered(context.WithoutCancel(ctx), queue, userID, id); err != nil {
		// Sent but still queued: it goes again (at least once).
		m.Logger.LogAttrs(ctx, slog.LevelWarn, "outbox message sent but not removed", slog.String("queue", queue), slog.String("message_id", id), slog.String("err", err.Error()))
	}
}

func (m *Manager) retry(ctx context.Context, queue, userID string, msg OutboxMessage, attempts int, next time.Time) {
	if err := m.activity.Retry(context.WithoutCancel(ctx), queue, userID, msg.ID, attempts, next); err != nil {
		m.Logger.LogAttrs(ctx, slog.LevelWarn, "outbox retry not recorded", slog.String("queue", queue), slog.String("message_id", msg.ID), slog.String("err", err.Error()))
	}
}

// backoff is the wait after the attempts-th failed delivery.
func (m *Manager) backoff(attempts int) time.Duration {
	b := m.DeliveryBackoff
	if len(b) == 0 {
		b = DefaultDeliveryBackoff
	}
	return b[min(attempts, len(b))-1]
}

// QueueStats returns how many messages wait in queue (QueueWebhook,
// QueueMail) and how long the oldest has waited, for metrics.
func (m *Manager) QueueStats(ctx context.Context, queue string) (depth int, oldest time.Duration, err error) {
	if !m.recording() {
		return 0, 0, nil
	}
	now := m.now()
	n, first, err := m.activity.QueueStats(ctx, queue, now)
	if err != nil || first.IsZero() {
		return n, 0, err
	}
	return n, now.Sub(first), nil
}
