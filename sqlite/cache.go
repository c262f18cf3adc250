package sqlite

import (
	"context"
	"database/sql"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sessiond/sessiond"
)

const (
	// defaultCacheSize bounds the sessions kept in memory (a few hundred
	// bytes each).
	defaultCacheSize = 65536
	// checkEvery is how often, at most, a Get asks for a check of
	// PRAGMA data_version.
	checkEvery = 100 * time.Millisecond
	// trustFor is how long after the start of the last successful check the
	// cache is still used. A write by another process therefore reaches
	// this one's Get within trustFor, well inside the 1 s the design allows;
	// when checks stall (the writer connection is busy), Get reads the
	// database instead.
	trustFor = 500 * time.Millisecond
)

// cacheKey names a cached session: the id together with its owner, so a
// session id paired with another user's id never hits.
type cacheKey struct{ userID, id string }

// sessionCache keeps recently read sessions for Get.
//
// Writes made by this process invalidate it after they commit and before
// they return. A generation counter, bumped by every invalidation, keeps a
// concurrent Get that read the database before the write committed from
// putting its stale copy back: a read only enters the cache if no
// invalidation happened since just before it was made.
//
// Writes made by other processes are noticed through PRAGMA data_version on
// the writer connection. The value changes only when another connection
// commits, so this process's own writes (already invalidated) never flush the
// cache. A change flushes everything.
type sessionCache struct {
	db    *DB
	max   int
	epoch time.Time // anchors monotonic readings

	mu      sync.Mutex
	gen     uint64
	entries map[cacheKey]*sessiond.Session

	// checkedAt is the monotonic time (ns since epoch) at which the last
	// successful data_version check started; 0 means never.
	checkedAt atomic.Int64
	checking  atomic.Bool
	// version and conn are what the last check saw; only the (single)
	// running check touches them.
	version int64
	conn    any
}

// newSessionCache returns an empty cache of at most max sessions, with a
// first data_version reading.
func newSessionCache(ctx context.Context, db *DB, max int) (*sessionCache, error) {
	c := &sessionCache{
		db:      db,
		max:     max,
		epoch:   time.Now(),
		entries: make(map[cacheKey]*sessiond.Session),
	}
	c.checking.Store(true)
	err := c.check(ctx)
	c.checking.Store(false)
	return c, err
}

// now returns the monotonic time since c.epoch, never 0.
func (c *sessionCache) now() int64 { return int64(time.Since(c.epoch)) + 1 }

// trusted reports whether cached entries may be served, and starts a
// background check when the last one is older than checkEvery.
func (c *sessionCache) trusted() bool {
	age := time.Duration(c.now() - c.checkedAt.Load())
	if age >= checkEvery && c.checking.CompareAndSwap(false, true) {
		if !c.db.goBackground(func() {
			defer c.checking.Store(false)
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_ = c.check(ctx) // on failure checkedAt ages and Get reads the database
		}) {
			c.checking.Store(false)
		}
	}
	return age < trustFor
}

// check reads PRAGMA data_version on the writer connection and flushes the
// cache when another connection committed since the last check. The caller
// holds c.checking.
func (c *sessionCache) check(ctx context.Context) error {
	start := c.now()
	version, conn, err := dataVersion(ctx, c.db.write)
	if err != nil {
		return err
	}
	// A different connection has its own counter: treat it as a change.
	if version != c.version || conn != c.conn {
		c.flush()
		c.version, c.conn = version, conn
	}
	c.checkedAt.Store(start)
	return nil
}

// dataVersion returns PRAGMA data_version of db's connection and that
// connection's identity.
func dataVersion(ctx context.Context, db *sql.DB) (version int64, conn any, err error) {
	sc, err := db.Conn(ctx)
	if err != nil {
		return 0, nil, err
	}
	defer sc.Close()
	if err := sc.Raw(func(dc any) error { conn = dc; return nil }); err != nil {
		return 0, nil, err
	}
	if err := sc.QueryRowContext(ctx, "PRAGMA data_version").Scan(&version); err != nil {
		return 0, nil, err
	}
	return version, conn, nil
}

// get returns the cached session, or nil.
func (c *sessionCache) get(k cacheKey) *sessiond.Session {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.entries[k]
}

// generation returns the invalidation counter; take it before reading the
// database and pass it to put.
func (c *sessionCache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// put caches s, read from the database after generation returned gen,
// unless something was invalidated since. The cache owns s afterwards.
func (c *sessionCache) put(gen uint64, s *sessiond.Session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	k := cacheKey{s.UserID, s.ID}
	if _, ok := c.entries[k]; !ok && len(c.entries) >= c.max {
		for old := range c.entries { // an arbitrary victim
			delete(c.entries, old)
			break
		}
	}
	c.entries[k] = s
}

// invalidate drops the named sessions of userID and makes concurrent reads
// unable to cache what they read before.
func (c *sessionCache) invalidate(userID string, ids ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for _, id := range ids {
		delete(c.entries, cacheKey{userID, id})
	}
}

// invalidateUser drops every cached session of userID.
func (c *sessionCache) invalidateUser(userID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for k := range c.entries {
		if k.userID == userID {
			delete(c.entries, k)
		}
	}
}

// invalidateExpired drops every cached session that expired at or before
// nowMS.
func (c *sessionCache) invalidateExpired(nowMS int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for k, s := range c.entries {
		if ms(s.ExpiresAt) <= nowMS {
			delete(c.entries, k)
		}
	}
}

// flush drops everything.
func (c *sessionCache) flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	clear(c.entries)
}

// len reports how many sessions are cached.
func (c *sessionCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
