package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/sessiond/sessiond"
)

// Security activity (docs/design.md, "Security activity in Redis"). Every
// key of one user is in the user's slot:
//
//	sd:{u:<user>}:act           sorted set: history entries scored by their
//	                            time (unix ms); a member is a 4-byte
//	                            big-endian sequence number, which orders
//	                            ties by recording, then the entry's JSON
//	sd:{u:<user>}:seen          sorted set: d:<device> and c:<country>
//	                            scored by when they were last seen (unix ms)
//	sd:{u:<user>}:q:<queue>     sorted set: the ids of the queue's messages
//	                            scored by their place (1, 2, ...)
//	sd:{u:<user>}:qm:<queue>    hash: message id -> "<created>,<attempts>,
//	                            <next>,<body>" (times unix ms, 0 for none)
//	sd:{u:<user>}:ql:<queue>    hash: the queue's lease, o owner, u until
//	                            (unix ms)
//
// and one key per queue has a slot of its own:
//
//	sd:due:{<queue>}            sorted set: user ids scored by when they
//	                            are due (unix ms)
//
// The keys expire relative to the Redis clock after their last write
// (history ActivityKeep, seen SeenKeep, queues and due sets queueKeep,
// leases with the lease), while what counts as old is decided against
// the times the caller passes, stored in the values. The scripts use only
// commands that the session scripts use, so the ACL of docs/deploy.md
// covers them.

// queueKeep is how long a queue's keys and a due set live after their last
// write: a message is dropped DeliveryHorizon after it was recorded, so
// they expire only when no instance delivered for a further day.
const queueKeep = 2 * sessiond.DeliveryHorizon

// statsSample is how many users of a due set QueueStats looks at: the
// longest due.
const statsSample = 1000

// recordScript adds history entries and messages of one user.
//
// KEYS[1] history; then for each queue i: KEYS[2i] its order, KEYS[2i+1]
// its messages. ARGV[1] oldest time kept (ms), ARGV[2] ActivityMax,
// ARGV[3] history TTL (ms), ARGV[4] queue TTL (ms), ARGV[5] the number e
// of entries, then e pairs time (ms), JSON; then for each queue the
// number m of its messages, then m pairs id, value. A message whose id is
// already in its queue is not added again, so a Record retried after an
// unacknowledged one does not queue its messages twice.
var recordScript = newScript(`
local h, a = KEYS[1], 6
local e = tonumber(ARGV[5])
for _ = 1, e do
  local at = ARGV[a]
  local top = redis.call('ZRANGE', h, at, at, 'BYSCORE', 'REV', 'LIMIT', 0, 1)[1]
  local seq = 0
  if top then seq = struct.unpack('>I4', top) + 1 end
  redis.call('ZADD', h, at, struct.pack('>I4', seq) .. ARGV[a + 1])
  a = a + 2
end
if e > 0 then
  redis.call('ZREMRANGEBYSCORE', h, '-inf', '(' .. ARGV[1])
  local over = redis.call('ZCARD', h) - tonumber(ARGV[2])
  while over > 0 do -- in chunks: unpack takes a few thousand values at most
    local k = math.min(over, 1000)
    redis.call('ZREM', h, unpack(redis.call('ZRANGE', h, 0, k - 1)))
    over = over - k
  end
  redis.call('PEXPIRE', h, ARGV[3])
end
for q = 2, #KEYS, 2 do
  local order, msgs = KEYS[q], KEYS[q + 1]
  local last = redis.call('ZRANGE', order, -1, -1, 'WITHSCORES')[2]
  local place = last and tonumber(last) or 0
  for _ = 1, tonumber(ARGV[a]) do
    local id = ARGV[a + 1]
    if not redis.call('ZSCORE', order, id) then
      place = place + 1
      redis.call('HSET', msgs, id, ARGV[a + 2])
      redis.call('ZADD', order, place, id)
    end
    a = a + 2
  end
  a = a + 1
  redis.call('PEXPIRE', order, ARGV[4])
  redis.call('PEXPIRE', msgs, ARGV[4])
end
return 1
`)

// markDueScript makes a user due in a queue, and cancels the removal of
// the user's mark that a Pending may be about to make (unmarkScript).
//
// KEYS[1] due set, KEYS[2] unmark hash. ARGV[1] "LT" to only add or lower
// the user's score, "" to set it, ARGV[2] score (ms), ARGV[3] user id,
// ARGV[4] TTL (ms).
var markDueScript = newScript(`
if ARGV[1] == 'LT' then
  redis.call('ZADD', KEYS[1], 'LT', ARGV[2], ARGV[3])
else
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('HDEL', KEYS[2], ARGV[3])
return 1
`)

// intendUnmarkScript is the first step of Pending's removal of a user's
// mark: it records a nonce for the user, which a later markDueScript
// deletes, and leaves the mark in place.
//
// KEYS[1] due set, KEYS[2] unmark hash. ARGV[1] user id, ARGV[2] nonce,
// ARGV[3] TTL (ms). It returns 0 when the user is not marked due (nothing
// to remove), else 1.
var intendUnmarkScript = newScript(`
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1
`)

// unmarkScript removes a user's mark when the nonce of intendUnmarkScript
// is still there: no mark was made, and no other Pending intended to
// remove it, since.
//
// KEYS[1] due set, KEYS[2] unmark hash. ARGV[1] user id, ARGV[2] nonce.
// It returns 1 when it removed the mark, else 0.
var unmarkScript = newScript(`
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[1], ARGV[1])
return 1
`)

// rememberScript records a sign-in and says what was new.
//
// KEYS[1] seen. ARGV[1] now (ms), ARGV[2] oldest time remembered (ms),
// ARGV[3] device, ARGV[4] country ("" for unknown), ARGV[5] SeenMax,
// ARGV[6] TTL (ms). It returns {first, new device, new location}, each 1
// or 0. A time only moves forward (ZADD GT); the least recently seen go
// first, ties in member order.
var rememberScript = newScript(`
local key, now = KEYS[1], ARGV[1]
redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. ARGV[2])
local first = redis.call('ZCARD', key) == 0
local out = {first and 1 or 0, 0, 0}
local dev = 'd:' .. ARGV[3]
if not first and not redis.call('ZSCORE', key, dev) then out[2] = 1 end
redis.call('ZADD', key, 'GT', now, dev)
if ARGV[4] ~= '' then
  local c = 'c:' .. ARGV[4]
  if not first and not redis.call('ZSCORE', key, c) then out[3] = 1 end
  redis.call('ZADD', key, 'GT', now, c)
end
local over = redis.call('ZCARD', key) - tonumber(ARGV[5])
if over > 0 then redis.call('ZREM', key, unpack(redis.call('ZRANGE', key, 0, over - 1))) end
redis.call('PEXPIRE', key, ARGV[6])
return out
`)

// pendingScript reads the first messages of a queue.
//
// KEYS[1] order, KEYS[2] messages. ARGV[1] how many. It returns the flat
// list id, value. An id without a message (which no script leaves) is
// dropped.
var pendingScript = newScript(`
local out = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)) do
  local v = redis.call('HGET', KEYS[2], id)
  if v then
    out[#out + 1] = id
    out[#out + 1] = v
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return out
`)

// deliveredScript removes a message.
//
// KEYS[1] order, KEYS[2] messages. ARGV[1] id.
var deliveredScript = newScript(`
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
`)

// retryScript records a failed delivery.
//
// KEYS[1] order, KEYS[2] messages. ARGV[1] id, ARGV[2] attempts, ARGV[3]
// next (ms), ARGV[4] TTL (ms). It returns -1 when the message is gone,
// else when the queue's first message is due (ms, as a string): its next,
// or its creation when it has none.
var retryScript = newScript(`
local v = redis.call('HGET', KEYS[2], ARGV[1])
if not v then return -1 end
local c, pos = string.match(v, '^(%-?%d+),%-?%d+,%-?%d+,()')
redis.call('HSET', KEYS[2], ARGV[1], c .. ',' .. ARGV[2] .. ',' .. ARGV[3] .. ',' .. string.sub(v, pos))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
local first = redis.call('ZRANGE', KEYS[1], 0, 0)[1]
local fc, fx = string.match(redis.call('HGET', KEYS[2], first) or v, '^(%-?%d+),%-?%d+,(%-?%d+),')
if fx ~= '0' then return fx end
return fc
`)

// leaseScript takes or extends a lease.
//
// KEYS[1] lease. ARGV[1] owner, ARGV[2] now (ms), ARGV[3] until (ms). It
// returns 1 when owner holds the lease until ARGV[3], 0 when another
// owner holds one that has not expired at now.
var leaseScript = newScript(`
local l = redis.call('HMGET', KEYS[1], 'o', 'u')
if l[1] and l[1] ~= ARGV[1] and tonumber(l[2]) > tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'o', ARGV[1], 'u', ARGV[3])
local ttl = tonumber(ARGV[3]) - tonumber(ARGV[2])
if ttl < 1 then ttl = 1 end
redis.call('PEXPIRE', KEYS[1], string.format('%d', ttl))
return 1
`)

// unleaseScript deletes the lease at KEYS[1] when ARGV[1] holds it.
var unleaseScript = newScript(`
if redis.call('HGET', KEYS[1], 'o') == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
`)

// queueStatsScript returns {the number of messages of a queue, the
// creation of its first message (ms, "" when none)}.
//
// KEYS[1] order, KEYS[2] messages.
var queueStatsScript = newScript(`
local n = redis.call('ZCARD', KEYS[1])
local first = redis.call('ZRANGE', KEYS[1], 0, 0)[1]
local v = first and redis.call('HGET', KEYS[2], first)
return {n, v and string.match(v, '^(%-?%d+),') or ''}
`)

var _ sessiond.ActivityStore = (*Store)(nil)

// timeMS returns t in unix milliseconds, 0 for the zero time.
func timeMS(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// fromMS reverses timeMS.
func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

// durMS returns d in milliseconds, as a script argument.
func durMS(d time.Duration) string { return itoa(d.Milliseconds()) }

// Remember implements sessiond.ActivityStore: one script on the user's
// slot.
func (s *Store) Remember(ctx context.Context, userID, device, country string, now time.Time) (sessiond.Novelty, error) {
	ctx, cancel := s.deadline(ctx)
	defer cancel()
	nowMS := now.UnixMilli()
	arr, err := rememberScript.Exec(ctx, s.client, []string{SeenKey(userID)}, []string{
		itoa(nowMS), itoa(nowMS - sessiond.SeenKeep.Milliseconds()), device, country,
		strconv.Itoa(sessiond.SeenMax), durMS(sessiond.SeenKeep),
	}).ToArray()
	if err != nil {
		return sessiond.Novelty{}, wrap(err, "remember")
	}
	if len(arr) != 3 {
		return sessiond.Novelty{}, fmt.Errorf("redis: remember: %w", errCodeUnexpected)
	}
	var f [3]bool
	for i := range f {
		v, err := arr[i].AsInt64()
		if err != nil {
			return sessiond.Novelty{}, fmt.Errorf("redis: remember: %w", errCodeUnexpected)
		}
		f[i] = v == 1
	}
	return sessiond.Novelty{First: f[0], NewDevice: f[1], NewLocation: f[2]}, nil
}

// encodeMessage returns the value of m in its queue's hash.
func encodeMessage(m sessiond.OutboxMessage) string {
	var b strings.Builder
	b.Grow(40 + len(m.Body))
	b.WriteString(itoa(timeMS(m.CreatedAt)))
	b.WriteByte(',')
	b.WriteString(strconv.Itoa(m.Attempts))
	b.WriteByte(',')
	b.WriteString(itoa(timeMS(m.NextAt)))
	b.WriteByte(',')
	b.Write(m.Body)
	return b.String()
}

// decodeMessage reverses encodeMessage.
func decodeMessage(queue, id, v string) (sessiond.OutboxMessage, error) {
	var n [3]int64
	for i := range n {
		f, rest, ok := strings.Cut(v, ",")
		x, err := strconv.ParseInt(f, 10, 64)
		if !ok || err != nil {
			return sessiond.OutboxMessage{}, errCodeUnexpected
		}
		n[i], v = x, rest
	}
	if n[1] < 0 || n[1] > math.MaxInt32 {
		return sessiond.OutboxMessage{}, errCodeUnexpected
	}
	return sessiond.OutboxMessage{
		ID: id, Queue: queue, Body: json.RawMessage(v),
		CreatedAt: fromMS(n[0]), Attempts: int(n[1]), NextAt: fromMS(n[2]),
	}, nil
}

// dueMS is when the first message of a queue is due: its NextAt, else its
// creation.
func dueMS(m sessiond.OutboxMessage) int64 {
	if !m.NextAt.IsZero() {
		return timeMS(m.NextAt)
	}
	return timeMS(m.CreatedAt)
}

// Record implements sessiond.ActivityStore in three steps (docs/design.md,
// "Security activity in Redis"): one script on the user's slot adds the
// entries and messages; then the user is marked due in each queue a
// message went to (ZADD LT: added, or moved earlier, never later); then,
// with replica acknowledgements, it waits for the replicas of the user's
// slot and of those due sets. The order matters: a due mark is only ever
// written after the messages it announces, which is what lets Pending of
// an empty queue remove it safely. A failure after the first step leaves
// messages that are not marked due, and are delivered with the user's
// next record; the caller was told the record failed.
func (s *Store) Record(ctx context.Context, userID string, entries []sessiond.ActivityEntry, msgs []sessiond.OutboxMessage, now time.Time) error {
	if len(entries) == 0 && len(msgs) == 0 {
		return nil
	}
	ctx, cancel := s.deadline(ctx)
	defer cancel()
	nowMS := now.UnixMilli()
	keys := []string{ActivityKey(userID)}
	args := make([]string, 0, 5+2*len(entries)+3*len(msgs)+2)
	args = append(args, itoa(nowMS-sessiond.ActivityKeep.Milliseconds()), strconv.Itoa(sessiond.ActivityMax),
		durMS(sessiond.ActivityKeep), durMS(queueKeep), strconv.Itoa(len(entries)))
	for _, e := range entries {
		args = append(args, itoa(e.At.UnixMilli()), string(e.Data))
	}
	// Queues in the order of their first message; each due at the
	// earliest of its new messages.
	var queues []string
	due := map[string]int64{}
	for _, m := range msgs {
		at := nowMS
		if !m.NextAt.IsZero() {
			at = m.NextAt.UnixMilli()
		}
		if d, ok := due[m.Queue]; !ok || at < d {
			if !ok {
				queues = append(queues, m.Queue)
			}
			due[m.Queue] = at
		}
	}
	for _, q := range queues {
		keys = append(keys, QueueKey(userID, q), MessagesKey(userID, q))
		countAt := len(args)
		args = append(args, "")
		n := 0
		for _, m := range msgs {
			if m.Queue == q {
				args = append(args, m.ID, encodeMessage(m))
				n++
			}
		}
		args[countAt] = strconv.Itoa(n)
	}
	if err := recordScript.Exec(ctx, s.client, keys, args).Error(); err != nil {
		return wrap(err, "record")
	}
	if len(queues) > 0 {
		marks := make([]rueidis.LuaExec, len(queues))
		for i, q := range queues {
			marks[i] = rueidis.LuaExec{Keys: []string{DueKey(q), UnmarkKey(q)}, Args: []string{"LT", itoa(due[q]), userID, durMS(queueKeep)}}
		}
		for _, r := range s.execMulti(ctx, markDueScript, marks) {
			if err := r.Error(); err != nil {
				return wrap(err, "record: mark due")
			}
		}
	}
	if s.acks <= 0 {
		return nil
	}
	slots := []string{keys[0]}
	for _, q := range queues {
		slots = append(slots, DueKey(q))
	}
	if err := s.syncSlots(context.WithoutCancel(ctx), slots); err != nil {
		return notAcked("record", err)
	}
	return nil
}

// execMulti runs script once for each of execs, pipelined (on a Cluster,
// each node gets its part at once): EVALSHA, then EVAL for the calls that
// found the script unknown on their node. rueidis.Lua.ExecMulti would
// first send SCRIPT LOAD to every node on every call, a round trip more,
// and a command the ACL of docs/deploy.md does not grant.
func (s *Store) execMulti(ctx context.Context, script *rueidis.Lua, execs []rueidis.LuaExec) []rueidis.RedisResult {
	src := luaSources[script]
	c := s.client
	cmds := make(rueidis.Commands, len(execs))
	for i, e := range execs {
		cmds[i] = c.B().Evalsha().Sha1(src.sha).Numkeys(int64(len(e.Keys))).Key(e.Keys...).Arg(e.Args...).Build()
	}
	res := c.DoMulti(ctx, cmds...)
	var again []int
	for i, r := range res {
		if re, ok := rueidis.IsRedisErr(r.Error()); ok && re.IsNoScript() {
			again = append(again, i)
		}
	}
	if len(again) > 0 {
		cmds = cmds[:0]
		for _, i := range again {
			e := execs[i]
			cmds = append(cmds, c.B().Eval().Script(src.body).Numkeys(int64(len(e.Keys))).Key(e.Keys...).Arg(e.Args...).Build())
		}
		for j, r := range c.DoMulti(ctx, cmds...) {
			res[again[j]] = r
		}
	}
	return res
}

// syncSlots is syncSlot for the slots of keys at once. A single node
// holds every slot: one wait covers them.
func (s *Store) syncSlots(ctx context.Context, keys []string) error {
	if !s.cluster {
		keys = keys[:1]
	}
	errs := make([]error, len(keys))
	var wg sync.WaitGroup
	for i, k := range keys {
		wg.Go(func() { errs[i] = s.syncSlot(ctx, k) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Activity implements sessiond.ActivityStore: one ZRANGE.
func (s *Store) Activity(ctx context.Context, userID string, since time.Time, limit int) ([]sessiond.ActivityEntry, error) {
	if limit <= 0 {
		return nil, nil
	}
	ctx, cancel := s.deadline(ctx)
	defer cancel()
	from := "-inf"
	if !since.IsZero() {
		from = itoa(since.UnixMilli())
	}
	c := s.client
	zs, err := c.Do(ctx, c.B().Zrange().Key(ActivityKey(userID)).Min("+inf").Max(from).Byscore().Rev().
		Limit(0, int64(limit)).Withscores().Build()).AsZScores()
	if err != nil {
		return nil, wrap(err, "activity")
	}
	var out []sessiond.ActivityEntry
	for _, z := range zs {
		if len(z.Member) < 4 {
			return nil, fmt.Errorf("redis: activity: %w", errCodeUnexpected)
		}
		out = append(out, sessiond.ActivityEntry{At: fromMS(int64(z.Score)), Data: json.RawMessage(z.Member[4:])})
	}
	return out, nil
}

// Due implements sessiond.ActivityStore: one ZRANGE of the queue's due
// set.
func (s *Store) Due(ctx context.Context, queue string, now time.Time, n int) ([]string, error) {
	if n <= 0 {
		return nil, nil
	}
	ctx, cancel := s.deadline(ctx)
	defer cancel()
	c := s.client
	users, err := c.Do(ctx, c.B().Zrange().Key(DueKey(queue)).Min("-inf").Max(itoa(now.UnixMilli())).Byscore().
		Limit(0, int64(n)).Build()).AsStrSlice()
	if err != nil {
		return nil, wrap(err, "due")
	}
	return users, nil
}

// Lease implements sessiond.ActivityStore: a compare-and-set script.
func (s *Store) Lease(ctx context.Context, queue, userID, owner string, now, until time.Time) (bool, error) {
	ctx, cancel := s.deadline(ctx)
	defer cancel()
	ok, err := leaseScript.Exec(ctx, s.client, []string{LeaseKey(userID, queue)},
		[]string{owner, itoa(now.UnixMilli()), itoa(until.UnixMilli())}).AsInt64()
	if err != nil {
		return false, wrap(err, "lease")
	}
	return ok == 1, nil
}

// Unlease implements sessiond.ActivityStore: a compare-and-delete script.
func (s *Store) Unlease(ctx context.Context, queue, userID, owner string) error {
	ctx, cancel := s.deadline(ctx)
	defer cancel()
	return wrap(unleaseScript.Exec(ctx, s.client, []string{LeaseKey(userID, queue)}, []string{owner}).Error(), "unlease")
}

// pending runs pendingScript.
func (s *Store) pending(ctx context.Context, queue, userID string, n int) ([]sessiond.OutboxMessage, error) {
	arr, err := pendingScript.Exec(ctx, s.client, []string{QueueKey(userID, queue), MessagesKey(userID, queue)},
		[]string{strconv.Itoa(n)}).ToArray()
	if err != nil {
		return nil, wrap(err, "pending")
	}
	if len(arr)%2 != 0 {
		return nil, fmt.Errorf("redis: pending: %w", errCodeUnexpected)
	}
	out := make([]sessiond.OutboxMessage, 0, len(arr)/2)
	for i := 0; i < len(arr); i += 2 {
		id, err1 := arr[i].ToString()
		v, err2 := arr[i+1].ToString()
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("redis: pending: %w", errCodeUnexpected)
		}
		m, err := decodeMessage(queue, id, v)
		if err != nil {
			return nil, fmt.Errorf("redis: pending: %w", err)
		}
		out = append(out, m)
	}
	return out, nil
}

// Pending implements sessiond.ActivityStore. When the queue is empty and
// the user is marked due, it removes the mark in three steps: it records
// its intent with a nonce (intendUnmarkScript), reads the queue again,
// and then either marks the user due again, when a message arrived, or
// removes the mark if the nonce is still there (unmarkScript). A Record
// writes its messages before its mark, and its mark deletes the nonce, so
// either the second read sees the messages or the mark stays; and a
// Pending that stops half way leaves the mark (docs/design.md, "Security
// activity in Redis").
func (s *Store) Pending(ctx context.Context, queue, userID string, n int) ([]sessiond.OutboxMessage, error) {
	if n <= 0 {
		return nil, nil
	}
	ctx, cancel := s.deadline(ctx)
	defer cancel()
	msgs, err := s.pending(ctx, queue, userID, n)
	if err != nil || len(msgs) > 0 {
		return msgs, err
	}
	if s.afterEmptyRead != nil {
		s.afterEmptyRead()
	}
	keys := []string{DueKey(queue), UnmarkKey(queue)}
	nonce := strconv.FormatUint(rand.Uint64(), 36)
	marked, err := intendUnmarkScript.Exec(ctx, s.client, keys, []string{userID, nonce, durMS(queueKeep)}).AsInt64()
	if err != nil {
		return nil, wrap(err, "pending: unmark due")
	}
	if marked == 0 {
		return nil, nil // no mark to remove
	}
	if s.afterIntent != nil {
		s.afterIntent()
	}
	again, err := s.pending(ctx, queue, userID, 1)
	if err != nil {
		return nil, err
	}
	if s.afterSecondRead != nil {
		s.afterSecondRead()
	}
	if len(again) > 0 {
		err = markDueScript.Exec(ctx, s.client, keys, []string{"LT", itoa(dueMS(again[0])), userID, durMS(queueKeep)}).Error()
	} else {
		err = unmarkScript.Exec(ctx, s.client, keys, []string{userID, nonce}).Error()
	}
	if err != nil {
		return nil, wrap(err, "pending: unmark due")
	}
	return nil, nil
}

// Delivered implements sessiond.ActivityStore. It leaves the due set
// alone: the Pending that finds the queue empty takes the user out.
func (s *Store) Delivered(ctx context.Context, queue, userID, id string) error {
	ctx, cancel := s.deadline(ctx)
	defer cancel()
	err := deliveredScript.Exec(ctx, s.client, []string{QueueKey(userID, queue), MessagesKey(userID, queue)}, []string{id}).Error()
	return wrap(err, "delivered")
}

// Retry implements sessiond.ActivityStore: one script on the user's slot
// updates the message and reads when the queue's first message is due,
// then the user's due score is set to that (the retried message's next
// when it is the first).
func (s *Store) Retry(ctx context.Context, queue, userID, id string, attempts int, next time.Time) error {
	ctx, cancel := s.deadline(ctx)
	defer cancel()
	res := retryScript.Exec(ctx, s.client, []string{QueueKey(userID, queue), MessagesKey(userID, queue)},
		[]string{id, strconv.Itoa(attempts), itoa(timeMS(next)), durMS(queueKeep)})
	msg, err := res.ToMessage()
	if err != nil {
		return wrap(err, "retry")
	}
	if msg.IsInt64() {
		return notFound("retry") // -1: the message is gone
	}
	at, err := msg.ToString()
	if err != nil {
		return fmt.Errorf("redis: retry: %w", errCodeUnexpected)
	}
	if _, err := strconv.ParseInt(at, 10, 64); err != nil {
		return fmt.Errorf("redis: retry: %w", errCodeUnexpected)
	}
	err = markDueScript.Exec(ctx, s.client, []string{DueKey(queue), UnmarkKey(queue)}, []string{"", at, userID, durMS(queueKeep)}).Error()
	return wrap(err, "retry: mark due")
}

// QueueStats implements sessiond.ActivityStore. It counts the statsSample
// longest due users of the queue (one script per user, pipelined): depth
// is the sum of their messages, oldest the earliest creation of their
// first messages. Messages of users beyond the sample, or not marked due
// (see Record), are not counted.
func (s *Store) QueueStats(ctx context.Context, queue string, _ time.Time) (int, time.Time, error) {
	ctx, cancel := s.deadline(ctx)
	defer cancel()
	c := s.client
	users, err := c.Do(ctx, c.B().Zrange().Key(DueKey(queue)).Min("0").Max(strconv.Itoa(statsSample-1)).Build()).AsStrSlice()
	if err != nil {
		return 0, time.Time{}, wrap(err, "queue stats")
	}
	if len(users) == 0 {
		return 0, time.Time{}, nil
	}
	execs := make([]rueidis.LuaExec, len(users))
	for i, u := range users {
		execs[i] = rueidis.LuaExec{Keys: []string{QueueKey(u, queue), MessagesKey(u, queue)}}
	}
	depth, oldest := 0, int64(math.MaxInt64)
	for _, r := range s.execMulti(ctx, queueStatsScript, execs) {
		arr, err := r.ToArray()
		if err != nil {
			return 0, time.Time{}, wrap(err, "queue stats")
		}
		if len(arr) != 2 {
			return 0, time.Time{}, fmt.Errorf("redis: queue stats: %w", errCodeUnexpected)
		}
		n, err1 := arr[0].AsInt64()
		created, err2 := arr[1].ToString()
		if err1 != nil || err2 != nil {
			return 0, time.Time{}, fmt.Errorf("redis: queue stats: %w", errCodeUnexpected)
		}
		depth += int(n)
		if created != "" {
			at, err := strconv.ParseInt(created, 10, 64)
			if err != nil {
				return 0, time.Time{}, fmt.Errorf("redis: queue stats: %w", errCodeUnexpected)
			}
			oldest = min(oldest, at)
		}
	}
	if oldest == math.MaxInt64 {
		return depth, time.Time{}, nil
	}
	return depth, fromMS(oldest), nil
}
