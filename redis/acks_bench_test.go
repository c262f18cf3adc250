package redis_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sessiond/sessiond"
	"github.com/sessiond/sessiond/redis"
	"github.com/sessiond/sessiond/redis/redistest"
)

// BenchmarkRevokeReplicaAcks measures what waiting for a replica costs a
// revocation: one Revoke after another, with ReplicaAcks 0 and 1, on a
// master with one replica and on the six-node cluster. The sessions are
// made before the timer starts.
func BenchmarkRevokeReplicaAcks(b *testing.B) {
	master := redistest.Start(b)
	redistest.StartReplica(b, master)
	cluster := redistest.StartFailoverCluster(b)
	for _, setup := range []struct{ name, url string }{
		{"replica", master.URL()},
		{"cluster", cluster.URL()},
	} {
		for _, acks := range []int{0, 1} {
			b.Run(fmt.Sprintf("%s/acks=%d", setup.name, acks), func(b *testing.B) {
				st := newStore(b, redis.Options{URL: setup.url, ReplicaAcks: acks})
				ctx := context.Background()
				now := time.Now()
				sessions := make([]*sessiond.Session, b.N)
				for i := range sessions {
					s := testSession(randomID(), now)
					create(b, st, s)
					sessions[i] = s
				}
				b.ReportAllocs()
				b.ResetTimer()
				for _, s := range sessions {
					if err := st.Revoke(ctx, s.UserID, s.ID); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
