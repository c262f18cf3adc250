package main

import (
	"bufio"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/internal/sessiondtest"
	"github.com/sessiond/sessiond/redis/redistest"
)

// TestRedisACLOfTheDocs runs the whole API, with replica acknowledgements,
// as the Redis user that docs/deploy.md defines, and checks that Redis
// refused nothing: the documented ACL line is all sessiond needs.
func TestRedisACLOfTheDocs(t *testing.T) {
	acl := deployACL(t)
	r := redistest.Start(t)
	redistest.StartReplica(t, r)
	r.MustDo(append([]string{"ACL", "SETUSER"}, acl...)...)
	r.MustDo("ACL", "LOG", "RESET")

	dataDir := filepath.Join(t.TempDir(), "data")
	key := newAdminKey(t, map[string]string{"SESSIOND_DATA_DIR": dataDir}, "app")
	ts := startServer(t, map[string]string{
		"SESSIOND_REDIS_URL":          "redis://sessiond:change-me@" + r.Addr() + "/0",
		"SESSIOND_REDIS_REPLICA_ACKS": "1",
		"SESSIOND_DATA_DIR":           dataDir,
	})
	c := sessiondtest.NewClient(t, ts.URL)
	c.WaitReadyz(t, http.StatusOK, 5*time.Second)
	ada := c.Register("ada")
	// A handoff, redeemed and then replayed.
	var h struct {
		HandoffURL string `json:"handoff_url"`
	}
	sessiondtest.NewAdminClient(t, ts.AdminURL).Do("POST", "/admin/v1/sessions", key, map[string]any{"user_id": ada.ID, "handoff": true}).
		Expect(t, http.StatusCreated).Decode(t, &h)
	c.Do("GET", h.HandoffURL, "", nil).Expect(t, http.StatusOK) // 303 to the page, followed
	c.Do("GET", h.HandoffURL, "", nil).Expect(t, http.StatusBadRequest)
	g := c.Login("ada", nil)
	other := c.Login("ada", nil)
	stream := sessiondtest.Subscribe(t, ts.URL, g.AccessToken)
	c.Do("GET", "/api/v1/sessions", g.AccessToken, nil).Expect(t, 200)
	c.Do("PATCH", "/api/v1/sessions/"+other.Session.ID, g.AccessToken, map[string]string{"name": "phone"}).Expect(t, 200)
	c.PostRefresh(g.RefreshToken).Expect(t, 200)
	c.Do("DELETE", "/api/v1/sessions/"+other.Session.ID, g.AccessToken, nil).Expect(t, 200)
	c.Do("GET", "/api/v1/me", other.AccessToken, nil).Expect(t, 401)
	for _, wrong := range []string{"nope-1", "nope-2"} { // counted by the throttles
		c.Attempt("ada", wrong).Expect(t, 401)
	}
	deadline := time.After(5 * time.Second)
	for seen := false; !seen; {
		select {
		case ev, ok := <-stream:
			if !ok {
				t.Fatal("the event stream ended")
			}
			seen = ev.Event == "revoked"
		case <-deadline:
			t.Fatal("no revoked event within 5 s")
		}
	}
	c.Do("DELETE", "/api/v1/sessions", g.AccessToken, nil).Expect(t, 200)

	// Redis logs every command an ACL refused. CLIENT SETINFO (Redis 7.2
	// and later) is sent by the client library, which ignores a refusal.
	log := r.MustDo("ACL", "LOG")
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "setinfo") {
			continue
		}
		if strings.Contains(line, "reason") || strings.Contains(line, "NOPERM") {
			t.Fatalf("Redis refused a command of sessiond under the documented ACL:\n%s", log)
		}
	}
}

// deployACL returns the ACL SETUSER arguments of the "user sessiond" line
// of docs/deploy.md.
func deployACL(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("../../docs/deploy.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) > 2 && fields[0] == "user" && fields[1] == "sessiond" {
			return fields[1:]
		}
	}
	t.Fatal("docs/deploy.md has no \"user sessiond\" ACL line")
	return nil
}
