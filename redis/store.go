package redis

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/redis/rueidis"

	"github.com/sessiond/sessiond"
)

// Defaults of Options.
const (
	DefaultTimeout          = 100 * time.Millisecond
	DefaultCacheTTL         = time.Minute
	DefaultCacheSize        = 32 << 20
	DefaultConnWriteTimeout = 2 * time.Second
	// keepAlive is how often rueidis pings a connection it has heard
	// nothing from; with ConnWriteTimeout it bounds how long a silently
	// dead connection (and the cache bound to it) is trusted.
	keepAlive = time.Second
)

// Options configure a Store. Only URL is required.
type Options struct {
	// URL is redis://[user:pass@]host:port[/db] or rediss://... for TLS.
	// A comma-separated list of seed nodes, redis://h1:p1,h2:p2,h3:p3,
	// means Redis Cluster (database 0 only). A single address of a
	// Cluster node works too: the client discovers the cluster.
	URL string

	// Strict makes Get read Redis on every call instead of the client-side
	// cache, so a revocation on any instance is seen by the next request
	// everywhere, at the cost of a round trip per request.
	Strict bool

	// Timeout is the deadline of each Redis call (default 100ms).
	Timeout time.Duration

	// CacheTTL bounds how long a session read through the client-side
	// cache is kept (default 1 minute). Invalidations normally drop it
	// within a millisecond of any change; the TTL only limits memory.
	CacheTTL time.Duration

	// CacheSize is the client-side cache size of each connection in bytes
	// (default 32 MiB; rueidis's own default is 128 MiB).
	CacheSize int

	// ConnWriteTimeout is how long a connection may go without an answer
	// before it is closed and its cache dropped (default 2s).
	ConnWriteTimeout time.Duration

	// TLSConfig replaces the TLS settings that a rediss:// URL implies.
	TLSConfig *tls.Config

	// ClientName is sent as CLIENT SETNAME (default "sessiond").
	ClientName string

	// ReplicaAcks is how many replicas must confirm every revocation and
	// refresh rotation before it succeeds (default 0: none are waited
	// for). With N > 0, each such call waits (WAIT N, within Timeout) on
	// the connection that wrote, and fails wrapping
	// sessiond.ErrNotAcknowledged (an ErrUnavailable) when fewer confirm:
	// a success then survives the failover of the master. Sync and
	// Writable wait the same way. See acks.go.
	ReplicaAcks int
}

// Store is a sessiond.SessionStore in Redis (single node or Cluster). It is
// safe for concurrent use. See the package documentation for the key
// layout and how the client-side cache is kept honest.
type Store struct {
	client   rueidis.Client
	strict   bool
	timeout  time.Duration
	cacheTTL time.Duration
	recent   *recent
	cluster  bool
	acks     int64

	// afterPageScan, when set (by tests only), runs in ListPage between
	// its scan of the sessions' times and its read of the page.
	afterPageScan func()
	// afterEmptyRead, afterIntent and afterSecondRead, when set (by tests
	// only), run in Pending of an empty queue between its steps.
	afterEmptyRead, afterIntent, afterSecondRead func()
}

var _ sessiond.SessionStore = (*Store)(nil)

// New connects to Redis and returns a Store. It fails, wrapping
// sessiond.ErrUnavailable, when Redis does not answer. New does not run
// Check; callers decide whether to refuse or warn.
func New(ctx context.Context, o Options) (*Store, error) {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.CacheTTL <= 0 {
		o.CacheTTL = DefaultCacheTTL
	}
	if o.CacheSize <= 0 {
		o.CacheSize = DefaultCacheSize
	}
	if o.ConnWriteTimeout <= 0 {
		o.ConnWriteTimeout = DefaultConnWriteTimeout
	}
	if o.ClientName == "" {
		o.ClientName = "sessiond"
	}
	opt, err := clientOption(o)
	if err != nil {
		return nil, err
	}
	// Connect in the background so that ctx bounds the wait.
	type result struct {
		c   rueidis.Client
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := rueidis.NewClient(opt)
		ch <- result{c, err}
	}()
	var r result
	select {
	case r = <-ch:
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.c != nil {
				r.c.Close()
			}
		}()
		return nil, fmt.Errorf("redis: connect: %w: %w", sessiond.ErrUnavailable, ctx.Err())
	}
	if r.err != nil {
		return nil, fmt.Errorf("redis: connect: %w: %w", sessiond.ErrUnavailable, r.err)
	}
	s := &Store{
		client:   r.c,
		strict:   o.Strict,
		timeout:  o.Timeout,
		cacheTTL: o.CacheTTL,
		recent:   newRecent(2*keepAlive + o.ConnWriteTimeout + time.Second),
		cluster:  r.c.Mode() == rueidis.ClientModeCluster,
		acks:     int64(max(o.ReplicaAcks, 0)),
	}
	return s, nil
}

// clientOption turns Options into rueidis options. rueidis.ParseURL takes
// one address, so a seed list is split here.
func clientOption(o Options) (rueidis.ClientOption, error) {
	scheme, rest, ok := strings.Cut(o.URL, "://")
	if !ok || rest == "" {
		return rueidis.ClientOption{}, fmt.Errorf("redis: invalid URL %q: want redis://host:port", redactURL(o.URL))
	}
	authority, tail := rest, ""
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		authority, tail = rest[:i], rest[i:]
	}
	userinfo, hosts := "", authority
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		userinfo, hosts = authority[:i+1], authority[i+1:]
	}
	addrs := strings.Split(hosts, ",")
	opt, err := rueidis.ParseURL(scheme + "://" + userinfo + addrs[0] + tail)
	if err != nil {
		return opt, fmt.Errorf("redis: invalid URL %q: %w", redactURL(o.URL), err)
	}
	if len(addrs) > 1 {
		if opt.SelectDB != 0 {
			return opt, fmt.Errorf("redis: invalid URL %q: Redis Cluster has only database 0", redactURL(o.URL))
		}
		opt.InitAddress = opt.InitAddress[:0]
		for _, a := range addrs {
			a = strings.TrimSpace(a)
			if a == "" {
				return opt, fmt.Errorf("redis: invalid URL %q: empty seed address", redactURL(o.URL))
			}
			if _, _, err := net.SplitHostPort(a); err != nil {
				a = net.JoinHostPort(a, "6379")
			}
			opt.InitAddress = append(opt.InitAddress, a)
		}
		// Spread the seeds' topology queries over the nodes.
		opt.ShuffleInit = true
	}
	if o.TLSConfig != nil {
		opt.TLSConfig = o.TLSConfig
	}
	opt.ClientName = o.ClientName
	opt.CacheSizeEachConn = o.CacheSize
	opt.ConnWriteTimeout = o.ConnWriteTimeout
	opt.Dialer.KeepAlive = keepAlive
	if opt.Dialer.Timeout == 0 {
		opt.Dialer.Timeout = o.ConnWriteTimeout
	}
	// OPTIN: Redis tracks only the keys read with DoCache (sessions that
	// Get looked up), not every key written, so each instance receives
	// invalidations for the sessions it holds and nothing else.
	opt.ClientTrackingOptions = []string{"OPTIN"}
	// Strict mode never reads through the cache: do not ask Redis to track.
	opt.DisableCache = o.Strict
	return opt, nil
}

// redactURL hides the password of a URL for error messages.
func redactURL(u string) string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return u
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return u
	}
	user, _, hasPass := strings.Cut(rest[:at], ":")
	if !hasPass {
		return u
	}
	return scheme + "://" + user + ":xxxxx" + rest[at:]
}

// Close closes the connections. Subscriptions of brokers on this store end.
func (s *Store) Close() { s.client.Close() }

// Ping reports whether Redis answers.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := s.deadline(ctx)
	defer cancel()
	return wrap(s.client.Do(ctx, s.client.B().Ping().Build()).Error(), "ping")
}

// deadline bounds ctx by the store's Timeout.
func (s *Store) deadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if d, ok := ctx.Deadline(); ok && time.Until(d) <= s.timeout {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.timeout)
}

// unavailableErrors are the Redis error replies that mean the store cannot
// answer now (rather than a bug in the request).
var unavailableErrors = []string{
	"CLUSTERDOWN", "LOADING", "MASTERDOWN", "TRYAGAIN", "READONLY", "OOM",
	"BUSY", "NOREPLICAS", "MISCONF", "NOAUTH", "WRONGPASS", "NOPERM",
}

// wrap adds context to err: rueidis.Nil becomes sessiond.ErrNotFound;
// network errors, deadlines, a closed client and replies such as
// CLUSTERDOWN or LOADING wrap sessiond.ErrUnavailable.
func wrap(err error, op string) error {
	if err == nil {
		return nil
	}
	if rueidis.IsRedisNil(err) {
		return fmt.Errorf("redis: %s: %w", op, sessiond.ErrNotFound)
	}
	if re, ok := rueidis.IsRedisErr(err); ok {
		msg := re.Error()
		for _, p := range unavailableErrors {
			if strings.HasPrefix(msg, p) {
				return fmt.Errorf("redis: %s: %w: %w", op, sessiond.ErrUnavailable, err)
			}
		}
		return fmt.Errorf("redis: %s: %w", op, err)
	}
	return fmt.Errorf("redis: %s: %w: %w", op, sessiond.ErrUnavailable, err)
}

// notFound is the error of an operation on a missing session.
func notFound(op string) error { return fmt.Errorf("redis: %s: %w", op, sessiond.ErrNotFound) }

var errCodeUnexpected = errors.New("unexpected script reply")
