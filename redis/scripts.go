package redis

import (
	"fmt"
	"strings"

	"github.com/redis/rueidis"

	"github.com/sessiond/sessiond"
)

// Every operation that touches more than one key, or reads and then writes,
// is one Lua script run with EVALSHA (rueidis falls back to EVAL once after
// a NOSCRIPT). All keys of a script share the user's hash tag, so a script
// runs on one Cluster node; session keys other than KEYS are built inside
// the script from the user's session key prefix, which has the same tag.
// Scripts never scan the keyspace: they walk the user's index.

// luaPrelude defines the field list (in fieldNames order), the position
// FP of the packed record p in it, times and settimes, which read and
// rewrite the times in a session's record (see codec.go), and fixidx,
// which keeps the index's expiry equal to its greatest member's score
// (unix seconds).
var luaPrelude = func() string {
	var b strings.Builder
	b.WriteString("local F = {")
	for i, f := range fieldNames {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "'%s'", f)
	}
	b.WriteString("}\n")
	fmt.Fprintf(&b, "local FP = %d\n", fRecord+1)
	b.WriteString(`
-- times returns CreatedAt, LastActive, ExpiresAt and RotatedAt (unix ms)
-- from a session's record p; nothing when the session is gone (p nil).
local function times(p)
  if p then return struct.unpack('>i6i6i6i6', p) end
end

-- settimes sets LastActive, ExpiresAt and, unless r is nil, RotatedAt
-- (unix ms) in the record of the session at key, so neither the other
-- times nor the rest of the record can go back. It returns false when the
-- session is gone.
local function settimes(key, a, x, r)
  local p = redis.call('HGET', key, 'p')
  if not p then return false end
  local t, _, _, r0 = struct.unpack('>i6i6i6i6', p)
  redis.call('HSET', key, 'p', struct.pack('>i6i6i6i6', t, a, x, r or r0) .. string.sub(p, 25))
  return true
end

local function fixidx(idx)
  local top = redis.call('ZRANGE', idx, -1, -1, 'WITHSCORES')
  if top[2] then redis.call('EXPIREAT', idx, top[2]) end
end
`)
	return b.String()
}()

func script(body string) *rueidis.Lua {
	return newScript(luaPrelude + fmt.Sprintf("local CHUNK = %d\n", sessiond.StoreChunk) + body)
}

// createScript stores a new session.
//
// KEYS[1] index, KEYS[2] new session key.
// ARGV[1] new id, ARGV[2] now (ms), ARGV[3] cap (<= 0: none), ARGV[4] "1"
// for the deny policy, ARGV[5] device id field ("" for none), ARGV[6]
// device id value, ARGV[7] expires at (ms), ARGV[8] its index score (s),
// ARGV[9] session key prefix, ARGV[10...] the hash's field, value pairs.
//
// It returns -1 when the id exists, -2 when the deny policy refuses, -3
// when a cap or device id must be checked against more than CHUNK sessions
// (then Create takes the chunked path: scanScript, then createFinishScript),
// or the flat list id, reason of the sessions it removed. Sessions expired
// at now are neither counted nor reported; members whose hash is gone are
// dropped from the index.
var createScript = script(`
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
local now, max, devf, prefix = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[5], ARGV[9]
local live, replaced, gone = {}, {}, {}
if max > 0 or devf ~= '' then
  if redis.call('ZCARD', KEYS[1]) > CHUNK then return -3 end
  for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
    local h = redis.call('HMGET', prefix .. id, 'p', devf ~= '' and devf or 'p')
    local t, a, x = times(h[1])
    if not t then
      gone[#gone + 1] = id
    elseif x > now then
      if devf ~= '' and h[2] == ARGV[6] then
        replaced[#replaced + 1] = id
      else
        live[#live + 1] = {id, a, t}
      end
    end
  end
end
if max > 0 and ARGV[4] == '1' and #live >= max then return -2 end
for _, id in ipairs(gone) do redis.call('ZREM', KEYS[1], id) end
local ended = {}
for _, id in ipairs(replaced) do
  redis.call('DEL', prefix .. id)
  redis.call('ZREM', KEYS[1], id)
  ended[#ended + 1] = id
  ended[#ended + 1] = 'replaced'
end
if max > 0 and #live >= max then
  table.sort(live, function(p, q)
    if p[2] ~= q[2] then return p[2] < q[2] end
    if p[3] ~= q[3] then return p[3] < q[3] end
    return p[1] < q[1]
  end)
  for i = 1, #live - max + 1 do
    local id = live[i][1]
    redis.call('DEL', prefix .. id)
    redis.call('ZREM', KEYS[1], id)
    ended[#ended + 1] = id
    ended[#ended + 1] = 'evicted'
  end
end
redis.call('HSET', KEYS[2], unpack(ARGV, 10))
redis.call('PEXPIREAT', KEYS[2], ARGV[7])
redis.call('ZADD', KEYS[1], ARGV[8], ARGV[1])
fixidx(KEYS[1])
return ended
`)

// scanScript reads one chunk of a user's sessions, in index order, for
// List and for Create's chunked path.
//
// KEYS[1] index. ARGV[1] session key prefix, ARGV[2] now (ms), ARGV[3]
// the member after which the chunk starts ("" for the first chunk),
// ARGV[4] that member's score as the previous chunk saw it, ARGV[5] the
// chunk size, ARGV[6] the position in ARGV[7...] of the packed record
// 'p', ARGV[7...] the fields to read.
//
// It returns -1 when the member to start after is gone or has moved (the
// caller starts over), else {last member, its score, 1 when this was the
// last chunk else 0, then for every live session its id and the fields
// read}. The returned member is the last one still indexed (the input one
// when the chunk kept none), so the next chunk starts exactly after it.
// Members whose hash is gone are dropped from the index.
var scanScript = script(`
local idx, prefix, now, n, fp = KEYS[1], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[5]), tonumber(ARGV[6])
local start = 0
if ARGV[3] ~= '' then
  local sc = redis.call('ZSCORE', idx, ARGV[3])
  if not sc or sc ~= ARGV[4] then return -1 end
  start = redis.call('ZRANK', idx, ARGV[3]) + 1
end
local fields = {unpack(ARGV, 7)}
local done = start + n >= redis.call('ZCARD', idx) and 1 or 0
local members = redis.call('ZRANGE', idx, start, start + n - 1, 'WITHSCORES')
local last, lastScore = ARGV[3], ARGV[4]
local out = {'', '', done}
local pruned = false
for i = 1, #members, 2 do
  local id = members[i]
  local h = redis.call('HMGET', prefix .. id, unpack(fields))
  local t, _, x = times(h[fp])
  if not t then
    redis.call('ZREM', idx, id)
    pruned = true
  else
    last, lastScore = id, members[i + 1]
    if x > now then
      out[#out + 1] = id
      for j = 1, #fields do out[#out + 1] = h[j] end
    end
  end
end
if pruned then fixidx(idx) end
out[1], out[2] = last, lastScore
return out
`)

// createFinishScript ends Create's chunked path: it replaces, evicts and
// inserts in one step, given the candidates a scan found, and checks each
// candidate again, since the scan was not atomic with it.
//
// KEYS[1] index, KEYS[2] new session key. ARGV[1] new id, ARGV[2] now
// (ms), ARGV[3] cap (<= 0: none), ARGV[4] "1" for the deny policy,
// ARGV[5] device id field ("" for none), ARGV[6] device id value, ARGV[7]
// expires at (ms), ARGV[8] its index score (s), ARGV[9] session key
// prefix, ARGV[10] the number r of sessions to replace, ARGV[11] the
// number e of eviction candidates (least recently active first),
// ARGV[12...] the r ids to replace then the e candidates, then the hash's
// field, value pairs.
//
// The live count is the members whose index score is after now (a member
// of a session that expired less than a second ago still counts). It
// returns -1 when the id exists, -2 when the deny policy refuses, else
// {0 when the session was inserted or 1 when the candidates did not make
// room (the caller scans again), then the flat list id, reason of the
// sessions it removed}.
var createFinishScript = script(`
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
local idx, now, max, devf, prefix = KEYS[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[5], ARGV[9]
local nr, ne = tonumber(ARGV[10]), tonumber(ARGV[11])
local count = redis.call('ZCOUNT', idx, '(' .. math.floor(now / 1000), '+inf')
local replaced = {}
for i = 12, 11 + nr do
  local id = ARGV[i]
  local h = redis.call('HMGET', prefix .. id, 'p', devf)
  local _, _, x = times(h[1])
  if x and x > now and h[2] == ARGV[6] then replaced[#replaced + 1] = id end
end
count = count - #replaced
if max > 0 and ARGV[4] == '1' and count >= max then return -2 end
local ended = {0}
for _, id in ipairs(replaced) do
  redis.call('DEL', prefix .. id)
  redis.call('ZREM', idx, id)
  ended[#ended + 1] = id
  ended[#ended + 1] = 'replaced'
end
local i = 12 + nr
while max > 0 and count >= max and i <= 11 + nr + ne do
  local id = ARGV[i]
  i = i + 1
  local _, _, x = times(redis.call('HGET', prefix .. id, 'p'))
  if x and x > now then
    redis.call('DEL', prefix .. id)
    redis.call('ZREM', idx, id)
    count = count - 1
    ended[#ended + 1] = id
    ended[#ended + 1] = 'evicted'
  end
end
if max > 0 and count >= max then
  ended[1] = 1
  fixidx(idx)
  return ended
end
redis.call('HSET', KEYS[2], unpack(ARGV, 12 + nr + ne))
redis.call('PEXPIREAT', KEYS[2], ARGV[7])
redis.call('ZADD', idx, ARGV[8], ARGV[1])
fixidx(idx)
return ended
`)

// touchScript records activity.
//
// KEYS[1] session key, KEYS[2] index. ARGV[1] id, ARGV[2] last active
// (ms), ARGV[3] expires at (ms), ARGV[4] its index score (s). It returns
// 0 when the session is gone.
var touchScript = script(`
if not settimes(KEYS[1], ARGV[2], ARGV[3]) then return 0 end
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
fixidx(KEYS[2])
return 1
`)

// rotateScript advances the refresh generation with a compare-and-set.
//
// KEYS[1] session key, KEYS[2] index. ARGV[1] id, ARGV[2] expected
// generation, ARGV[3] next generation, ARGV[4] rotated at (ms), ARGV[5]
// expires at (ms), ARGV[6] its index score (s). It returns -1 when the
// session is gone, -2 when the generation differs, else the updated fields
// in fieldNames order.
var rotateScript = script(`
local g = redis.call('HGET', KEYS[1], 'g')
if not g then return -1 end
if g ~= ARGV[2] then return -2 end
redis.call('HSET', KEYS[1], 'g', ARGV[3])
settimes(KEYS[1], ARGV[4], ARGV[5], ARGV[4])
redis.call('PEXPIREAT', KEYS[1], ARGV[5])
redis.call('ZADD', KEYS[2], ARGV[6], ARGV[1])
fixidx(KEYS[2])
return redis.call('HMGET', KEYS[1], unpack(F))
`)

// updateScript sets or clears the name and the claims.
//
// KEYS[1] session key. ARGV[1] "1" to change the name, ARGV[2] the name,
// ARGV[3] "1" to change the claims, ARGV[4] the claims. An empty value
// clears its field. It returns -1 when the session is gone, else the
// updated fields in fieldNames order.
var updateScript = script(`
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
for i, f in ipairs({'n', 'c'}) do
  if ARGV[2*i-1] == '1' then
    local v = ARGV[2*i]
    if v == '' then
      redis.call('HDEL', KEYS[1], f)
    else
      redis.call('HSET', KEYS[1], f, v)
    end
  end
end
return redis.call('HMGET', KEYS[1], unpack(F))
`)

// revokeScript deletes one session.
//
// KEYS[1] session key, KEYS[2] index. ARGV[1] id. It returns 1 when the
// session existed, else 0.
var revokeScript = script(`
local n = redis.call('DEL', KEYS[1])
if redis.call('ZREM', KEYS[2], ARGV[1]) == 1 then fixidx(KEYS[2]) end
return n
`)

// revokeChunkScript deletes up to a chunk of the user's sessions, all but
// one.
//
// KEYS[1] index. ARGV[1] session key prefix, ARGV[2] id to keep ("" for
// none: revoke all), ARGV[3] the chunk size. It returns {1 when nothing
// but the kept session is left, else 0, then the ids of the sessions that
// existed}.
var revokeChunkScript = script(`
local idx, prefix, keep, n = KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3])
local out, k = {0}, 0
for _, id in ipairs(redis.call('ZRANGE', idx, 0, n)) do
  if id ~= keep and k < n then
    k = k + 1
    if redis.call('DEL', prefix .. id) == 1 then out[#out + 1] = id end
    redis.call('ZREM', idx, id)
  end
end
local left = redis.call('ZCARD', idx)
if left == 0 or (left == 1 and keep ~= '' and redis.call('ZSCORE', idx, keep)) then out[1] = 1 end
if left > 0 then fixidx(idx) end
return out
`)

// limiterTakeScript is a throttle's atomic check-and-add over counters of
// one slot: if each holds fewer than its limit, it records one event under
// each; otherwise it records nothing.
//
// KEYS counters. ARGV[1] now (ms), ARGV[2] event member ("": record
// nothing), then for KEYS[i]: ARGV[3i] events at or before this leave
// (ms), ARGV[3i+1] limit, ARGV[3i+2] window (ms). The pruning of every
// counter is a write even when nothing is recorded, so a Redis that
// refuses writes (READONLY, NOREPLICAS, MISCONF) refuses every Take. Out
// of memory (OOM), Redis refuses a script only before its first write:
// the pruning passes, and so does the event, which is then recorded.
// It returns {0, '0'} when there was room, else {i, score of the oldest
// event of KEYS[i]} for the first full counter. Each counter expires when
// its newest event leaves the window.
var limiterTakeScript = rueidis.NewLuaScript(`
for i = 1, #KEYS do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', ARGV[3 * i])
  if redis.call('ZCARD', KEYS[i]) >= tonumber(ARGV[3 * i + 1]) then
    local first = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
    return {i, first[2]}
  end
end
if ARGV[2] ~= '' then
  local now = tonumber(ARGV[1])
  for i = 1, #KEYS do
    local w = tonumber(ARGV[3 * i + 2])
    redis.call('ZADD', KEYS[i], ARGV[1], ARGV[2])
    local top = redis.call('ZRANGE', KEYS[i], -1, -1, 'WITHSCORES')
    local ttl = tonumber(top[2]) + w - now
    if ttl < w then ttl = w end
    redis.call('PEXPIRE', KEYS[i], string.format('%d', ttl))
  end
end
return {0, '0'}
`)
