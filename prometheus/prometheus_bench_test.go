package prometheus

import (
	"testing"
	"time"
)

// BenchmarkRequest is what the binary's metrics cost each request: the
// request counter of its route and status class and the latency histogram
// of its route.
func BenchmarkRequest(b *testing.B) {
	m := New()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Request("GET /api/v1/me", 200, 150*time.Microsecond)
		}
	})
}
