package sessiond_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiond/sessiond"
)

// probeCounter counts the write probes a Manager makes, and holds each
// for a moment so that concurrent callers overlap with it.
type probeCounter struct {
	sessiond.SessionStore
	probes atomic.Int64
}

func (p *probeCounter) Writable(ctx context.Context) error {
	p.probes.Add(1)
	time.Sleep(20 * time.Millisecond)
	return p.SessionStore.Writable(ctx)
}

// TestReadyProbesWritesAtMostOncePerInterval: however many callers ask
// at once, Ready makes one write probe per ReadyInterval and they all get
// its result; the next probe waits for the interval to pass.
func TestReadyProbesWritesAtMostOncePerInterval(t *testing.T) {
	m, _ := newManager(t)
	p := &probeCounter{SessionStore: m.SessionsForTest()}
	m.SetSessionsForTest(p)
	m.ReadyInterval = 300 * time.Millisecond
	ask := func() {
		t.Helper()
		var wg sync.WaitGroup
		errs := make([]error, 50)
		for i := range errs {
			wg.Go(func() { errs[i] = m.Ready(context.Background()) })
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatalf("Ready: %v", err)
			}
		}
	}
	ask()
	ask()
	if got := p.probes.Load(); got != 1 {
		t.Fatalf("write probes for 100 calls within the interval: got %d, want 1", got)
	}
	time.Sleep(m.ReadyInterval)
	ask()
	if got := p.probes.Load(); got != 2 {
		t.Fatalf("write probes after the interval: got %d, want 2", got)
	}
}
