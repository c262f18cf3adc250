// Package freeport picks loopback TCP ports for servers that tests and the
// benchmark harness start: redis-server, PostgreSQL, nginx.
//
// The ports lie below Linux's ephemeral range (32768 and up), where the
// outgoing connections of a busy test run take their local ports: a port
// chosen there could be taken by a client socket before the server binds
// it, or between a kill and a restart on the same port.
package freeport

import (
	"errors"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
)

const low, high = 10_000, 32_768

// busOffset is how far above a Redis Cluster node's port its cluster bus
// listens.
const busOffset = 10_000

var mu sync.Mutex

// Port returns a loopback port that nothing listens on now.
func Port() (int, error) { return pick(false) }

// WithBus returns a loopback port p such that neither p nor p+10000 (a
// Redis Cluster node's bus port) is listened on now.
func WithBus() (int, error) { return pick(true) }

func pick(bus bool) (int, error) {
	mu.Lock()
	defer mu.Unlock()
	for range 1000 {
		p := low + rand.IntN(high-low)
		if bus {
			p = low + rand.IntN(high-low-busOffset) // the bus port too stays below high
		}
		// 16379 is the bus port of a developer's Redis Cluster node on 6379.
		if p == 16379 || !free(p) || (bus && !free(p+busOffset)) {
			continue
		}
		return p, nil
	}
	return 0, errors.New("freeport: no free loopback port")
}

func free(p int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}
