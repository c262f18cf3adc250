package redistest

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Cluster is a Redis Cluster of three masters without replicas, each a
// Server owned by the test.
type Cluster struct {
	t     testing.TB
	nodes []*Server
}

// StartCluster starts three cluster-enabled redis-servers on random
// loopback ports (their bus ports, port+10000, free too), joins them with
// redis-cli --cluster create, and waits until every node reports
// cluster_state:ok. Extra opts apply to every node.
func StartCluster(t testing.TB, opts ...Option) *Cluster {
	t.Helper()
	return startCluster(t, 3, 0, []string{"--cluster-node-timeout", "2000"}, opts)
}

// startCluster starts masters*(1+replicas) cluster-enabled nodes with the
// extra arguments, creates the cluster with that many replicas per
// master, and waits until every node reports cluster_state:ok.
func startCluster(t testing.TB, masters, replicas int, extra []string, opts []Option) *Cluster {
	t.Helper()
	requireBinaries(t)
	c := &Cluster{t: t}
	for range masters * (1 + replicas) {
		var err error
		var s *Server
		for range 5 {
			var cfg config
			for _, o := range opts {
				o(&cfg)
			}
			s = &Server{t: t, dir: t.TempDir(), port: freePort(t, true)}
			s.args = append([]string{
				"--cluster-enabled", "yes",
				"--cluster-config-file", "nodes.conf",
			}, extra...)
			s.args = append(s.args, cfg.args...)
			if err = s.start(); err == nil {
				break
			}
		}
		if err != nil {
			t.Fatalf("redistest: cluster node: %v", err)
		}
		t.Cleanup(s.Kill)
		c.nodes = append(c.nodes, s)
	}
	args := []string{"--cluster", "create"}
	for _, n := range c.nodes {
		args = append(args, n.Addr())
	}
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	out, err := exec.Command("redis-cli", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("redistest: redis-cli --cluster create: %v\n%s", err, out)
	}
	c.WaitOK()
	return c
}

// WaitOK waits until every running node reports cluster_state:ok and
// knows every node, and fails the test after 20 s.
func (c *Cluster) WaitOK() {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ok := true
		for _, n := range c.nodes {
			if !n.Running() {
				continue
			}
			info, err := n.Do("CLUSTER", "INFO")
			if err != nil || !strings.Contains(info, "cluster_state:ok") ||
				!strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(len(c.nodes))) {
				ok = false
				break
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatal("redistest: cluster did not reach cluster_state:ok")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Nodes returns the cluster's servers (for StartCluster, all masters).
func (c *Cluster) Nodes() []*Server { return c.nodes }

// Addrs returns host:port of every node.
func (c *Cluster) Addrs() []string {
	a := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		a[i] = n.Addr()
	}
	return a
}

// URL returns the seed list redis://h:p1,h:p2,h:p3.
func (c *Cluster) URL() string { return "redis://" + strings.Join(c.Addrs(), ",") }

// Do sends a command that names no key (CLUSTER KEYSLOT, INFO) to the
// first running node.
func (c *Cluster) Do(args ...string) (string, error) {
	for _, n := range c.nodes {
		if n.Running() {
			return n.Do(args...)
		}
	}
	return c.nodes[0].Do(args...)
}
