package redis

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/redis/rueidis"
)

// CheckError lists the settings of a Redis that could bring revoked
// sessions back or drop live ones. The caller decides whether to refuse to
// start (SESSIOND_REDIS_CHECKS=refuse) or only log it (warn).
type CheckError struct {
	Problems []string
}

func (e *CheckError) Error() string {
	return "redis: unsafe configuration: " + strings.Join(e.Problems, "; ")
}

// Check reads the configuration of every node (on Cluster, replicas too,
// since any of them may become a master) and reports:
//   - as a *CheckError: a maxmemory-policy other than noeviction (Redis
//     could evict live sessions and the indexes), or RDB snapshots without
//     AOF (a restart loads an old snapshot, in which sessions revoked since
//     are alive again);
//   - as warnings: no persistence at all (a restart only signs everyone
//     out), a node whose CONFIG GET is refused (an ACL), which could not
//     be checked, or a master with fewer connected replicas than
//     Options.ReplicaAcks (its revocations would fail).
//
// An unreachable node is an error wrapping sessiond.ErrUnavailable.
func (s *Store) Check(ctx context.Context) (warnings []string, err error) {
	nodes := s.client.Nodes()
	addrs := make([]string, 0, len(nodes))
	for a := range nodes {
		addrs = append(addrs, a)
	}
	sort.Strings(addrs)
	var problems []string
	for _, addr := range addrs {
		c := nodes[addr]
		w, p, err := checkNode(ctx, s, c)
		if err != nil {
			return nil, wrap(err, "check "+addr)
		}
		if m, err := s.checkAcks(ctx, c); err != nil {
			return nil, wrap(err, "check "+addr)
		} else if m != "" {
			w = append(w, m)
		}
		for _, m := range w {
			warnings = append(warnings, addr+": "+m)
		}
		for _, m := range p {
			problems = append(problems, addr+": "+m)
		}
	}
	if len(problems) > 0 {
		return warnings, &CheckError{Problems: problems}
	}
	return warnings, nil
}

func checkNode(ctx context.Context, s *Store, c rueidis.Client) (warnings, problems []string, err error) {
	ctx, cancel := s.deadline(ctx)
	defer cancel()
	get := func(name string) (string, bool, error) {
		m, err := c.Do(ctx, c.B().ConfigGet().Parameter(name).Build()).AsStrMap()
		if err != nil {
			if _, ok := rueidis.IsRedisErr(err); ok {
				return "", false, nil // refused by an ACL or renamed away
			}
			return "", false, err
		}
		return m[name], true, nil
	}
	policy, ok1, err := get("maxmemory-policy")
	if err != nil {
		return nil, nil, err
	}
	aof, ok2, err := get("appendonly")
	if err != nil {
		return nil, nil, err
	}
	save, ok3, err := get("save")
	if err != nil {
		return nil, nil, err
	}
	if !ok1 || !ok2 || !ok3 {
		warnings = append(warnings, "could not read its configuration (CONFIG GET refused): check by hand that maxmemory-policy is noeviction and that AOF is on or persistence is off")
	}
	if ok1 && policy != "noeviction" {
		problems = append(problems, fmt.Sprintf("maxmemory-policy is %s: Redis may evict live sessions and indexes; set it to noeviction", policy))
	}
	if ok2 && ok3 {
		snapshots := strings.TrimSpace(save) != ""
		switch {
		case aof == "yes":
		case snapshots:
			problems = append(problems, fmt.Sprintf("RDB snapshots (save %q) without AOF: a restart would load an old snapshot and bring revoked sessions back; turn on appendonly or turn off save", save))
		default:
			warnings = append(warnings, "no persistence (appendonly no, save \"\"): a restart signs every user out")
		}
	}
	return warnings, problems, nil
}
