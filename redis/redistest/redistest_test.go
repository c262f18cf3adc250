package redistest_test

import (
	"strings"
	"testing"

	"github.com/sessiond/sessiond/redis/redistest"
)

func TestServerRestartKeepsAOF(t *testing.T) {
	s := redistest.Start(t, redistest.WithConfig("appendonly", "yes", "appendfsync", "always"))
	s.MustDo("SET", "k", "v")
	s.Kill()
	if _, err := s.Do("PING"); err == nil {
		t.Fatal("PING after Kill succeeded")
	}
	s.Start()
	if got := s.MustDo("GET", "k"); got != "v" {
		t.Fatalf("GET k after restart = %q, want v", got)
	}
}

func TestServerDefaultsHaveNoPersistence(t *testing.T) {
	s := redistest.Start(t)
	if got := s.MustDo("CONFIG", "GET", "appendonly"); got != "appendonly\nno" {
		t.Fatalf("appendonly = %q", got)
	}
	if got := s.MustDo("CONFIG", "GET", "save"); got != "save\n" {
		t.Fatalf("save = %q", got)
	}
	if s.Port() == 6379 {
		t.Fatal("used port 6379")
	}
	s.MustDo("SET", "k", "v")
	s.Restart()
	if got := s.MustDo("GET", "k"); got != "" {
		t.Fatalf("GET k after restart = %q, want nothing", got)
	}
}

func TestCluster(t *testing.T) {
	c := redistest.StartCluster(t)
	if !strings.HasPrefix(c.URL(), "redis://127.0.0.1:") || strings.Count(c.URL(), ",") != 2 {
		t.Fatalf("URL = %q", c.URL())
	}
	for _, n := range c.Nodes() {
		info := n.MustDo("CLUSTER", "INFO")
		if !strings.Contains(info, "cluster_state:ok") {
			t.Fatalf("node %s: %s", n.Addr(), info)
		}
	}
}

func TestFailoverCluster(t *testing.T) {
	c := redistest.StartFailoverCluster(t)
	if n := len(c.Nodes()); n != 6 {
		t.Fatalf("nodes: got %d, want 6", n)
	}
	const key = "sd:{u:someone}:idx"
	m := c.MasterOf(key)
	r := c.ReplicaOf(m)
	m.MustDo("SET", key, "v")
	if _, err := m.Do("WAIT", "1", "1000"); err != nil {
		t.Fatal(err)
	}
	m.Kill()
	if got := c.WaitFailover(key, m); got != r {
		t.Fatalf("after the failover: %s serves the key, want its replica %s", got.Addr(), r.Addr())
	}
	if got := r.MustDo("GET", key); got != "v" {
		t.Fatalf("GET on the promoted replica = %q, want v", got)
	}
	// The old master comes back as the replica of the new one.
	m.Start()
	c.WaitOK()
	c.WaitReplicas()
	if got := c.ReplicaOf(r); got != m {
		t.Fatalf("replica of the new master: got %s, want the restarted %s", got.Addr(), m.Addr())
	}
}
