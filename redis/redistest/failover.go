package redistest

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FailoverNodeTimeout is the cluster-node-timeout of StartFailoverCluster:
// a master that stops answering is failed over about two to three times
// this after it stopped.
const FailoverNodeTimeout = time.Second

// StartFailoverCluster starts a Redis Cluster of six nodes, three masters
// with one replica each, made to fail over quickly: cluster-node-timeout
// is FailoverNodeTimeout, and a replica takes over whatever the age of
// its data (cluster-replica-validity-factor 0), so a test that paused it
// still sees it promoted. It waits until every replica is in sync with its
// master. Extra opts apply to every node.
func StartFailoverCluster(t testing.TB, opts ...Option) *Cluster {
	t.Helper()
	c := startCluster(t, 3, 1, []string{
		"--cluster-node-timeout", strconv.Itoa(int(FailoverNodeTimeout / time.Millisecond)),
		"--cluster-replica-validity-factor", "0",
	}, opts)
	c.WaitReplicas()
	return c
}

// clusterNode is one line of CLUSTER NODES.
type clusterNode struct {
	id, addr, master string
	flags            []string
	slots            [][2]int
}

func (n clusterNode) has(flag string) bool {
	for _, f := range n.flags {
		if f == flag {
			return true
		}
	}
	return false
}

// serves reports whether n is a healthy master of slot.
func (n clusterNode) serves(slot int) bool {
	if !n.has("master") || n.has("fail") || n.has("fail?") {
		return false
	}
	for _, r := range n.slots {
		if r[0] <= slot && slot <= r[1] {
			return true
		}
	}
	return false
}

// view returns the cluster as node s sees it (CLUSTER NODES).
func view(s *Server) ([]clusterNode, error) {
	out, err := s.Do("CLUSTER", "NODES")
	if err != nil {
		return nil, err
	}
	var nodes []clusterNode
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		addr, _, _ := strings.Cut(f[1], "@")
		n := clusterNode{id: f[0], addr: addr, master: f[3], flags: strings.Split(f[2], ",")}
		for _, r := range f[8:] {
			if strings.HasPrefix(r, "[") {
				continue // a slot being migrated
			}
			lo, hi, isRange := strings.Cut(r, "-")
			a, err1 := strconv.Atoi(lo)
			b := a
			var err2 error
			if isRange {
				b, err2 = strconv.Atoi(hi)
			}
			if err1 == nil && err2 == nil {
				n.slots = append(n.slots, [2]int{a, b})
			}
		}
		nodes = append(nodes, n)
	}
	return nodes, nil
}

// byAddr returns the node of the cluster listening on addr, or nil.
func (c *Cluster) byAddr(addr string) *Server {
	for _, s := range c.nodes {
		if s.Addr() == addr {
			return s
		}
	}
	return nil
}

// Slot returns the cluster slot of key (CLUSTER KEYSLOT).
func (c *Cluster) Slot(key string) int {
	c.t.Helper()
	out, err := c.Do("CLUSTER", "KEYSLOT", key)
	if err != nil {
		c.t.Fatalf("redistest: CLUSTER KEYSLOT %s: %v", key, err)
	}
	slot, err := strconv.Atoi(out)
	if err != nil {
		c.t.Fatalf("redistest: CLUSTER KEYSLOT %s: %q", key, out)
	}
	return slot
}

// MasterOf returns the running node that serves key, as that node itself
// and every other running node see it.
func (c *Cluster) MasterOf(key string) *Server {
	c.t.Helper()
	m, err := c.masterOf(c.Slot(key))
	if err != nil {
		c.t.Fatalf("redistest: master of %s: %v", key, err)
	}
	return m
}

// masterOf returns the node that every running node names as the healthy
// master of slot, provided it runs and says it is a master.
func (c *Cluster) masterOf(slot int) (*Server, error) {
	var addr string
	for _, s := range c.nodes {
		if !s.Running() {
			continue
		}
		nodes, err := view(s)
		if err != nil {
			return nil, err
		}
		found := ""
		for _, n := range nodes {
			if n.serves(slot) {
				found = n.addr
			}
		}
		switch {
		case found == "":
			return nil, fmt.Errorf("%s knows no healthy master of slot %d", s.Addr(), slot)
		case addr == "":
			addr = found
		case addr != found:
			return nil, fmt.Errorf("nodes disagree on the master of slot %d: %s and %s", slot, addr, found)
		}
	}
	m := c.byAddr(addr)
	if m == nil || !m.Running() {
		return nil, fmt.Errorf("master %s of slot %d is not running", addr, slot)
	}
	if role, err := m.Do("ROLE"); err != nil || !strings.HasPrefix(role, "master") {
		return nil, fmt.Errorf("%s does not say it is a master: %q %v", addr, role, err)
	}
	return m, nil
}

// ReplicaOf returns a replica of master, as master sees it.
func (c *Cluster) ReplicaOf(master *Server) *Server {
	c.t.Helper()
	nodes, err := view(master)
	if err != nil {
		c.t.Fatalf("redistest: CLUSTER NODES on %s: %v", master.Addr(), err)
	}
	var id string
	for _, n := range nodes {
		if n.has("myself") {
			id = n.id
		}
	}
	for _, n := range nodes {
		if n.master == id {
			if s := c.byAddr(n.addr); s != nil {
				return s
			}
		}
	}
	c.t.Fatalf("redistest: %s has no replica", master.Addr())
	return nil
}

// WaitReplicas waits until every running master has every replica that
// the running nodes know of connected and in sync (master_link_status:up
// on each running replica, and the replica listed online by its master),
// and fails the test after 30 s. A node restarted after a failover comes
// back as a replica and needs a full sync first.
func (c *Cluster) WaitReplicas() {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := c.replicasInSync()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("redistest: replicas not in sync after 30 s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *Cluster) replicasInSync() error {
	for _, s := range c.nodes {
		if !s.Running() {
			continue
		}
		info, err := s.Do("INFO", "replication")
		if err != nil {
			return err
		}
		if strings.Contains(info, "role:slave") {
			if !strings.Contains(info, "master_link_status:up") {
				return fmt.Errorf("replica %s: link to its master is down", s.Addr())
			}
			continue
		}
		// A master: each running replica that names it must be online.
		nodes, err := view(s)
		if err != nil {
			return err
		}
		var id string
		for _, n := range nodes {
			if n.has("myself") {
				id = n.id
			}
		}
		for _, n := range nodes {
			r := c.byAddr(n.addr)
			if n.master != id || r == nil || !r.Running() {
				continue
			}
			_, port, _ := strings.Cut(n.addr, ":")
			if !strings.Contains(info, "port="+port+",state=online") {
				return fmt.Errorf("master %s: replica %s not online", s.Addr(), n.addr)
			}
		}
	}
	return nil
}

// WaitFailover waits until the slot of key is served by a running master
// other than old, as every running node sees it, and every running node
// reports cluster_state:ok; it returns the new master. It fails the test
// after 30 s.
func (c *Cluster) WaitFailover(key string, old *Server) *Server {
	c.t.Helper()
	slot := c.Slot(key)
	deadline := time.Now().Add(30 * time.Second)
	for {
		m, err := c.masterOf(slot)
		if err == nil && m == old {
			err = fmt.Errorf("%s still serves slot %d", old.Addr(), slot)
		}
		if err == nil {
			err = c.stateOK()
		}
		if err == nil {
			return m
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("redistest: no failover of slot %d after 30 s: %v", slot, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stateOK reports whether every running node says cluster_state:ok.
func (c *Cluster) stateOK() error {
	for _, s := range c.nodes {
		if !s.Running() {
			continue
		}
		info, err := s.Do("CLUSTER", "INFO")
		if err != nil {
			return err
		}
		if !strings.Contains(info, "cluster_state:ok") {
			return fmt.Errorf("%s: cluster state is not ok", s.Addr())
		}
	}
	return nil
}

// StartReplica starts a redis-server that replicates master (REPLICAOF)
// and waits until it is in sync. Extra opts apply to the replica.
func StartReplica(t testing.TB, master *Server, opts ...Option) *Server {
	t.Helper()
	r := Start(t, opts...)
	r.MustDo("REPLICAOF", "127.0.0.1", strconv.Itoa(master.Port()))
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, _ := r.Do("INFO", "replication")
		if strings.Contains(info, "master_link_status:up") {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: replica %s of %s not in sync after 10 s", r.Addr(), master.Addr())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
