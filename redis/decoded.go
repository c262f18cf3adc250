package redis

import (
	"sync"

	"github.com/sessiond/sessiond"
)

// decodedCache remembers the session last decoded from each session key's
// hash. Get is on the path of every authenticated request and is usually
// answered by the client-side cache, whose reply holds the same values as
// the previous time; the session is then copied instead of decoded (the
// device id and IP address turned back into text, the packed times
// unpacked). An entry is used only when every value of the reply equals
// the one it was decoded from, so it answers exactly what decoding the
// reply would: a changed, revoked or expired session never matches an
// entry of its old hash. The zero value is ready.
type decodedCache struct {
	mu sync.RWMutex
	m  map[string]*decoded
}

type decoded struct {
	h hashValues
	s sessiond.Session
}

// decodedCacheSize bounds the entries (about 400 bytes each, with the
// strings they share with the client-side cache).
const decodedCacheSize = 10_000

// get returns a copy of the session decoded from h for key, if that is
// the hash key's entry was decoded from.
func (c *decodedCache) get(key string, h *hashValues) (*sessiond.Session, bool) {
	c.mu.RLock()
	d := c.m[key]
	c.mu.RUnlock()
	if d == nil || d.h != *h {
		return nil, false
	}
	s := d.s
	return &s, true
}

// put records s as decoded from h for key.
func (c *decodedCache) put(key string, h *hashValues, s *sessiond.Session) {
	d := &decoded{h: *h, s: *s}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]*decoded)
	}
	if _, ok := c.m[key]; !ok && len(c.m) >= decodedCacheSize {
		for k := range c.m { // an arbitrary victim: map order is random
			delete(c.m, k)
			break
		}
	}
	c.m[key] = d
}
