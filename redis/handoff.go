package redis

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/sessiond/sessiond"
)

// Handoff records (docs/design.md, "Handoff") are one hash each, at
// HandoffKey, with the fields u (user id), s (session id), x (expiry, unix
// ms) and n ("1" once used), expiring with the record. They use the
// commands the session scripts use, so the ACL of docs/deploy.md covers
// them.

// putHandoffScript replaces the record at KEYS[1].
// ARGV[1] user id, ARGV[2] session id, ARGV[3] expiry (unix ms).
var putHandoffScript = newScript(`
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'u', ARGV[1], 's', ARGV[2], 'x', ARGV[3], 'n', '0')
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
return 1
`)

// takeHandoffScript marks the record at KEYS[1] used, keeping its expiry,
// and returns {user id, session id, expiry, "0" if it was unused before};
// nil when there is none or it expired at ARGV[1] (unix ms).
var takeHandoffScript = newScript(`
local r = redis.call('HMGET', KEYS[1], 'u', 's', 'x', 'n')
if not r[1] or not r[3] or tonumber(r[3]) <= tonumber(ARGV[1]) then return false end
if r[4] ~= '1' then redis.call('HSET', KEYS[1], 'n', '1') end
return {r[1], r[2], r[3], r[4] or '0'}
`)

// PutHandoff implements sessiond.SessionStore. It waits for no replica:
// a record lost in a failover only makes its code unknown, which the
// browser is told and the app answers by signing the user in again.
func (s *Store) PutHandoff(ctx context.Context, codeHash string, h sessiond.Handoff) error {
	ctx, cancel := s.deadline(ctx)
	defer cancel()
	res := putHandoffScript.Exec(ctx, s.client, []string{HandoffKey(codeHash)},
		[]string{h.UserID, h.SessionID, strconv.FormatInt(h.ExpiresAt.UnixMilli(), 10)})
	return wrap(res.Error(), "put handoff")
}

// TakeHandoff implements sessiond.SessionStore. With replica
// acknowledgements it waits for them like a revocation (unlike
// PutHandoff): a used mark lost in a failover would make a used code
// work a second time.
func (s *Store) TakeHandoff(ctx context.Context, codeHash string, now time.Time) (*sessiond.Handoff, bool, error) {
	ctx, cancel := s.deadline(ctx)
	defer cancel()
	res, ackErr := s.execAcked(ctx, takeHandoffScript, []string{HandoffKey(codeHash)}, []string{strconv.FormatInt(now.UnixMilli(), 10)})
	arr, err := res.ToArray()
	if err != nil {
		return nil, false, wrap(err, "take handoff")
	}
	if ackErr != nil {
		return nil, false, notAcked("take handoff", ackErr)
	}
	if len(arr) != 4 {
		return nil, false, fmt.Errorf("redis: take handoff: %w", errCodeUnexpected)
	}
	var f [4]string
	for i := range f {
		if f[i], err = arr[i].ToString(); err != nil {
			return nil, false, fmt.Errorf("redis: take handoff: %w", errCodeUnexpected)
		}
	}
	exp, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil {
		return nil, false, fmt.Errorf("redis: take handoff: %w", errCodeUnexpected)
	}
	return &sessiond.Handoff{UserID: f[0], SessionID: f[1], ExpiresAt: time.UnixMilli(exp).UTC()}, f[3] != "1", nil
}
