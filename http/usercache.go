package http

import (
	"context"
	"sync"
	"time"

	"github.com/sessiond/sessiond"
)

// The user cache spares GET /api/v1/me a user store query per request. A
// CPU profile of the server under a /me load (bench/, or BenchmarkServe in
// cmd/sessiond) showed UserByID, a SQLite statement prepared and run on
// every call, taking more of the handler's time than the token and
// session checks together; with PostgreSQL it is a network round trip.
//
// It cannot make a revoked or ended session succeed: the session check
// still runs on every request before the handler. What it shows of a user
// (id, username, email, created_at) never changes after registration, and
// deleting or locking an account ends its sessions first. The TTL only
// bounds how long a copy could lag should that ever change.
const (
	userCacheTTL  = time.Minute
	userCacheSize = 10_000
)

// userCache maps a user id to its JSON form. The zero value is ready.
type userCache struct {
	mu sync.RWMutex
	m  map[string]cachedUser
}

type cachedUser struct {
	u       userJSON
	expires time.Time
}

// get returns the user's JSON form, from the cache while it is fresh,
// else from the Manager (errors are not cached).
func (c *userCache) get(ctx context.Context, m *sessiond.Manager, id string) (userJSON, error) {
	now := time.Now()
	c.mu.RLock()
	e, ok := c.m[id]
	c.mu.RUnlock()
	if ok && now.Before(e.expires) {
		return e.u, nil
	}
	u, err := m.User(ctx, id)
	if err != nil {
		return userJSON{}, err
	}
	j := newUserJSON(u)
	c.mu.Lock()
	if c.m == nil {
		c.m = make(map[string]cachedUser)
	}
	if _, ok := c.m[id]; !ok && len(c.m) >= userCacheSize {
		for k := range c.m { // an arbitrary victim: map order is random
			delete(c.m, k)
			break
		}
	}
	c.m[id] = cachedUser{u: j, expires: now.Add(userCacheTTL)}
	c.mu.Unlock()
	return j, nil
}
