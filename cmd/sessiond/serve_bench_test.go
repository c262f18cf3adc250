package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/sessiond/sessiond/internal/sessiondtest"
	"github.com/sessiond/sessiond/redis/redistest"
)

// These benchmarks run the whole program in-process, as startServer does,
// and load it over loopback HTTP from the same process, so that
//
//	go test ./cmd/sessiond -run '^$' -bench Serve -cpuprofile cpu.out
//
// profiles the server under the load of bench/ (the client's share of
// the profile is net/http's client side and is easy to tell apart).
// bench/ measures the ratios; these only give profiles and allocations.

// benchLogin registers a user on base and returns an access token for one
// new session of it.
func benchLogin(b *testing.B, hc *http.Client, base string) string {
	b.Helper()
	post := func(path string, body any, out any) {
		j, _ := json.Marshal(body)
		resp, err := hc.Post(base+path, "application/json", bytes.NewReader(j))
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode/100 != 2 {
			b.Fatalf("POST %s: %d %s", path, resp.StatusCode, raw)
		}
		if out != nil {
			if err := json.Unmarshal(raw, out); err != nil {
				b.Fatal(err)
			}
		}
	}
	post("/api/v1/auth/register", map[string]string{"username": "bench", "email": "bench@example.com", "password": sessiondtest.Password}, nil)
	var g struct {
		Data sessiondtest.Grant `json:"data"`
	}
	post("/api/v1/auth/login", map[string]string{"username": "bench", "password": sessiondtest.Password}, &g)
	return g.Data.AccessToken
}

func benchGet(b *testing.B, hc *http.Client, url, token string) {
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		for pb.Next() {
			resp, err := hc.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("GET %s: %d", url, resp.StatusCode)
				return
			}
		}
	})
}

func benchServe(b *testing.B, env map[string]string) {
	ts := startServer(b, env)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}
	defer hc.CloseIdleConnections()
	token := benchLogin(b, hc, ts.URL)
	if env["SESSIOND_REDIS_URL"] != "" {
		// The instance that wrote a session reads it from Redis until its
		// recent-write record ages out (5 to 10 s): measure after that.
		time.Sleep(11 * time.Second)
	}
	b.SetParallelism(8)
	b.Run("me", func(b *testing.B) { benchGet(b, hc, ts.URL+"/api/v1/me", token) })
	b.Run("jwks", func(b *testing.B) { benchGet(b, hc, ts.URL+"/.well-known/jwks.json", "") })
}

func BenchmarkServeSQLite(b *testing.B) {
	benchServe(b, nil)
}

func BenchmarkServeRedis(b *testing.B) {
	r := redistest.Start(b)
	benchServe(b, map[string]string{"SESSIOND_REDIS_URL": r.URL()})
}
