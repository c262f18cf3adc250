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

	"github.com/sessiond/sessiond"
)

// Replica acknowledgements.
//
// Redis replicates asynchronously: a master answers a write before any
// replica has it, and if the master dies then, the replica promoted in its
// place never saw the write. For a revocation that means the session comes
// back to life after the failover, although the user was told it was gone.
// With Options.ReplicaAcks = N > 0, every revocation, every refresh
// rotation and every handoff take is followed by WAIT N on the connection that carried the write
// (WAIT counts the replicas that hold everything that connection wrote),
// and answered with an error wrapping sessiond.ErrNotAcknowledged (and so
// sessiond.ErrUnavailable) when fewer than N replicas confirm in time. A
// success then means the change is on N replicas, one of which takes over
// if the master fails.

// ackMarkTTL is how long the marker key of a change or of Sync lives.
const ackMarkTTL = time.Second

// waitSlack is how much later than its own timeout a WAIT may answer:
// Redis ends a WAIT that timed out only on its next server cron tick, 100
// ms apart at the default hz 10 (WAIT 1 75 answers after 95 to 160 ms).
const waitSlack = 250 * time.Millisecond

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
// With Options.ReplicaAcks = N, it holds one dedicated connection to the
// master of keys[0]'s slot for two round trips. The first runs the script
// (EVALSHA, then EVAL if the node does not know it yet) under ctx, and its
// reply is res, whatever happens next. The second, only when the script
// succeeded, is markAndWait: a marker write in the same slot and WAIT N,
// which reports in ackErr that fewer than N replicas confirmed within
// Options.Timeout. It runs under its own deadline, detached from ctx's
// cancellation, so that a caller going away cannot turn a change made into
// one unreported. The caller handles res first (the change is made on the
// master either way), then reports ackErr with notAcked.
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
	res, ackErr = s.ackedOn(ctx, s.client, src, keys, args)
	if re, ok := rueidis.IsRedisErr(res.Error()); ok {
		// rueidis follows redirects on its shared connections, not on a
		// dedicated one, and learns the new topology only a while later:
		// after a failover, go to the master the redirect names.
		if addr, moved := re.IsMoved(); moved {
			if node, ok := s.client.Nodes()[addr]; ok {
				res, ackErr = s.ackedOn(ctx, node, src, keys, args)
			}
		}
	}
	if re, ok := rueidis.IsRedisErr(res.Error()); ok && isRedirect(re) {
		res = rueidis.NewErrorResult(fmt.Errorf("slot moved: %w", re)) // unavailable
	}
	return res, ackErr
}

// errNoConnection is the script's reply when no dedicated connection
// could be had to send it on: nothing was sent.
var errNoConnection = errors.New("no dedicated connection")

// ackedOn runs the two round trips of execAcked on a dedicated connection
// of client.
func (s *Store) ackedOn(ctx context.Context, client rueidis.Client, src luaSource, keys, args []string) (res rueidis.RedisResult, ackErr error) {
	res = rueidis.NewErrorResult(errNoConnection) // unless fn runs
	ackErr = client.Dedicated(func(c rueidis.DedicatedClient) error {
		res = c.Do(ctx, c.B().Evalsha().Sha1(src.sha).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build())
		if re, ok := rueidis.IsRedisErr(res.Error()); ok && re.IsNoScript() {
			// First use on this node: send the text.
			res = c.Do(ctx, c.B().Eval().Script(src.body).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build())
		}
		if res.Error() != nil {
			return nil
		}
		return s.markAndWait(context.WithoutCancel(ctx), c, ackMarkKey(keys[0]), ackMarkTTL)
	})
	return res, ackErr
}

// markAndWait writes a marker key that lives ttl on c's connection and waits
// (WAIT N, at most Options.Timeout) until N replicas hold everything that
// connection wrote, in one round trip bounded by Options.Timeout plus the
// server's tick. WAIT covers what its own connection wrote; the marker
// makes that include the master's whole state of the slot, also when the
// caller changed nothing itself (a retried revocation finds the session
// already gone on the master, which replicas may not know yet). It
// returns an error when fewer than N replicas confirmed or the round trip
// failed.
func (s *Store) markAndWait(ctx context.Context, c rueidis.DedicatedClient, marker string, ttl time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout+waitSlack)
	defer cancel()
	wait := max(s.timeout.Milliseconds(), 1) // 0 would wait for ever
	rs := c.DoMulti(ctx,
		c.B().Set().Key(marker).Value("1").Px(ttl).Build(),
		c.B().Wait().Numreplicas(s.acks).Timeout(wait).Build())
	if err := rs[0].Error(); err != nil {
		return err
	}
	n, err := rs[1].AsInt64()
	if err != nil {
		return err
	}
	if n < s.acks {
		return fmt.Errorf("%d of %d replicas confirmed within %v", n, s.acks, s.timeout)
	}
	return nil
}

// notAcked is the error of a change made on the master that markAndWait
// could not confirm: it wraps sessiond.ErrNotAcknowledged (an
// ErrUnavailable) and the cause.
func notAcked(op string, err error) error {
	return fmt.Errorf("redis: %s: %w: %w", op, sessiond.ErrNotAcknowledged, err)
}

// Sync implements sessiond.SessionStore. Without replica acknowledgements
// it returns nil at once, without a round trip. With ReplicaAcks = N it
// writes the marker key in the user's slot and waits for N replicas, like
// the second round trip of a revocation: the marker brings everything the
// master holds in that slot (all of the user's sessions and changes) into
// what WAIT covers.
func (s *Store) Sync(ctx context.Context, userID string) error {
	if s.acks <= 0 {
		return nil
	}
	idx, _ := userKeys(userID)
	if err := s.syncSlot(ctx, idx); err != nil {
		return notAcked("sync", err)
	}
	return nil
}

// syncSlot writes the marker key in the slot of key and waits for
// Options.ReplicaAcks replicas of its master (markAndWait): once it
// returns nil, everything that master held when it was called is on them.
func (s *Store) syncSlot(ctx context.Context, key string) error {
	marker := ackMarkKey(key)
	syncOn := func(client rueidis.Client) error {
		return client.Dedicated(func(c rueidis.DedicatedClient) error { return s.markAndWait(ctx, c, marker, ackMarkTTL) })
	}
	err := syncOn(s.client)
	if re, ok := rueidis.IsRedisErr(err); ok {
		if addr, moved := re.IsMoved(); moved {
			if node, ok := s.client.Nodes()[addr]; ok {
				err = syncOn(node) // as in execWaited
			}
		}
	}
	return err
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
