package redis

import (
	"sync"
	"sync/atomic"
	"time"
)

// mark records what this process recently did to a session key.
type mark uint8

const (
	// unmarked: Get may use the client-side cache.
	unmarked mark = iota
	// changed: this process rewrote the hash (create, rotate, rename); its
	// cached copy may be older than the write until the invalidation
	// arrives, so Get reads Redis.
	changed
	// revoked: this process deleted the session; Get refuses it without
	// asking anyone.
	revoked
)

// recent is the short-lived record of the session keys this process
// revoked or changed. Redis acknowledges a write before this process has
// read the invalidation of its own cached copy (it travels on another
// connection), and rueidis cannot drop one cached entry, so without this
// record the revoking instance could accept a session it has just revoked.
//
// An entry only has to outlive the invalidation: after ttl, either the
// invalidation has been read, or the connection that carries it has been
// found dead (rueidis pings an idle connection every Dialer.KeepAlive and
// gives up after ConnWriteTimeout) and its whole cache dropped. Entries
// live between ttl and 2*ttl: two generations of maps, the older dropped
// whole, so expiry costs nothing per entry.
type recent struct {
	ttl time.Duration
	now func() time.Time

	n    atomic.Int64 // entries in cur and prev; 0 skips the lock
	mu   sync.RWMutex
	cur  map[string]mark
	prev map[string]mark
	at   time.Time // when cur was started
}

func newRecent(ttl time.Duration) *recent {
	return &recent{ttl: ttl, now: time.Now, cur: map[string]mark{}, at: time.Now()}
}

// rotate ages the generations; mu must be held.
func (r *recent) rotate(now time.Time) {
	age := now.Sub(r.at)
	if age < r.ttl {
		return
	}
	if age >= 2*r.ttl {
		r.prev = nil
	} else {
		r.prev = r.cur
	}
	r.cur = map[string]mark{}
	r.at = now
	r.n.Store(int64(len(r.prev)))
}

// set records m for each key, replacing what was recorded before.
func (r *recent) set(m mark, keys ...string) {
	if len(keys) == 0 {
		return
	}
	r.mu.Lock()
	r.rotate(r.now())
	for _, k := range keys {
		r.cur[k] = m
	}
	r.n.Store(int64(len(r.cur) + len(r.prev)))
	r.mu.Unlock()
}

// get returns what was recorded for key, if it is still recent.
func (r *recent) get(key string) mark {
	if r.n.Load() == 0 {
		return unmarked
	}
	now := r.now()
	r.mu.RLock()
	if now.Sub(r.at) >= r.ttl {
		r.mu.RUnlock()
		r.mu.Lock()
		r.rotate(now)
		r.mu.Unlock()
		r.mu.RLock()
	}
	defer r.mu.RUnlock()
	if m, ok := r.cur[key]; ok {
		return m
	}
	return r.prev[key]
}
