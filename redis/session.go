package redis

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"

	"github.com/sessiond/sessiond"
)

// Create implements sessiond.SessionStore: replacement, cap and insert are
// one script on the user's slot.
func (s *Store) Create(ctx context.Context, sess *sessiond.Session, limit sessiond.Limit, now time.Time) ([]sessiond.Ended, error) {
	idx, prefix := userKeys(sess.UserID)
	id := encodeID(sess.ID)
	key := prefix + id
	devField, devValue := encodeDeviceID(sess.DeviceID)
	deny := "0"
	if limit.Policy == sessiond.PolicyDeny {
		deny = "1"
	}
	args := append([]string{
		id, ms(now), strconv.Itoa(limit.Max), deny, devField, devValue, ms(sess.ExpiresAt), indexScore(sess.ExpiresAt), prefix,
	}, encodeSession(sess)...)

	ctx, cancel := s.deadline(ctx)
	defer cancel()
	// A cached "missing" for this id (someone probed it before it existed)
	// must not hide the new session on this instance.
	s.recent.set(changed, key)
	res := createScript.Exec(ctx, s.client, []string{idx, key}, args)
	if err := res.Error(); err != nil {
		return nil, wrap("create "+sess.ID, err)
	}
	if code, err := res.AsInt64(); err == nil {
		switch code {
		case -1:
			return nil, fmt.Errorf("redis: create %s: session id exists", sess.ID)
		case -2:
			return nil, fmt.Errorf("redis: create: %w", sessiond.ErrSessionLimit)
		}
		return nil, fmt.Errorf("redis: create: %w %d", errCodeUnexpected, code)
	}
	arr, err := res.ToArray()
	if err != nil || len(arr)%2 != 0 {
		return nil, fmt.Errorf("redis: create: %w", errCodeUnexpected)
	}
	ended := make([]sessiond.Ended, 0, len(arr)/2)
	keys := make([]string, 0, len(arr)/2)
	for i := 0; i < len(arr); i += 2 {
		eid, _ := arr[i].ToString()
		reason, _ := arr[i+1].ToString()
		keys = append(keys, prefix+eid)
		ended = append(ended, sessiond.Ended{ID: decodeID(eid), Reason: sessiond.Reason(reason)})
	}
	s.recent.set(revoked, keys...)
	return ended, nil
}

// Get implements sessiond.SessionStore. It reads the session hash through
// the client-side cache (one HMGET, tracked by Redis, so any change
// anywhere invalidates this process's copy), except in strict mode and for
// sessions this process changed moments ago, which it reads from Redis;
// sessions this process revoked moments ago it refuses outright.
func (s *Store) Get(ctx context.Context, userID, id string, now time.Time) (*sessiond.Session, error) {
	key := SessionKey(userID, id)
	m := s.recent.get(key)
	if m == revoked {
		return nil, notFound("get")
	}
	lazy := s.lazyTimeout(ctx)
	var res rueidis.RedisResult
	if s.strict || m == changed {
		res = s.client.Do(lazy, s.client.B().Hmget().Key(key).Field(fieldNames[:]...).Build())
	} else {
		res = s.client.DoCache(lazy, s.client.B().Hmget().Key(key).Field(fieldNames[:]...).Cache(), s.cacheTTL)
	}
	lazy.release()
	vals, err := res.ToArray()
	if err != nil {
		return nil, wrap("get", err)
	}
	sess, ok, err := decodeSession(userID, id, vals)
	if err != nil {
		return nil, fmt.Errorf("redis: get: %w", err)
	}
	if !ok || !sess.ExpiresAt.After(now) {
		return nil, notFound("get")
	}
	return sess, nil
}

// List implements sessiond.SessionStore in one script call, however many
// sessions the user has.
func (s *Store) List(ctx context.Context, userID string, now time.Time) ([]*sessiond.Session, error) {
	idx, prefix := userKeys(userID)
	ctx, cancel := s.deadline(ctx)
	defer cancel()
	arr, err := listScript.Exec(ctx, s.client, []string{idx}, []string{prefix, ms(now)}).ToArray()
	if err != nil {
		return nil, wrap("list", err)
	}
	const stride = 1 + nFields
	if len(arr)%stride != 0 {
		return nil, fmt.Errorf("redis: list: %w", errCodeUnexpected)
	}
	out := make([]*sessiond.Session, 0, len(arr)/stride)
	for i := 0; i < len(arr); i += stride {
		id, _ := arr[i].ToString()
		sess, ok, err := decodeSession(userID, decodeID(id), arr[i+1:i+stride])
		if err != nil {
			return nil, fmt.Errorf("redis: list: %w", err)
		}
		if ok {
			out = append(out, sess)
		}
	}
	return out, nil
}

// Touch implements sessiond.SessionStore: last_active, the key's expiry and
// the index score move in one script.
//
// Touch does not bypass this process's cache afterwards: a copy read just
// before the invalidation arrives shows the previous LastActive and
// ExpiresAt, which only ever move forward, so it still describes a live
// session (at worst the Manager touches it once more).
func (s *Store) Touch(ctx context.Context, userID, id string, lastActive, expiresAt time.Time) error {
	idx, prefix := userKeys(userID)
	eid := encodeID(id)
	ctx, cancel := s.deadline(ctx)
	defer cancel()
	n, err := touchScript.Exec(ctx, s.client, []string{prefix + eid, idx}, []string{eid, ms(lastActive), ms(expiresAt), indexScore(expiresAt)}).AsInt64()
	if err != nil {
		return wrap("touch", err)
	}
	if n == 0 {
		return notFound("touch")
	}
	return nil
}

// Rotate implements sessiond.SessionStore with a compare-and-set script.
// This process then reads the session from Redis until its cached copy,
// which shows the previous generation, has surely been invalidated.
func (s *Store) Rotate(ctx context.Context, userID, id string, from uint64, at, expiresAt time.Time) (*sessiond.Session, error) {
	idx, prefix := userKeys(userID)
	eid := encodeID(id)
	key := prefix + eid
	ctx, cancel := s.deadline(ctx)
	defer cancel()
	res, ackErr := s.execAcked(ctx, rotateScript, []string{key, idx}, []string{
		eid, strconv.FormatUint(from, 10), strconv.FormatUint(from+1, 10), ms(at), ms(expiresAt), indexScore(expiresAt),
	})
	if err := res.Error(); err != nil {
		return nil, wrap("rotate", err)
	}
	s.recent.set(changed, key)
	if ackErr != nil {
		return nil, wrap("rotate", ackErr)
	}
	return s.sessionReply("rotate", userID, id, res)
}

// Rename implements sessiond.SessionStore.
func (s *Store) Rename(ctx context.Context, userID, id, name string) (*sessiond.Session, error) {
	key := SessionKey(userID, id)
	ctx, cancel := s.deadline(ctx)
	defer cancel()
	res := renameScript.Exec(ctx, s.client, []string{key}, []string{name})
	if err := res.Error(); err != nil {
		return nil, wrap("rename", err)
	}
	s.recent.set(changed, key)
	return s.sessionReply("rename", userID, id, res)
}

// sessionReply decodes the reply of the rotate and rename scripts: -1 gone,
// -2 generation mismatch, else the session's fields.
func (s *Store) sessionReply(op, userID, id string, res rueidis.RedisResult) (*sessiond.Session, error) {
	if code, err := res.AsInt64(); err == nil {
		switch code {
		case -1:
			return nil, notFound(op)
		case -2:
			return nil, fmt.Errorf("redis: %s: %w", op, sessiond.ErrGenerationMismatch)
		}
		return nil, fmt.Errorf("redis: %s: %w %d", op, errCodeUnexpected, code)
	}
	vals, err := res.ToArray()
	if err != nil {
		return nil, fmt.Errorf("redis: %s: %w", op, errCodeUnexpected)
	}
	sess, ok, err := decodeSession(userID, id, vals)
	if err != nil {
		return nil, fmt.Errorf("redis: %s: %w", op, err)
	}
	if !ok {
		return nil, notFound(op)
	}
	return sess, nil
}

// Revoke implements sessiond.SessionStore. The session is recorded as
// revoked before the script runs, so from the moment Revoke returns (even
// with an error: the revocation may have happened) this process refuses
// it, whatever its cache still holds.
func (s *Store) Revoke(ctx context.Context, userID, id string) error {
	idx, prefix := userKeys(userID)
	eid := encodeID(id)
	key := prefix + eid
	s.recent.set(revoked, key)
	ctx, cancel := s.deadline(ctx)
	defer cancel()
	res, ackErr := s.execAcked(ctx, revokeScript, []string{key, idx}, []string{eid})
	n, err := res.AsInt64()
	if err != nil {
		return wrap("revoke", err)
	}
	if ackErr != nil {
		return wrap("revoke", ackErr)
	}
	if n == 0 {
		return notFound("revoke")
	}
	return nil
}

// RevokeOthers implements sessiond.SessionStore in one script call.
func (s *Store) RevokeOthers(ctx context.Context, userID, keepID string) ([]string, error) {
	return s.revokeMany(ctx, "revoke others", userID, encodeID(keepID))
}

// RevokeAll implements sessiond.SessionStore in one script call.
func (s *Store) RevokeAll(ctx context.Context, userID string) ([]string, error) {
	return s.revokeMany(ctx, "revoke all", userID, "")
}

func (s *Store) revokeMany(ctx context.Context, op, userID, keep string) ([]string, error) {
	idx, prefix := userKeys(userID)
	ctx, cancel := s.deadline(ctx)
	defer cancel()
	res, ackErr := s.execAcked(ctx, revokeOthersScript, []string{idx}, []string{prefix, keep})
	arr, err := res.ToArray()
	if err != nil {
		return nil, wrap(op, err)
	}
	ids := make([]string, 0, len(arr))
	keys := make([]string, 0, len(arr))
	for _, m := range arr {
		id, _ := m.ToString()
		keys = append(keys, prefix+id)
		ids = append(ids, decodeID(id))
	}
	s.recent.set(revoked, keys...)
	if ackErr != nil {
		return nil, wrap(op, ackErr)
	}
	return ids, nil
}

// DeleteExpired implements sessiond.SessionStore. Session keys expire by
// themselves (PEXPIREAT) and the scripts drop index members whose session
// is gone, so there is nothing to sweep: it returns 0.
func (s *Store) DeleteExpired(context.Context, time.Time) (int, error) { return 0, nil }
