package sessiond

import (
	"context"
	"encoding/json"
	"time"
)

// Security activity: the user's history, the memory of the devices and
// places they signed in from, and the outbox of messages (webhooks,
// e-mails) that tell of what happened (docs/design.md, "Security
// activity").

// Bounds of what an ActivityStore keeps per user.
const (
	// ActivityKeep is how long a history entry is kept.
	ActivityKeep = 30 * 24 * time.Hour
	// ActivityMax is the most history entries kept per user; older ones
	// go first.
	ActivityMax = 200
	// SeenKeep is how long a device or a country is remembered after the
	// last sign-in from it.
	SeenKeep = 90 * 24 * time.Hour
	// SeenMax is the most devices and countries remembered per user; the
	// least recently seen go first.
	SeenMax = 100
	// DeliveryHorizon is how long a message is retried before it is
	// dropped.
	DeliveryHorizon = 24 * time.Hour
)

// Outbox queues.
const (
	// QueueWebhook holds events for the app's webhook endpoint.
	QueueWebhook = "webhook"
	// QueueMail holds new-sign-in e-mails.
	QueueMail = "mail"
)

// ActivityEntry is one entry of a user's security history as stored: the
// entry as clients see it, and its time.
type ActivityEntry struct {
	At time.Time
	// Data is the entry as clients see it, compact JSON.
	Data json.RawMessage
}

// OutboxMessage is a message waiting in a user's queue for delivery.
type OutboxMessage struct {
	// ID is unique per message and stays the same on every attempt (it is
	// the webhook-id of a webhook).
	ID string
	// Queue is QueueWebhook or QueueMail.
	Queue string
	// Body is what the queue's Sender delivers, compact JSON.
	Body json.RawMessage
	// CreatedAt is when the message was recorded; it is retried until
	// CreatedAt + DeliveryHorizon.
	CreatedAt time.Time
	// Attempts counts the failed deliveries so far.
	Attempts int
	// NextAt is when the message is due (zero: at once).
	NextAt time.Time
}

// Novelty says what was new about a sign-in.
type Novelty struct {
	// First is true when nothing of the user was remembered: their first
	// sign-in (or the first since the memory expired), which is neither
	// from a new device nor from a new location.
	First bool
	// NewDevice is true when the device was not seen within SeenKeep.
	NewDevice bool
	// NewLocation is true when the country was not seen within SeenKeep.
	NewLocation bool
}

// ActivityStore keeps the security activity of users: history, seen
// devices and countries, and the outbox. The SQLite and Redis stores
// implement it (docs/design.md, "Security activity").
//
// The outbox holds, per user and queue, an ordered list of messages. Many
// processes may deliver from the same store: a process leases a user's
// queue, reads its first messages, delivers them in order, and reports
// each as delivered or to be retried. Implementations must be safe for
// concurrent use; every key or row they write expires or is swept.
type ActivityStore interface {
	// Remember records a sign-in of userID at now from device (an opaque
	// identity of the device, never "") and country ("" when unknown),
	// and reports what was new, in one atomic step: NewDevice when device
	// was not seen within SeenKeep, NewLocation when country is not "" and
	// was not seen within SeenKeep, and First, with neither of the other
	// two, when nothing of the user was remembered. It keeps at most
	// SeenMax devices and countries per user, dropping the least recently
	// seen, and forgets the user SeenKeep after their last sign-in.
	Remember(ctx context.Context, userID, device, country string, now time.Time) (Novelty, error)

	// Forget undoes what one Remember of userID made at at added: it
	// removes device (unless "") and country (unless "") from userID's
	// memory, each only while it was last seen exactly at at (to the
	// millisecond), in one atomic step. A device or country seen again
	// later, or seen at at by no Remember, is kept. An unknown user,
	// device or country is no error; Forget is idempotent. It does not
	// bring back what that Remember dropped past SeenMax or SeenKeep.
	Forget(ctx context.Context, userID, device, country string, at time.Time) error

	// Record adds entries to userID's history and msgs to the end of
	// their queues (in order; each due at its NextAt, zero meaning at
	// once), in one atomic step. When it returns nil the record is as
	// durable as the store makes a revocation (with replica
	// acknowledgements: on the replicas) and the user is due for
	// delivery in each queue a message went to. The history keeps the
	// newest ActivityMax entries of the last ActivityKeep.
	Record(ctx context.Context, userID string, entries []ActivityEntry, msgs []OutboxMessage, now time.Time) error

	// Activity returns userID's history entries at or after since, newest
	// first (ties: the later recorded first), at most limit; an unknown
	// user has none (no error).
	Activity(ctx context.Context, userID string, since time.Time, limit int) ([]ActivityEntry, error)

	// Due returns up to n users of queue to visit, the longest due first:
	// every user whose first message is due at or before now (its NextAt,
	// or its recording when NextAt is zero) is among them, unless more
	// than n are; a user whose first message is not due yet may be too
	// (a message recorded behind one waiting for its retry makes the user
	// due; Retry of the first message with its own NextAt puts the user
	// back in its place). A leased user may be among them (Lease then
	// says so).
	Due(ctx context.Context, queue string, now time.Time, n int) ([]string, error)

	// Lease gives owner the queue of userID until until, and reports
	// whether it did: false when another owner holds a lease that has not
	// expired at now. Owner's own lease is extended.
	Lease(ctx context.Context, queue, userID, owner string, now, until time.Time) (bool, error)

	// Unlease ends owner's lease of userID's queue; it does nothing when
	// owner does not hold it. Idempotent.
	Unlease(ctx context.Context, queue, userID, owner string) error

	// Pending returns the first n messages of userID's queue in order,
	// whether due or not. When the queue is empty it is no longer due,
	// with no message recorded meanwhile lost from Due.
	Pending(ctx context.Context, queue, userID string, n int) ([]OutboxMessage, error)

	// Delivered removes message id from userID's queue (delivered, or
	// dropped after DeliveryHorizon). Removing a missing message is not
	// an error.
	Delivered(ctx context.Context, queue, userID, id string) error

	// Retry records a failed delivery of message id: its Attempts become
	// attempts and it, with the user's queue, is due again at next.
	// ErrNotFound when the message is gone.
	Retry(ctx context.Context, queue, userID, id string, attempts int, next time.Time) error

	// QueueStats returns how many messages wait in queue and when the
	// oldest of them was recorded (zero when none). A store may count a
	// bounded sample of the users due; docs/design.md says which.
	QueueStats(ctx context.Context, queue string, now time.Time) (depth int, oldest time.Time, err error)
}

// Sender delivers the messages of one queue: a webhook endpoint, a mail
// server. Send returns nil once the message is delivered; any error means
// it is retried later, with backoff, until DeliveryHorizon has passed. A
// Sender must give up within the context's deadline.
type Sender interface {
	Send(ctx context.Context, userID string, msg OutboxMessage) error
}

// NewSignInMail is the body of a QueueMail message: what the "New sign-in
// to your account" e-mail tells.
type NewSignInMail struct {
	// To is the user's e-mail address when the sign-in happened.
	To       string `json:"to"`
	Username string `json:"username"`
	// Device is the session's device ("Chrome on Windows"), Name its
	// name when it has one.
	Device    string    `json:"device"`
	Name      string    `json:"name,omitempty"`
	Location  string    `json:"location"`
	IPAddress string    `json:"ip_address"`
	At        time.Time `json:"at"`
	// ReportURL is the "not me" link.
	ReportURL string `json:"report_url"`
}
