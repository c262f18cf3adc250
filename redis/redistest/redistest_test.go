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
