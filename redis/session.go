package redis

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"

	"github.com/sessiond/sessiond"
)

// Create implements sessiond.SessionStore: replacement, cap and insert are
// one script on the user's slot.
func (s *Store) Create(ctx context.Context, sess *sessiond.Session, limit sessiond.SessionCap, now time.Time) ([]sessiond.Ended, error) {
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
		return nil, wrap(err, "create "+sess.ID)
	}
	if code, err := res.AsInt64(); err == nil {
		switch code {
		case -1:
			return nil, fmt.Errorf("redis: create %s: session id exists", sess.ID)
		case -2:
			return nil, fmt.Errorf("redis: create: %w", sessiond.ErrSessionLimit)
		case -3:
			return s.createChunked(ctx, sess, limit, now, args)
		}
		return nil, fmt.Errorf("redis: create: %w %d", errCodeUnexpected, code)
	}
	arr, err := res.ToArray()
	if err != nil {
		return nil, fmt.Errorf("redis: create: %w", errCodeUnexpected)
	}
	return s.endedReply(prefix, arr, nil)
}

// endedReply decodes the flat list id, reason of the sessions a create
// script removed, appends them to ended and records them as revoked.
func (s *Store) endedReply(prefix string, arr []rueidis.RedisMessage, ended []sessiond.Ended) ([]sessiond.Ended, error) {
	if len(arr)%2 != 0 {
		return ended, fmt.Errorf("redis: create: %w", errCodeUnexpected)
	}
	if ended == nil {
		ended = make([]sessiond.Ended, 0, len(arr)/2)
	}
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

// createRounds bounds the scans of Create's chunked path: each round that
// does not insert has evicted up to a chunk, so this many suffice for a
// user over the hard maximum, with room for concurrent changes.
const createRounds = sessiond.HardMaxSessions/sessiond.StoreChunk + 4

// createChunked is Create for a user with more sessions than one script
// may touch: it scans the user's sessions in chunks for the same device and
// for the least recently active, then replaces, evicts and inserts in one
// script that checks each candidate again. args are the create script's.
func (s *Store) createChunked(ctx context.Context, sess *sessiond.Session, limit sessiond.SessionCap, now time.Time, args []string) ([]sessiond.Ended, error) {
	idx, prefix := userKeys(sess.UserID)
	key := prefix + encodeID(sess.ID)
	devField, devValue := encodeDeviceID(sess.DeviceID)
	fields := []string{"p"}
	if devField != "" {
		fields = append(fields, devField)
	}
	var ended []sessiond.Ended
	for range createRounds {
		type cand struct {
			id              string
			active, created int64
		}
		rows, err := s.scan(ctx, "create "+sess.ID, idx, prefix, now, fields)
		if err != nil {
			return ended, err
		}
		var live []cand
		var replace []string
		for _, r := range rows {
			p, _ := r.vals[0].ToString()
			if len(p) < recIP {
				continue
			}
			if devField != "" {
				if v, _ := r.vals[1].ToString(); v == devValue {
					replace = append(replace, r.id)
					continue
				}
			}
			live = append(live, cand{r.id, get48(p[6:]), get48(p)})
		}
		if limit.Max > 0 && limit.Policy == sessiond.PolicyDeny && len(live) >= limit.Max {
			return ended, fmt.Errorf("redis: create: %w", sessiond.ErrSessionLimit)
		}
		var evict []string
		if over := len(live) - limit.Max + 1; limit.Max > 0 && over > 0 {
			slices.SortFunc(live, func(a, b cand) int {
				return cmp.Or(cmp.Compare(a.active, b.active), cmp.Compare(a.created, b.created), strings.Compare(a.id, b.id))
			})
			// A few more than needed, in case some end meanwhile.
			n := min(over+8, len(live), max(sessiond.StoreChunk-len(replace), 0))
			for _, c := range live[:n] {
				evict = append(evict, c.id)
			}
		}
		replace = replace[:min(len(replace), sessiond.StoreChunk)]
		fargs := append(append(append(append([]string{}, args[:9]...),
			strconv.Itoa(len(replace)), strconv.Itoa(len(evict))), replace...), evict...)
		fargs = append(fargs, args[9:]...)
		cctx, cancel := s.deadline(ctx)
		res := createFinishScript.Exec(cctx, s.client, []string{idx, key}, fargs)
		cancel()
		if err := res.Error(); err != nil {
			return ended, wrap(err, "create "+sess.ID)
		}
		if code, err := res.AsInt64(); err == nil {
			switch code {
			case -1:
				return ended, fmt.Errorf("redis: create %s: session id exists", sess.ID)
			case -2:
				return ended, fmt.Errorf("redis: create: %w", sessiond.ErrSessionLimit)
			}
			return ended, fmt.Errorf("redis: create: %w %d", errCodeUnexpected, code)
		}
		arr, err := res.ToArray()
		if err != nil || len(arr) == 0 {
			return ended, fmt.Errorf("redis: create: %w", errCodeUnexpected)
		}
		more, _ := arr[0].AsInt64()
		if ended, err = s.endedReply(prefix, arr[1:], ended); err != nil {
			return ended, err
		}
		if more == 0 {
			if ended == nil {
				ended = []sessiond.Ended{}
			}
			return ended, nil
		}
	}
	return ended, fmt.Errorf("redis: create %s: %w: the user's sessions kept changing", sess.ID, sessiond.ErrUnavailable)
}

// scanRestarts bounds how often a scan starts over because the session it
// was to continue after moved in the index (it was touched or ended).
const scanRestarts = 5

// scan returns the id (encoded) and the requested fields of each session
// of the user's index live at now, read a chunk per script call, each
// session once. fields must start with "p".
func (s *Store) scan(ctx context.Context, op, idx, prefix string, now time.Time, fields []string) ([]scanned, error) {
	stride := 1 + len(fields)
	args := append([]string{prefix, ms(now), "", "", strconv.Itoa(sessiond.StoreChunk), "1"}, fields...)
restart:
	for range scanRestarts {
		var out []scanned
		seen := make(map[string]bool)
		args[2], args[3] = "", ""
		for {
			cctx, cancel := s.deadline(ctx)
			res := scanScript.Exec(cctx, s.client, []string{idx}, args)
			cancel()
			if err := res.Error(); err != nil {
				return nil, wrap(err, op)
			}
			if code, err := res.AsInt64(); err == nil {
				if code != -1 {
					return nil, fmt.Errorf("redis: %s: %w %d", op, errCodeUnexpected, code)
				}
				continue restart
			}
			arr, err := res.ToArray()
			if err != nil || len(arr) < 3 || (len(arr)-3)%stride != 0 {
				return nil, fmt.Errorf("redis: %s: %w", op, errCodeUnexpected)
			}
			args[2], _ = arr[0].ToString()
			args[3], _ = arr[1].ToString()
			done, _ := arr[2].AsInt64()
			for i := 3; i < len(arr); i += stride {
				id, _ := arr[i].ToString()
				// A session touched during the scan moves later in the
				// index and may be read twice.
				if seen[id] {
					continue
				}
				seen[id] = true
				out = append(out, scanned{id, arr[i+1 : i+stride]})
			}
			if done == 1 {
				return out, nil
			}
		}
	}
	return nil, fmt.Errorf("redis: %s: %w: the user's sessions kept changing", op, sessiond.ErrUnavailable)
}

// scanned is one session read by scan: its encoded id and fields.
type scanned struct {
	id   string
	vals []rueidis.RedisMessage
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
		return nil, wrap(err, "get")
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

// List implements sessiond.SessionStore: one script call for a user with
// up to sessiond.StoreChunk sessions, one per chunk beyond.
func (s *Store) List(ctx context.Context, userID string, now time.Time) ([]*sessiond.Session, error) {
	idx, prefix := userKeys(userID)
	rows, err := s.scan(ctx, "list", idx, prefix, now, fieldNames[:])
	if err != nil {
		return nil, err
	}
	out := make([]*sessiond.Session, 0, len(rows))
	for _, r := range rows {
		sess, ok, err := decodeSession(userID, decodeID(r.id), r.vals)
		if err != nil {
			return nil, fmt.Errorf("redis: list: %w", err)
		}
		if ok {
			out = append(out, sess)
		}
	}
	return out, nil
}

// ListPage implements sessiond.SessionStore. The index is ordered by
// expiry, not by activity, so it reads the times of every session of the
// user (a chunk per script call, the packed record only), sorts them, and
// then reads the full fields of the page's sessions, one pipelined HMGET
// each. A session that ended between the two steps is left out and the
// next candidates in order are read in its place, so the page is short
// only when no more sessions come after it: a caller asking for one more
// than it shows then knows whether another page follows.
func (s *Store) ListPage(ctx context.Context, userID string, now time.Time, after *sessiond.ListPosition, excludeID string, limit int) ([]*sessiond.Session, error) {
	idx, prefix := userKeys(userID)
	rows, err := s.scan(ctx, "list page", idx, prefix, now, fieldNames[fRecord:fRecord+1])
	if err != nil {
		return nil, err
	}
	exclude := encodeID(excludeID)
	type entry struct {
		key string
		pos sessiond.ListPosition
	}
	entries := make([]entry, 0, len(rows))
	for _, r := range rows {
		p, _ := r.vals[0].ToString()
		if len(p) < recIP || (excludeID != "" && r.id == exclude) {
			continue
		}
		e := entry{prefix + r.id, sessiond.ListPosition{
			CreatedAt: time.UnixMilli(get48(p)).UTC(), LastActive: time.UnixMilli(get48(p[6:])).UTC(), ID: decodeID(r.id),
		}}
		if after != nil && e.pos.Compare(*after) <= 0 {
			continue
		}
		entries = append(entries, e)
	}
	slices.SortFunc(entries, func(a, b entry) int { return a.pos.Compare(b.pos) })
	if s.afterPageScan != nil {
		s.afterPageScan()
	}
	out := make([]*sessiond.Session, 0, min(max(limit, 0), len(entries)))
	// Each round reads as many candidates as the page still lacks, so it
	// reads at least one, and a later round runs only when a session
	// ended since the scan: the rounds are bounded by the candidates.
	for len(out) < limit && len(entries) > 0 {
		batch := entries[:min(limit-len(out), len(entries))]
		entries = entries[len(batch):]
		cmds := make(rueidis.Commands, len(batch))
		for i, e := range batch {
			cmds[i] = s.client.B().Hmget().Key(e.key).Field(fieldNames[:]...).Build()
		}
		cctx, cancel := s.deadline(ctx)
		results := s.client.DoMulti(cctx, cmds...)
		cancel()
		for i, res := range results {
			vals, err := res.ToArray()
			if err != nil {
				return nil, wrap(err, "list page")
			}
			sess, ok, err := decodeSession(userID, batch[i].pos.ID, vals)
			if err != nil {
				return nil, fmt.Errorf("redis: list page: %w", err)
			}
			// A session that ended since the scan is left out; the next
			// round reads another candidate in its place.
			if ok && sess.ExpiresAt.After(now) {
				out = append(out, sess)
			}
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
		return wrap(err, "touch")
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
		return nil, wrap(err, "rotate")
	}
	s.recent.set(changed, key)
	sess, err := s.sessionReply("rotate", userID, id, res)
	if err == nil && ackErr != nil {
		// Rotated on the master, not known to be on enough replicas.
		return sess, notAcked("rotate", ackErr)
	}
	if err != nil && ackErr != nil {
		// Not rotated (gone, or another generation), and that answer
		// itself is not confirmed by the replicas.
		return nil, fmt.Errorf("redis: rotate: %w: %w", sessiond.ErrUnavailable, ackErr)
	}
	return sess, err
}

// Update implements sessiond.SessionStore.
func (s *Store) Update(ctx context.Context, userID, id string, ch sessiond.SessionChange) (*sessiond.Session, error) {
	key := SessionKey(userID, id)
	args := []string{"0", "", "0", ""}
	if ch.Name != nil {
		args[0], args[1] = "1", *ch.Name
	}
	if ch.Claims != nil {
		args[2], args[3] = "1", string(*ch.Claims)
	}
	ctx, cancel := s.deadline(ctx)
	defer cancel()
	res := updateScript.Exec(ctx, s.client, []string{key}, args)
	if err := res.Error(); err != nil {
		return nil, wrap(err, "update")
	}
	s.recent.set(changed, key)
	return s.sessionReply("update", userID, id, res)
}

// sessionReply decodes the reply of the rotate and update scripts: -1 gone,
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
		return wrap(err, "revoke")
	}
	switch {
	case ackErr != nil && n == 1:
		// Deleted on the master, not known to be on enough replicas.
		return notAcked("revoke", ackErr)
	case ackErr != nil:
		// Already gone on the master (an earlier, unconfirmed revocation
		// deleted it), maybe not on the replicas: not found is not sure.
		return fmt.Errorf("redis: revoke: %w: %w", sessiond.ErrUnavailable, ackErr)
	case n == 0:
		return notFound("revoke")
	}
	return nil
}

// RevokeOthers implements sessiond.SessionStore: one script call for a
// user with up to sessiond.StoreChunk other sessions, one per chunk beyond.
func (s *Store) RevokeOthers(ctx context.Context, userID, keepID string) ([]string, error) {
	return s.revokeMany(ctx, "revoke others", userID, encodeID(keepID))
}

// RevokeAll implements sessiond.SessionStore like RevokeOthers.
func (s *Store) RevokeAll(ctx context.Context, userID string) ([]string, error) {
	return s.revokeMany(ctx, "revoke all", userID, "")
}

// revokeRounds bounds the chunks of one revoke-others or revoke-all: enough
// for a user at the hard maximum, with room for sessions created meanwhile.
const revokeRounds = 2*sessiond.HardMaxSessions/sessiond.StoreChunk + 2

func (s *Store) revokeMany(ctx context.Context, op, userID, keep string) ([]string, error) {
	idx, prefix := userKeys(userID)
	ids := []string{}
	for range revokeRounds {
		cctx, cancel := s.deadline(ctx)
		res, ackErr := s.execAcked(cctx, revokeChunkScript, []string{idx}, []string{prefix, keep, strconv.Itoa(sessiond.StoreChunk)})
		arr, err := res.ToArray()
		cancel()
		if err != nil {
			return ids, wrap(err, op)
		}
		if len(arr) == 0 {
			return ids, fmt.Errorf("redis: %s: %w", op, errCodeUnexpected)
		}
		keys := make([]string, 0, len(arr)-1)
		for _, m := range arr[1:] {
			id, _ := m.ToString()
			keys = append(keys, prefix+id)
			ids = append(ids, decodeID(id))
		}
		s.recent.set(revoked, keys...)
		if ackErr != nil {
			// The chunk is gone on the master but not known to be on
			// enough replicas: report what ended, and fail.
			return ids, notAcked(op, ackErr)
		}
		if done, _ := arr[0].AsInt64(); done == 1 {
			return ids, nil
		}
	}
	return ids, fmt.Errorf("redis: %s: %w: sessions kept being created", op, sessiond.ErrUnavailable)
}

// DeleteExpired implements sessiond.SessionStore. Session keys expire by
// themselves (PEXPIREAT) and the scripts drop index members whose session
// is gone, so there is nothing to sweep: it returns 0.
func (s *Store) DeleteExpired(context.Context, time.Time) (int, error) { return 0, nil }
