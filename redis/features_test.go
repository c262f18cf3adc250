package redis_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond"
	"github.com/sessiond/sessiond/redis"
	"github.com/sessiond/sessiond/redis/redistest"
)

func TestBroker(t *testing.T) {
	testBroker(t, redistest.Start(t).URL())
}

// testBroker checks that an event published on one instance reaches a
// subscriber on another, and that unsubscribing ends the stream.
func testBroker(t *testing.T, url string) {
	ctx := context.Background()
	a := redis.NewBroker(newStore(t, redis.Options{URL: url}))
	b := redis.NewBroker(newStore(t, redis.Options{URL: url}))
	user, other := "{u:1}:"+randomID(), randomID()

	events, unsubscribe, err := b.Subscribe(ctx, user)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	defer unsubscribe()
	otherEvents, unsubscribeOther, err := b.Subscribe(ctx, other)
	if err != nil {
		t.Fatalf("Subscribe(other): %v", err)
	}
	defer unsubscribeOther()
	same, unsubscribeSame, err := a.Subscribe(ctx, user)
	if err != nil {
		t.Fatalf("Subscribe on the publishing instance: %v", err)
	}
	defer unsubscribeSame()

	now := time.Now().Truncate(time.Millisecond).UTC()
	s := testSession(user, now)
	s.Name = "Zoë's laptop"
	sent := []sessiond.Event{
		{Type: sessiond.EventCreated, UserID: user, SessionID: s.ID, Session: s},
		{Type: sessiond.EventRenamed, UserID: user, SessionID: s.ID, Session: s},
		{Type: sessiond.EventRevoked, UserID: user, SessionID: s.ID, Reason: sessiond.ReasonRevokedOthers},
	}
	for _, e := range sent {
		if err := a.Publish(ctx, e); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}
	for name, ch := range map[string]<-chan sessiond.Event{"other instance": events, "same instance": same} {
		for i, want := range sent {
			select {
			case got := <-ch:
				if got.Type != want.Type || got.UserID != user || got.SessionID != want.SessionID || got.Reason != want.Reason {
					t.Fatalf("%s: event %d: got %+v, want %+v", name, i, got, want)
				}
				if want.Session != nil && (got.Session == nil || !reflect.DeepEqual(got.Session, want.Session)) {
					t.Fatalf("%s: event %d: got session %+v, want %+v", name, i, got.Session, want.Session)
				}
			case <-time.After(2 * time.Second):
				t.Fatalf("%s: event %d (%s) did not arrive", name, i, want.Type)
			}
		}
	}
	select {
	case e := <-otherEvents:
		t.Fatalf("another user's subscriber got %+v", e)
	case <-time.After(20 * time.Millisecond):
	}

	unsubscribe()
	if _, ok := <-events; ok {
		t.Fatal("channel still open after unsubscribe")
	}
	// Subscribing again works after the last subscription ended.
	again, unsubscribeAgain, err := b.Subscribe(ctx, user)
	if err != nil {
		t.Fatalf("second Subscribe: %v", err)
	}
	defer unsubscribeAgain()
	if err := a.Publish(ctx, sent[2]); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	select {
	case <-again:
	case <-time.After(2 * time.Second):
		t.Fatal("event after resubscribing did not arrive")
	}
}

func TestBrokerResubscribesAfterConnectionLoss(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	a := redis.NewBroker(newStore(t, redis.Options{URL: srv.URL()}))
	b := redis.NewBroker(newStore(t, redis.Options{URL: srv.URL()}))
	user := randomID()
	events, unsubscribe, err := b.Subscribe(ctx, user)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	defer unsubscribe()
	srv.MustDo("CLIENT", "KILL", "TYPE", "pubsub")
	srv.MustDo("CLIENT", "KILL", "TYPE", "normal")
	e := sessiond.Event{Type: sessiond.EventRevoked, UserID: user, SessionID: "s", Reason: sessiond.ReasonLogout}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_ = a.Publish(ctx, e)
		select {
		case <-events:
			return
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("no event arrived after the subscriber's connection was killed")
		}
	}
}

func TestEveryKeyHasTTL(t *testing.T) {
	srv := redistest.Start(t)
	testEveryKeyHasTTL(t, redis.Options{URL: srv.URL()}, []*redistest.Server{srv})
}

// testEveryKeyHasTTL runs a mix of operations and checks that every key
// left in Redis expires.
func testEveryKeyHasTTL(t *testing.T, o redis.Options, nodes []*redistest.Server) {
	ctx := context.Background()
	st := newStore(t, o)
	lim := redis.NewLimiter(st)
	now := time.Now()
	for i := range 20 {
		user := fmt.Sprintf("user:{%d}", i)
		var ss []*sessiond.Session
		for j := range 4 {
			s := testSession(user, now)
			s.DeviceID = strconv.Itoa(j % 3)
			if _, err := st.Create(ctx, s, sessiond.SessionCap{Max: 3, Policy: sessiond.PolicyEvict}, now); err != nil {
				t.Fatalf("Create: %v", err)
			}
			ss = append(ss, s)
		}
		last := ss[len(ss)-1]
		switch i % 5 {
		case 0:
			_ = st.Touch(ctx, user, last.ID, now.Add(time.Minute), now.Add(time.Hour))
		case 1:
			_, _ = st.Rotate(ctx, user, last.ID, 1, now.Add(time.Minute), now.Add(2*time.Hour))
		case 2:
			_, _ = st.RevokeOthers(ctx, user, last.ID)
		case 3:
			_ = st.Revoke(ctx, user, last.ID)
		case 4:
			name := "name"
			_, _ = st.Update(ctx, user, last.ID, sessiond.SessionChange{Name: &name})
		}
		if _, err := st.List(ctx, user, now); err != nil {
			t.Fatalf("List: %v", err)
		}
		if _, err := lim.Take(ctx, []sessiond.Budget{{Key: "login:" + user, Window: time.Minute, N: 1 << 20}}, fmt.Sprint(i), now); err != nil {
			t.Fatalf("limiter Take: %v", err)
		}
	}
	total := 0
	for _, n := range nodes {
		cursor := "0"
		for {
			r := n.MustDo("SCAN", cursor, "COUNT", "1000")
			lines := strings.Split(r, "\n")
			cursor = lines[0]
			for _, k := range lines[1:] {
				if k == "" {
					continue
				}
				total++
				pttl, err := strconv.Atoi(n.MustDo("PTTL", k))
				if err != nil || pttl <= 0 {
					t.Errorf("key %q: PTTL %d, want > 0", k, pttl)
				}
			}
			if cursor == "0" {
				break
			}
		}
	}
	if total < 60 {
		t.Fatalf("found %d keys, want at least 60", total)
	}
}

func TestIndexExpiresWithItsLastSession(t *testing.T) {
	srv := redistest.Start(t)
	st := newStore(t, redis.Options{URL: srv.URL()})
	ctx := context.Background()
	user := randomID()
	now := time.Now()
	var last *sessiond.Session
	for i := range 3 {
		s := testSession(user, now)
		s.DeviceID = ""
		s.ExpiresAt = now.Add(time.Duration(i+1) * time.Hour)
		create(t, st, s)
		last = s
	}
	// The index is scored in whole seconds: it expires at the end of
	// the second in which its last session does.
	wantIndexExpiry := func(want time.Time) {
		t.Helper()
		got, _ := strconv.ParseInt(srv.MustDo("EXPIRETIME", redis.IndexKey(user)), 10, 64)
		if wantS := (want.UnixMilli() + 999) / 1000; got != wantS {
			t.Fatalf("index EXPIRETIME: got %d, want %d", got, wantS)
		}
	}
	wantIndexExpiry(last.ExpiresAt)
	later := now.Add(5 * time.Hour)
	if err := st.Touch(ctx, user, last.ID, now, later); err != nil {
		t.Fatalf("Touch: %v", err)
	}
	wantIndexExpiry(later)
	if err := st.Revoke(ctx, user, last.ID); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	wantIndexExpiry(now.Add(2 * time.Hour))
	if _, err := st.RevokeAll(ctx, user); err != nil {
		t.Fatalf("RevokeAll: %v", err)
	}
	if got := srv.MustDo("EXISTS", redis.IndexKey(user)); got != "0" {
		t.Fatalf("index after RevokeAll: EXISTS %s, want 0", got)
	}
}

// TestManySessions lists a user with 1,000 sessions in one script call and
// revokes one with 10,000 in a call per chunk.
func TestManySessions(t *testing.T) {
	srv := redistest.Start(t)
	st := newStore(t, redis.Options{URL: srv.URL(), Timeout: time.Second})
	ctx := context.Background()
	now := time.Now()
	user := randomID()
	createMany := func(n int) []*sessiond.Session {
		ss := make([]*sessiond.Session, n)
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for w := range 8 {
			wg.Go(func() {
				for i := w; i < n; i += 8 {
					s := testSession(user, now)
					s.DeviceID = "" // no cap, no device: no index walk per create
					ss[i] = s
					if _, err := st.Create(ctx, s, sessiond.SessionCap{}, now); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			t.Fatalf("Create: %v", err)
		}
		return ss
	}

	createMany(1000)
	before := calls(t, srv, "evalsha")
	start := time.Now()
	list, err := st.List(ctx, user, now)
	if err != nil {
		t.Fatalf("List of 1,000: %v", err)
	}
	t.Logf("List of 1,000 sessions: %s", time.Since(start))
	if len(list) != 1000 {
		t.Fatalf("List: got %d sessions, want 1000", len(list))
	}
	if got := calls(t, srv, "evalsha") - before; got != 1 {
		t.Fatalf("List of 1,000 took %d script calls, want 1", got)
	}

	createMany(9000)
	before = calls(t, srv, "evalsha")
	start = time.Now()
	revoked, err := st.RevokeAll(ctx, user)
	if err != nil {
		t.Fatalf("RevokeAll of 10,000: %v", err)
	}
	t.Logf("RevokeAll of 10,000 sessions: %s", time.Since(start))
	if len(revoked) != 10000 {
		t.Fatalf("RevokeAll: got %d ids, want 10000", len(revoked))
	}
	// One script call per chunk, so Redis serves others in between.
	if got, want := calls(t, srv, "evalsha")-before, sessiond.HardMaxSessions/sessiond.StoreChunk; got != want {
		t.Fatalf("RevokeAll of 10,000 took %d script calls, want %d", got, want)
	}
	if got := srv.MustDo("DBSIZE"); got != "0" {
		t.Fatalf("DBSIZE after RevokeAll: %s, want 0", got)
	}
	if _, err := st.Get(ctx, user, revoked[1234], now); !errors.Is(err, sessiond.ErrNotFound) {
		t.Fatalf("Get after RevokeAll: got %v, want ErrNotFound", err)
	}
}

func TestCheck(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name         string
		config       []string
		wantProblem  string
		wantWarnings int
	}{
		{"no persistence is a warning", nil, "", 1},
		{"AOF is fine", []string{"appendonly", "yes"}, "", 0},
		{"AOF with snapshots is fine", []string{"appendonly", "yes", "save", "3600 1"}, "", 0},
		{"snapshots without AOF are refused", []string{"save", "3600 1 300 100"}, "RDB snapshots", 0},
		{"eviction is refused", []string{"maxmemory-policy", "allkeys-lru", "appendonly", "yes"}, "maxmemory-policy is allkeys-lru", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := redistest.Start(t, redistest.WithConfig(tt.config...))
			warnings, err := newStore(t, redis.Options{URL: srv.URL()}).Check(ctx)
			var ce *redis.CheckError
			if tt.wantProblem == "" && err != nil {
				t.Fatalf("Check: got error %v, want nil", err)
			}
			if tt.wantProblem != "" && (!errors.As(err, &ce) || !strings.Contains(err.Error(), tt.wantProblem)) {
				t.Fatalf("Check: got error %v, want a CheckError about %q", err, tt.wantProblem)
			}
			if len(warnings) != tt.wantWarnings {
				t.Fatalf("Check: got warnings %q, want %d", warnings, tt.wantWarnings)
			}
		})
	}

	t.Run("CONFIG refused by an ACL is a warning", func(t *testing.T) {
		srv := redistest.Start(t)
		srv.MustDo("ACL", "SETUSER", "app", "on", ">secret", "~*", "&*", "+@all", "-config")
		st := newStore(t, redis.Options{URL: "redis://app:secret@" + srv.Addr()})
		warnings, err := st.Check(ctx)
		if err != nil {
			t.Fatalf("Check: got error %v, want nil", err)
		}
		if len(warnings) != 1 || !strings.Contains(warnings[0], "could not read") {
			t.Fatalf("Check: got warnings %q, want one saying it could not check", warnings)
		}
	})

	t.Run("an unreachable Redis is unavailable", func(t *testing.T) {
		srv := redistest.Start(t)
		st := newStore(t, redis.Options{URL: srv.URL()})
		srv.Kill()
		if _, err := st.Check(ctx); !errors.Is(err, sessiond.ErrUnavailable) {
			t.Fatalf("Check with Redis down: got %v, want ErrUnavailable", err)
		}
	})
}

func TestNewFailsWhenRedisIsDown(t *testing.T) {
	srv := redistest.Start(t)
	srv.Kill()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err := redis.New(ctx, redis.Options{URL: srv.URL()})
	if !errors.Is(err, sessiond.ErrUnavailable) {
		t.Fatalf("New with Redis down: got %v, want ErrUnavailable", err)
	}
}

func TestUserPasswordAndDatabaseFromURL(t *testing.T) {
	srv := redistest.Start(t)
	srv.MustDo("ACL", "SETUSER", "app", "on", ">s3cret", "~*", "&*", "+@all")
	st := newStore(t, redis.Options{URL: "redis://app:s3cret@" + srv.Addr() + "/3"})
	create(t, st, testSession(randomID(), time.Now()))
	if info := srv.MustDo("INFO", "keyspace"); !strings.Contains(info, "db3:keys=2") {
		t.Fatalf("INFO keyspace: got %q, want the session and its index in db3", info)
	}
	_, err := redis.New(context.Background(), redis.Options{URL: "redis://app:wrong@" + srv.Addr()})
	if err == nil {
		t.Fatal("New with a wrong password: got nil error")
	}
	if strings.Contains(err.Error(), "wrong@") {
		t.Fatalf("New with a wrong password: the error %q shows the password", err)
	}
}

// TestTouchAndRotateKeepTheRecord checks that Touch and Rotate, which
// rewrite the times in the packed record, keep the rest of the session
// (device id, class, IP address) as it was, never bring back an older
// RotatedAt or generation, and leave the hash with its compact fields.
func TestTouchAndRotateKeepTheRecord(t *testing.T) {
	srv := redistest.Start(t)
	st := newStore(t, redis.Options{URL: srv.URL(), Strict: true})
	ctx := context.Background()
	now := time.Now().Truncate(time.Millisecond).UTC()
	s := testSession(randomID(), now.Add(-time.Hour))
	s.DeviceID = "dGhlIGRldmljZSBoYXNo" // kept as bytes in field e
	s.DeviceClass = sessiond.ClassMobile
	s.IPAddress = "2001:db8::1"
	create(t, st, s)

	want := func(op string, got *sessiond.Session, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", op, err)
		}
		g, w := *got, *s
		if !g.CreatedAt.Equal(w.CreatedAt) || !g.LastActive.Equal(w.LastActive) ||
			!g.ExpiresAt.Equal(w.ExpiresAt) || !g.RotatedAt.Equal(w.RotatedAt) {
			t.Fatalf("%s: got times %v %v %v %v, want %v %v %v %v", op, g.CreatedAt, g.LastActive, g.ExpiresAt,
				g.RotatedAt, w.CreatedAt, w.LastActive, w.ExpiresAt, w.RotatedAt)
		}
		g.CreatedAt, g.LastActive, g.ExpiresAt, g.RotatedAt = w.CreatedAt, w.LastActive, w.ExpiresAt, w.RotatedAt
		if !reflect.DeepEqual(g, w) {
			t.Fatalf("%s: got %+v, want %+v", op, g, w)
		}
	}
	at := now.Add(-time.Minute)
	s.Generation, s.LastActive, s.RotatedAt, s.ExpiresAt = 2, at, at, at.Add(time.Hour)
	got, err := st.Rotate(ctx, s.UserID, s.ID, 1, at, s.ExpiresAt)
	want("Rotate", got, err)
	s.LastActive, s.ExpiresAt = now, now.Add(time.Hour)
	if err := st.Touch(ctx, s.UserID, s.ID, s.LastActive, s.ExpiresAt); err != nil {
		t.Fatalf("Touch: %v", err)
	}
	got, err = st.Get(ctx, s.UserID, s.ID, now)
	want("Get after Rotate and Touch", got, err)
	list, err := st.List(ctx, s.UserID, now)
	if err != nil || len(list) != 1 {
		t.Fatalf("List: got (%d sessions, %v), want 1", len(list), err)
	}
	want("List", list[0], nil)

	fields := strings.Split(srv.MustDo("HKEYS", redis.SessionKey(s.UserID, s.ID)), "\n")
	slices.Sort(fields)
	if got, want := strings.Join(fields, " "), "e g l p v"; got != want {
		t.Fatalf("HKEYS after Rotate and Touch: got %s, want %s", got, want)
	}
}
