package freeport

import (
	"net"
	"strconv"
	"testing"
)

// TestPortsAreFreeAndBelowTheEphemeralRange: a port (and a bus port) can be
// listened on, and lies where client sockets do not take their ports.
func TestPortsAreFreeAndBelowTheEphemeralRange(t *testing.T) {
	for range 20 {
		p, err := Port()
		if err != nil {
			t.Fatal(err)
		}
		b, err := WithBus()
		if err != nil {
			t.Fatal(err)
		}
		for _, port := range []int{p, b, b + busOffset} {
			if port < low || port >= high {
				t.Fatalf("port %d is outside [%d, %d)", port, low, high)
			}
			l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
			if err != nil {
				t.Fatalf("port %d is not free: %v", port, err)
			}
			l.Close()
		}
	}
}

// TestBusyPortIsNotFree: a port something listens on counts as taken, so
// pick passes over it.
func TestBusyPortIsNotFree(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if free(l.Addr().(*net.TCPAddr).Port) {
		t.Fatal("a port in use counts as free")
	}
}
