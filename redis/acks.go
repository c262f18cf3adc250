package redis

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// Replica acknowledgements.
//
// Redis replicates asynchronously: a master answers a write before any
// replica has it, and if the master dies then, the replica promoted in its
// place never saw the write. For a revocation that means the session comes
// back to life after the failover, although the user was told it was gone.
// With Options.ReplicaAcks = N > 0, every revocation and every refresh
// rotation is followed by WAIT N on the connection that carried the write
// (WAIT counts the replicas that hold everything that connection wrote),
// and answered with an error wrapping sessiond.ErrUnavailable when fewer
// than N replicas confirm in time. A success then means the change is on
// N replicas, one of which takes over if the master fails.

// errNotAcknowledged is the error of a change that fewer replicas than
// Options.ReplicaAcks confirmed in time. wrap makes it ErrUnavailable.
var errNotAcknowledged = errors.New("not acknowledged by enough replicas")

// ackMarkTTL is how long the marker key that execAcked writes lives.
const ackMarkTTL = time.Second

// luaSource is the text and SHA-1 of a script that execAcked may send
// itself: rueidis.Lua.Exec takes a rueidis.Client, which a dedicated
// connection is not.
type luaSource struct{ body, sha string }

// luaSources holds every script made by newScript. It is written only
// while the package's variables are initialised.
var luaSources = map[*rueidis.Lua]luaSource{}

// newScript returns rueidis.NewLuaScript(body) and records its text for
// execAcked.
func newScript(body string) *rueidis.Lua {
	l := rueidis.NewLuaScript(body)
	sum := sha1.Sum([]byte(body))
	luaSources[l] = luaSource{body: body, sha: hex.EncodeToString(sum[:])}
	return l
}

// execAcked runs script with keys and args, like script.Exec. Without
// replica acknowledgements (the default) that is all it does, at the same
// cost.
//
// With Options.ReplicaAcks = N, it sends three commands in one round trip
// on one dedicated connection to the master of keys[0]'s slot: the script,
// a SET of a short-lived marker key in the same slot, and WAIT N with a
// timeout of three quarters of the time left before the call's deadline
// (so at most Options.Timeout). WAIT covers what its own connection wrote;
// the marker makes that include the master's whole state even when the
// script changed nothing (a retried revocation finds the session already
// gone on the master, which replicas may not know yet). res is the
// script's reply; ackErr, when res is not an error, reports that fewer
// than N replicas confirmed, and wraps errNotAcknowledged or the error of
// the SET or WAIT. The caller handles res first (its process forgets what
// it revoked either way), then returns wrap(ackErr, op).
func (s *Store) execAcked(ctx context.Context, script *rueidis.Lua, keys, args []string) (res rueidis.RedisResult, ackErr error) {
	if s.acks <= 0 {
		return script.Exec(ctx, s.client, keys, args), nil
	}
	// Copies, so that keys and args do not escape on the path above: the
	// callers' slices stay on their stacks, as they did before this path.
	return s.execWaited(ctx, script, slices.Clone(keys), slices.Clone(args))
}

// execWaited is execAcked with replica acknowledgements.
func (s *Store) execWaited(ctx context.Context, script *rueidis.Lua, keys, args []string) (res rueidis.RedisResult, ackErr error) {
	src, ok := luaSources[script]
	if !ok {
		panic("redis: execAcked: script not made by newScript")
	}
	wait := int64(time.Second / time.Millisecond)
	if d, ok := ctx.Deadline(); ok {
		wait = max(int64(time.Until(d)*3/4/time.Millisecond), 1) // 0 would wait for ever
	}
	res, ackErr = s.ackedOn(ctx, s.client, src, keys, args, wait)
	if re, ok := rueidis.IsRedisErr(res.Error()); ok {
		// rueidis follows redirects on its shared connections, not on a
		// dedicated one, and learns the new topology only a while later:
		// after a failover, go to the master the redirect names.
		if addr, moved := re.IsMoved(); moved {
			if node, ok := s.client.Nodes()[addr]; ok {
				res, ackErr = s.ackedOn(ctx, node, src, keys, args, wait)
			}
		}
	}
	if re, ok := rueidis.IsRedisErr(res.Error()); ok && isRedirect(re) {
		res = rueidis.NewErrorResult(fmt.Errorf("slot moved: %w", re)) // unavailable
	}
	return res, ackErr
}

// ackedOn runs the pipeline of execAcked on a dedicated connection of
// client, and falls back to EVAL when the node does not know the script.
func (s *Store) ackedOn(ctx context.Context, client rueidis.Client, src luaSource, keys, args []string, wait int64) (res rueidis.RedisResult, ackErr error) {
	ackErr = client.Dedicated(func(c rueidis.DedicatedClient) error {
		for _, eval := range []bool{false, true} {
			var run rueidis.Completed
			if eval {
				run = c.B().Eval().Script(src.body).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build()
			} else {
				run = c.B().Evalsha().Sha1(src.sha).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build()
			}
			rs := c.DoMulti(ctx, run,
				c.B().Set().Key(ackMarkKey(keys[0])).Value("1").Px(ackMarkTTL).Build(),
				c.B().Wait().Numreplicas(s.acks).Timeout(wait).Build())
			res = rs[0]
			if re, ok := rueidis.IsRedisErr(res.Error()); !eval && ok && re.IsNoScript() {
				continue // first use on this node: send the text
			}
			if res.Error() != nil {
				return nil
			}
			if err := rs[1].Error(); err != nil {
				return err
			}
			n, err := rs[2].AsInt64()
			if err != nil {
				return err
			}
			if n < s.acks {
				return fmt.Errorf("%w: %d of %d within %dms", errNotAcknowledged, n, s.acks, wait)
			}
			return nil
		}
		return nil
	})
	return res, ackErr
}

// ackMarkKey returns the marker key of execAcked in the slot of key: the
// key's hash tag followed by ":ack".
func ackMarkKey(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			return key[:i+1+j+1] + ":ack"
		}
	}
	return key + ":ack"
}

// checkAcks returns a warning when the node is a master with fewer
// connected replicas than Options.ReplicaAcks: every revocation and
// rotation of its users would fail until enough replicas are back.
func (s *Store) checkAcks(ctx context.Context, c rueidis.Client) (string, error) {
	if s.acks <= 0 {
		return "", nil
	}
	ctx, cancel := s.deadline(ctx)
	defer cancel()
	info, err := c.Do(ctx, c.B().Info().Section("replication").Build()).ToString()
	if err != nil {
		if _, ok := rueidis.IsRedisErr(err); ok {
			return "", nil // refused by an ACL: nothing to tell
		}
		return "", err
	}
	var role string
	replicas := -1
	for _, line := range strings.Split(info, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		switch k {
		case "role":
			role = v
		case "connected_slaves":
			fmt.Sscan(v, &replicas)
		}
	}
	if role != "master" || replicas < 0 || int64(replicas) >= s.acks {
		return "", nil
	}
	return fmt.Sprintf("a master with %d connected replicas, fewer than SESSIOND_REDIS_REPLICA_ACKS=%d: revocations and refreshes of its users answer 503 until enough replicas are connected", replicas, s.acks), nil
}

func isRedirect(re *rueidis.RedisError) bool {
	_, moved := re.IsMoved()
	_, ask := re.IsAsk()
	return moved || ask
}
