package redis_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond"
	"github.com/sessiond/sessiond/redis"
	"github.com/sessiond/sessiond/redis/redistest"
	"github.com/sessiond/sessiond/storetest"
)

// TestCluster runs everything that needs Redis Cluster on one 3-master
// cluster, which takes about 2 s to form.
func TestCluster(t *testing.T) {
	c := redistest.StartCluster(t)
	t.Run("conformance", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) sessiond.SessionStore {
			return newStore(t, redis.Options{URL: c.URL()})
		})
	})
	t.Run("limiter conformance", func(t *testing.T) {
		storetest.RunLimiter(t, func(t *testing.T) sessiond.Limiter {
			return redis.NewLimiter(newStore(t, redis.Options{URL: c.URL()}))
		})
	})
	t.Run("keys of one user share a slot", func(t *testing.T) {
		for _, user := range []string{
			randomID(), "{u:1}", "}{", "{", "}", ":", "a:b:c", "ünïcødé-用户", "sd:{u:x}:s:y", "line\nbreak", "%7B", "",
		} {
			keys := []string{
				redis.IndexKey(user), redis.EventsChannel(user),
				redis.SessionKey(user, randomID()), redis.SessionKey(user, "{weird}:id"), redis.SessionKey(user, ""),
			}
			var slots []string
			for _, k := range keys {
				slot, err := c.Do("CLUSTER", "KEYSLOT", k)
				if err != nil {
					t.Fatalf("CLUSTER KEYSLOT %q: %v", k, err)
				}
				slots = append(slots, slot)
			}
			for i := range slots {
				if slots[i] != slots[0] {
					t.Fatalf("user %q: key %q is in slot %s, %q in slot %s", user, keys[i], slots[i], keys[0], slots[0])
				}
			}
			if !strings.HasPrefix(keys[0], "sd:{u:") || strings.Count(keys[0], "{") != 1 || strings.Count(keys[0], "}") != 1 {
				t.Fatalf("user %q: index key %q does not have exactly one hash tag", user, keys[0])
			}
		}
	})
	t.Run("limiter keys of one group share a slot", func(t *testing.T) {
		// A login takes its (account, address) and account counters in
		// one script: they must be in one slot, whatever the address.
		for _, group := range []string{"la:" + randomID(), "{", "}", "a|b"} {
			keys := []string{group, group + sessiond.GroupSep + "192.0.2.1", group + sessiond.GroupSep + "2001:db8::/64", group + sessiond.GroupSep + "{x}"}
			var slots []string
			for _, k := range keys {
				slot, err := c.Do("CLUSTER", "KEYSLOT", redis.LimiterKey(k))
				if err != nil {
					t.Fatalf("CLUSTER KEYSLOT %q: %v", k, err)
				}
				slots = append(slots, slot)
			}
			for i := range slots {
				if slots[i] != slots[0] {
					t.Fatalf("group %q: key %q is in slot %s, %q in slot %s", group, keys[i], slots[i], keys[0], slots[0])
				}
			}
		}
		if redis.LimiterKey("la:x"+sessiond.GroupSep+"y") == redis.LimiterKey("la:x"+"%7Cy") {
			t.Fatal("a grouped key and an ungrouped one share a Redis key")
		}
	})
	t.Run("writable probes every master", func(t *testing.T) {
		st := newStore(t, redis.Options{URL: c.URL()})
		ctx := context.Background()
		if err := st.Writable(ctx); err != nil {
			t.Fatalf("Writable: %v", err)
		}
		for _, n := range c.Nodes() {
			if keys := n.MustDo("KEYS", "sd:probe*"); keys == "" {
				t.Fatalf("node %s got no probe key", n.Addr())
			}
		}
		// Any one master that refuses writes makes the store unwritable.
		for _, n := range c.Nodes() {
			n.MustDo("CONFIG", "SET", "min-replicas-to-write", "1")
			err := st.Writable(ctx)
			n.MustDo("CONFIG", "SET", "min-replicas-to-write", "0")
			if !errors.Is(err, sessiond.ErrUnavailable) {
				t.Fatalf("Writable with master %s refusing writes: got %v, want ErrUnavailable", n.Addr(), err)
			}
		}
		if err := st.Writable(ctx); err != nil {
			t.Fatalf("Writable once every master accepts writes: %v", err)
		}
	})
	t.Run("users spread over the nodes", func(t *testing.T) {
		st := newStore(t, redis.Options{URL: c.URL()})
		// Random users: with 30 of them, a node got none about once in
		// 60,000 runs ((2/3)^30 per node); with 100, never in practice.
		for range 100 {
			create(t, st, testSession(randomID(), time.Now()))
		}
		for _, n := range c.Nodes() {
			if keys := n.MustDo("DBSIZE"); keys == "0" {
				t.Fatalf("node %s holds no keys after 100 users", n.Addr())
			}
		}
	})
	t.Run("broker", func(t *testing.T) {
		testBroker(t, c.URL())
	})
	t.Run("check reads every node", func(t *testing.T) {
		st := newStore(t, redis.Options{URL: c.URL()})
		warnings, err := st.Check(context.Background())
		if err != nil {
			t.Fatalf("Check: %v", err)
		}
		if len(warnings) != 3 {
			t.Fatalf("Check of 3 nodes without persistence: got warnings %q, want 3", warnings)
		}
	})
	t.Run("every key has a TTL", func(t *testing.T) {
		testEveryKeyHasTTL(t, redis.Options{URL: c.URL()}, c.Nodes())
	})
	t.Run("activity", func(t *testing.T) {
		testActivityCluster(t, c)
	})
}
