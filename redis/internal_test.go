package redis

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond"
)

func TestEncodeID(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"AbC-09_.~", "AbC-09_.~"},
		{"{u:1}", "%7Bu%3A1%7D"},
		{"%", "%25"},
		{"a b\n", "a%20b%0A"},
		{"é", "%C3%A9"},
		{"", ""},
	} {
		if got := encodeID(tt.in); got != tt.want {
			t.Errorf("encodeID(%q): got %q, want %q", tt.in, got, tt.want)
		}
		if got := decodeID(tt.want); got != tt.in {
			t.Errorf("decodeID(%q): got %q, want %q", tt.want, got, tt.in)
		}
	}
	// No encoded id contains a character that could end the hash tag or
	// separate key parts.
	for _, in := range []string{"}{", "a:b", "用户", "%7B"} {
		if got := encodeID(in); strings.ContainsAny(got, "{}: ") {
			t.Errorf("encodeID(%q) = %q", in, got)
		}
	}
	if encodeID("%7B") == encodeID("{") {
		t.Error("encodeID is not injective")
	}
}

func TestClientOption(t *testing.T) {
	for _, tt := range []struct {
		url     string
		addrs   []string
		user    string
		pass    string
		db      int
		tls     bool
		shuffle bool
	}{
		{url: "redis://localhost:6380", addrs: []string{"localhost:6380"}},
		{url: "redis://h", addrs: []string{"h:6379"}},
		{url: "redis://u:p%40ss@h:1/2", addrs: []string{"h:1"}, user: "u", pass: "p@ss", db: 2},
		{url: "rediss://:pw@h:1", addrs: []string{"h:1"}, pass: "pw", tls: true},
		{url: "redis://h1:1,h2:2,h3", addrs: []string{"h1:1", "h2:2", "h3:6379"}, shuffle: true},
		{url: "redis://u:p@10.0.0.1:7000,10.0.0.2:7000", addrs: []string{"10.0.0.1:7000", "10.0.0.2:7000"}, user: "u", pass: "p", shuffle: true},
		{url: "redis://[::1]:7000,[::1]:7001", addrs: []string{"[::1]:7000", "[::1]:7001"}, shuffle: true},
	} {
		opt, err := clientOption(Options{URL: tt.url, CacheSize: 1 << 20, ConnWriteTimeout: 2 * time.Second})
		if err != nil {
			t.Errorf("clientOption(%q): %v", tt.url, err)
			continue
		}
		if !slices.Equal(opt.InitAddress, tt.addrs) || opt.Username != tt.user || opt.Password != tt.pass ||
			opt.SelectDB != tt.db || (opt.TLSConfig != nil) != tt.tls || opt.ShuffleInit != tt.shuffle {
			t.Errorf("clientOption(%q): got addrs %v user %q pass %q db %d tls %v shuffle %v", tt.url,
				opt.InitAddress, opt.Username, opt.Password, opt.SelectDB, opt.TLSConfig != nil, opt.ShuffleInit)
		}
		if opt.CacheSizeEachConn != 1<<20 || opt.ConnWriteTimeout != 2*time.Second || opt.Dialer.KeepAlive != keepAlive {
			t.Errorf("clientOption(%q): cache size, write timeout or keep-alive not set", tt.url)
		}
	}
	for _, bad := range []string{"", "localhost:6379", "http://h", "redis://h1,h2/3", "redis://h1,,h2"} {
		if _, err := clientOption(Options{URL: bad}); err == nil {
			t.Errorf("clientOption(%q): got nil error", bad)
		}
	}
	_, err := clientOption(Options{URL: "http://user:hunter2@h"})
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error for a bad URL with a password: %v", err)
	}
	if opt, _ := clientOption(Options{URL: "redis://h", Strict: true}); !opt.DisableCache {
		t.Error("strict mode keeps client tracking on")
	}
}

func TestCodecRoundTrip(t *testing.T) {
	now := time.Now().Truncate(time.Millisecond).UTC()
	for _, s := range []*sessiond.Session{
		{ID: "a", UserID: "u", DeviceID: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", Device: "Chrome on Windows",
			DeviceClass: sessiond.ClassDesktop, IPAddress: "203.0.113.42", Location: "Lagos, Nigeria",
			CreatedAt: now, LastActive: now, ExpiresAt: now.Add(time.Hour), Generation: 1, RotatedAt: now},
		{ID: "b", UserID: "u", DeviceID: "dGhlIGRldmljZSBoYXNo", DeviceClass: "robot", IPAddress: "2001:db8::1",
			Name: "Zoë 📱", CreatedAt: now, LastActive: now, ExpiresAt: now, Generation: 1 << 63, RotatedAt: time.Time{}.UTC()},
		{ID: "c", UserID: "u", DeviceID: "ABCDEF", IPAddress: "fe80::1%eth0", DeviceClass: "", CreatedAt: now},
		{ID: "d", UserID: "u", DeviceID: "device-a", IPAddress: "::ffff:1.2.3.4", DeviceClass: sessiond.ClassUnknown, CreatedAt: now},
		{ID: "e", UserID: "u", DeviceID: "abc", IPAddress: "not an ip", DeviceClass: sessiond.ClassBot, CreatedAt: now},
		{ID: "f", UserID: "u", DeviceID: strings.Repeat("0a", 60), IPAddress: "2001:db8:1:2:3:4:5:6", DeviceClass: sessiond.ClassCLI, CreatedAt: now},
	} {
		kv := encodeSession(s)
		var h hashValues
		for i := 0; i < len(kv); i += 2 {
			h.set(slices.Index(fieldNames[:], kv[i]), kv[i+1])
		}
		got, ok, err := decodeFields(s.UserID, s.ID, &h)
		if err != nil || !ok {
			t.Fatalf("decode %s: (%v, %v)", s.ID, ok, err)
		}
		if !got.RotatedAt.Equal(s.RotatedAt) || !got.CreatedAt.Equal(s.CreatedAt) {
			t.Errorf("session %s: times differ: got %+v", s.ID, got)
		}
		got.RotatedAt, got.CreatedAt = s.RotatedAt, s.CreatedAt
		got.LastActive, got.ExpiresAt = s.LastActive, s.ExpiresAt
		if !reflect.DeepEqual(got, s) {
			t.Errorf("session %s: got %+v, want %+v", s.ID, got, s)
		}
	}
}

func TestRecentAgesOut(t *testing.T) {
	clock := time.Unix(1000, 0)
	r := newRecent(5 * time.Second)
	r.now = func() time.Time { return clock }
	r.at = clock
	r.set(revoked, "a")
	r.set(changed, "b")
	if r.get("a") != revoked || r.get("b") != changed || r.get("c") != unmarked {
		t.Fatal("fresh marks not found")
	}
	r.set(changed, "a") // a re-created id is no longer refused
	if r.get("a") != changed {
		t.Fatal("mark not replaced")
	}
	clock = clock.Add(6 * time.Second) // one generation later: still there
	if r.get("a") != changed || r.get("b") != changed {
		t.Fatal("marks gone after one period, want them kept for at least one")
	}
	clock = clock.Add(5 * time.Second)
	if r.get("a") != unmarked || r.get("b") != unmarked || r.n.Load() != 0 {
		t.Fatal("marks kept after two periods")
	}
}
