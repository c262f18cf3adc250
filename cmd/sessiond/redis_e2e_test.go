package main

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond"
	"github.com/sessiond/sessiond/internal/sessiondtest"
	"github.com/sessiond/sessiond/redis/redistest"
)

// redisPair starts two instances sharing one Redis (sessions) and one data
// directory (users and keys); envB is added to the second one's settings.
func redisPair(t *testing.T, envB map[string]string) (*redistest.Server, *testServer, *testServer) {
	t.Helper()
	r := redistest.Start(t)
	env := map[string]string{"SESSIOND_REDIS_URL": r.URL(), "SESSIOND_DATA_DIR": t.TempDir()}
	a := startServer(t, env)
	for k, v := range envB {
		env[k] = v
	}
	b := startServer(t, env)
	return r, a, b
}

// waitStatus polls GET path with token on c until it answers want, for at
// most ceiling, and returns how long that took. Until then the answer must
// be 200: a revoked session is never anything but accepted (the cached
// copy) or refused.
func waitStatus(t *testing.T, c *sessiondtest.Client, path, token string, want int, ceiling time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		r := c.Do("GET", path, token, nil)
		if r.StatusCode == want {
			return time.Since(start)
		}
		if r.StatusCode != 200 {
			t.Fatalf("GET %s: got %d while waiting for %d: %s", path, r.StatusCode, want, r.Body)
		}
		if time.Since(start) > ceiling {
			t.Fatalf("GET %s still %d after %v, want %d", path, r.StatusCode, ceiling, want)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestRevocationCrossesInstances(t *testing.T) {
	for _, strict := range []bool{false, true} {
		name := "cached"
		if strict {
			name = "strict"
		}
		t.Run(name, func(t *testing.T) {
			env := map[string]string{}
			if strict {
				env["SESSIOND_REDIS_STRICT"] = "true"
			}
			_, a, b := redisPair(t, env)
			ca, cb := sessiondtest.NewClient(t, a.URL), sessiondtest.NewClient(t, b.URL)
			ca.Register("nora")
			keep := cb.Login("nora", nil) // signed in on B
			gone := ca.Login("nora", nil) // signed in on A
			for range 20 {                // cached on both
				ca.Do("GET", "/api/v1/me", gone.AccessToken, nil).Expect(t, 200)
				cb.Do("GET", "/api/v1/me", gone.AccessToken, nil).Expect(t, 200)
			}
			ca.Do("DELETE", "/api/v1/sessions/"+gone.Session.ID, keep.AccessToken, nil).Expect(t, 200)
			ca.Do("GET", "/api/v1/me", gone.AccessToken, nil).Expect(t, 401)
			if strict {
				cb.Do("GET", "/api/v1/me", gone.AccessToken, nil).Expect(t, 401)
			} else {
				d := waitStatus(t, cb, "/api/v1/me", gone.AccessToken, 401, time.Second)
				t.Logf("instance B refused the revoked session after %v", d)
			}
			// The other session works on both; lists agree.
			var la, lb []sessiondtest.Session
			ca.Do("GET", "/api/v1/sessions", keep.AccessToken, nil).Expect(t, 200).Decode(t, &la)
			cb.Do("GET", "/api/v1/sessions", keep.AccessToken, nil).Expect(t, 200).Decode(t, &lb)
			if len(la) != 1 || len(lb) != 1 || la[0].ID != keep.Session.ID || lb[0].ID != keep.Session.ID {
				t.Fatalf("lists after revoke: A %+v, B %+v", la, lb)
			}
			// A refresh token minted by A works on B.
			cb.Do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": keep.RefreshToken}).Expect(t, 200)
		})
	}
}

// TestNothingSecretAtRest dumps every key and value in Redis, the SQLite
// files and the logs after logins and refreshes, and looks for tokens, the
// password and the keys.
func TestNothingSecretAtRest(t *testing.T) {
	r := redistest.Start(t)
	ts := startServer(t, map[string]string{"SESSIOND_REDIS_URL": r.URL()})
	c := sessiondtest.NewClient(t, ts.URL)
	c.Register("pia")
	var secrets []string
	for range 3 {
		g := c.Login("pia", map[string]string{"device_id": "device-secret-id-123"})
		var g2 sessiondtest.Grant
		c.Do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": g.RefreshToken}).Expect(t, 200).Decode(t, &g2)
		for _, tok := range []string{g.AccessToken, g.RefreshToken, g2.AccessToken, g2.RefreshToken} {
			secrets = append(secrets, tok)
			parts := strings.Split(tok, ".")
			secrets = append(secrets, parts[len(parts)-1]) // JWT signature or refresh MAC
		}
	}
	c.Do("POST", "/api/v1/auth/login", "", map[string]string{"username": "pia", "password": "wrong password here"}).Expect(t, 401)
	secrets = append(secrets, sessiondtest.Password, "wrong password here", "device-secret-id-123")
	sk, err := sessiond.ParseSigningKey(mustReadFile(t, filepath.Join(ts.DataDir, "signing-key.pem")))
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, base64.RawURLEncoding.EncodeToString(sk.Key.Seed()), base64.StdEncoding.EncodeToString(sk.Key.Seed()), string(sk.Key.Seed()))
	rk, err := sessiond.ParseRefreshKey(mustReadFile(t, filepath.Join(ts.DataDir, "refresh-key")))
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, base64.StdEncoding.EncodeToString(rk.Secret), base64.RawURLEncoding.EncodeToString(rk.Secret), string(rk.Secret))

	var dump bytes.Buffer
	keys := strings.Fields(r.MustDo("KEYS", "*"))
	if len(keys) == 0 {
		t.Fatal("Redis holds no keys: the test would prove nothing")
	}
	for _, k := range keys {
		dump.WriteString(k + "\n")
		switch typ := r.MustDo("TYPE", k); typ {
		case "hash":
			dump.WriteString(r.MustDo("HGETALL", k))
		case "zset":
			dump.WriteString(r.MustDo("ZRANGE", k, "0", "-1", "WITHSCORES"))
		case "string":
			dump.WriteString(r.MustDo("GET", k))
		default:
			t.Fatalf("key %s has unexpected type %s", k, typ)
		}
		if ttl := r.MustDo("PTTL", k); strings.HasPrefix(ttl, "-") {
			t.Fatalf("key %s has no expiry (PTTL %s)", k, ttl)
		}
	}
	places := map[string][]byte{"redis": dump.Bytes(), "logs": []byte(ts.Logs.String())}
	files, _ := filepath.Glob(filepath.Join(ts.DataDir, "sessiond.db*"))
	for _, f := range files {
		places[filepath.Base(f)] = mustReadFile(t, f)
	}
	for where, data := range places {
		for _, s := range secrets {
			if bytes.Contains(data, []byte(s)) {
				t.Errorf("%s contains a secret (%d bytes, starting %q)", where, len(s), s[:min(len(s), 6)])
			}
		}
	}
	_ = os.Remove
}

// TestRedisReplicaAcks checks that SESSIOND_REDIS_REPLICA_ACKS reaches the
// store: with one acknowledgement required, start-up warns about a master
// without replica, and there a sign-in answers 503 (its security record is
// acknowledged like a revocation, docs/design.md "Security activity"); with
// a replica in sync it answers 200, and once the replica is gone a
// sign-out answers 503; with a replica again, sign-outs answer 200.
func TestRedisReplicaAcks(t *testing.T) {
	master := redistest.Start(t)
	ts := startServer(t, map[string]string{
		"SESSIOND_REDIS_URL":          master.URL(),
		"SESSIOND_REDIS_REPLICA_ACKS": "1",
		"SESSIOND_REDIS_TIMEOUT":      "1s",
	})
	if logs := ts.Logs.String(); !strings.Contains(logs, "fewer than SESSIOND_REDIS_REPLICA_ACKS=1") {
		t.Fatalf("start-up log does not warn of the master without replica:\n%s", logs)
	}
	c := sessiondtest.NewClient(t, ts.URL)
	c.Register("alice")
	c.Attempt("alice", sessiondtest.Password).Expect(t, http.StatusServiceUnavailable)

	replica := redistest.StartReplica(t, master)
	g := c.Login("alice", nil)
	replica.Kill()
	c.Do("POST", "/api/v1/auth/logout", g.AccessToken, nil).Expect(t, http.StatusServiceUnavailable)

	redistest.StartReplica(t, master)
	g = c.Login("alice", nil)
	c.Do("POST", "/api/v1/auth/logout", g.AccessToken, nil).Expect(t, http.StatusOK)
	c.Do("GET", "/api/v1/me", g.AccessToken, nil).Expect(t, http.StatusUnauthorized)
}
