package http

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func TestClientIP(t *testing.T) {
	const proxies = "10.0.0.0/8, 192.168.1.1, fd00::/8, 2001:db8:ffff::1"
	for _, tc := range []struct {
		name    string
		trusted string
		peer    string
		xff     []string // one string per header field
		want    string
	}{
		{name: "untrusted peer", trusted: proxies, peer: "203.0.113.7:51234", want: "203.0.113.7"},
		{name: "no trusted proxies", trusted: "", peer: "10.0.0.1:1234", xff: []string{"198.51.100.1"}, want: "10.0.0.1"},
		{name: "spoofed header from untrusted peer", trusted: proxies, peer: "203.0.113.7:51234", xff: []string{"198.51.100.1"}, want: "203.0.113.7"},
		{name: "trusted peer, one hop", trusted: proxies, peer: "10.0.0.1:1234", xff: []string{"198.51.100.1"}, want: "198.51.100.1"},
		{name: "trusted peer, no header", trusted: proxies, peer: "10.0.0.1:1234", want: "10.0.0.1"},
		{name: "trusted peer, empty header", trusted: proxies, peer: "10.0.0.1:1234", xff: []string{""}, want: "10.0.0.1"},
		{name: "chain of trusted proxies", trusted: proxies, peer: "10.0.0.1:1234", xff: []string{"198.51.100.1, 10.2.3.4, 192.168.1.1"}, want: "198.51.100.1"},
		{name: "client spoofs left of real client", trusted: proxies, peer: "10.0.0.1:1234", xff: []string{"1.1.1.1, 198.51.100.1, 10.2.3.4"}, want: "198.51.100.1"},
		{name: "whitespace", trusted: proxies, peer: "10.0.0.1:1234", xff: []string{"  198.51.100.1 ,\t10.2.3.4  "}, want: "198.51.100.1"},
		{name: "several headers form one list", trusted: proxies, peer: "10.0.0.1:1234", xff: []string{"1.1.1.1, 198.51.100.1", "10.2.3.4", "192.168.1.1"}, want: "198.51.100.1"},
		{name: "several headers, client in last", trusted: proxies, peer: "10.0.0.1:1234", xff: []string{"10.2.3.4", "198.51.100.9"}, want: "198.51.100.9"},
		{name: "all trusted gives left-most", trusted: proxies, peer: "10.0.0.1:1234", xff: []string{"10.9.9.9, 10.2.3.4", "192.168.1.1"}, want: "10.9.9.9"},
		{name: "malformed entry stops the walk", trusted: proxies, peer: "10.0.0.1:1234", xff: []string{"198.51.100.1, garbage, 10.2.3.4"}, want: "10.2.3.4"},
		{name: "malformed right-most entry gives peer", trusted: proxies, peer: "10.0.0.1:1234", xff: []string{"198.51.100.1, unknown"}, want: "10.0.0.1"},
		{name: "empty entry is malformed", trusted: proxies, peer: "10.0.0.1:1234", xff: []string{"198.51.100.1,,10.2.3.4"}, want: "10.2.3.4"},
		{name: "malformed in earlier header", trusted: proxies, peer: "10.0.0.1:1234", xff: []string{"198.51.100.1, <script>", "10.2.3.4"}, want: "10.2.3.4"},
		{name: "untrusted right of malformed wins", trusted: proxies, peer: "10.0.0.1:1234", xff: []string{"garbage, 198.51.100.1"}, want: "198.51.100.1"},
		{name: "ipv4 with port", trusted: proxies, peer: "10.0.0.1:1234", xff: []string{"198.51.100.1:5678"}, want: "198.51.100.1"},
		{name: "ipv6 with port", trusted: proxies, peer: "10.0.0.1:1234", xff: []string{"[2001:db8::1]:443"}, want: "2001:db8::1"},
		{name: "ipv6 in brackets", trusted: proxies, peer: "10.0.0.1:1234", xff: []string{"[2001:db8::1]"}, want: "2001:db8::1"},
		{name: "ipv6 bare", trusted: proxies, peer: "10.0.0.1:1234", xff: []string{"2001:db8::1, fd00::5"}, want: "2001:db8::1"},
		{name: "bad port is malformed", trusted: proxies, peer: "10.0.0.1:1234", xff: []string{"198.51.100.1:99999"}, want: "10.0.0.1"},
		{name: "bad bracket port is malformed", trusted: proxies, peer: "10.0.0.1:1234", xff: []string{"[2001:db8::1]x"}, want: "10.0.0.1"},
		{name: "unclosed bracket is malformed", trusted: proxies, peer: "10.0.0.1:1234", xff: []string{"[2001:db8::1"}, want: "10.0.0.1"},
		{name: "ipv4 in brackets is malformed", trusted: proxies, peer: "10.0.0.1:1234", xff: []string{"[198.51.100.1]"}, want: "10.0.0.1"},
		{name: "ipv6 trusted peer", trusted: proxies, peer: "[fd00::1]:443", xff: []string{"2001:db8::7"}, want: "2001:db8::7"},
		{name: "ipv6 trusted bare ip", trusted: proxies, peer: "[2001:db8:ffff::1]:443", xff: []string{"198.51.100.1"}, want: "198.51.100.1"},
		{name: "ipv6 untrusted peer", trusted: proxies, peer: "[2001:db8::9]:443", xff: []string{"198.51.100.1"}, want: "2001:db8::9"},
		{name: "mapped peer is unmapped and trusted", trusted: proxies, peer: "[::ffff:10.0.0.1]:1234", xff: []string{"198.51.100.1"}, want: "198.51.100.1"},
		{name: "mapped untrusted peer", trusted: proxies, peer: "[::ffff:203.0.113.7]:1234", want: "203.0.113.7"},
		{name: "mapped entry is unmapped", trusted: proxies, peer: "10.0.0.1:1234", xff: []string{"::ffff:198.51.100.1"}, want: "198.51.100.1"},
		{name: "mapped trusted entry is skipped", trusted: proxies, peer: "10.0.0.1:1234", xff: []string{"198.51.100.1, [::ffff:10.2.3.4]:80"}, want: "198.51.100.1"},
		{name: "zone dropped", trusted: proxies, peer: "10.0.0.1:1234", xff: []string{"fe80::1%eth0"}, want: "fe80::1"},
		{name: "zone dropped on peer", trusted: proxies, peer: "[fe80::1%eth0]:1234", want: "fe80::1"},
		{name: "bare peer without port", trusted: proxies, peer: "203.0.113.7", want: "203.0.113.7"},
		{name: "unparsable peer", trusted: proxies, peer: "not an address", xff: []string{"198.51.100.1"}, want: "invalid IP"},
		{name: "empty peer", trusted: proxies, peer: "", want: "invalid IP"},
		{name: "unix socket peer", trusted: proxies, peer: "@", want: "invalid IP"},
		{name: "garbage bytes", trusted: proxies, peer: "10.0.0.1:1234", xff: []string{"\x00\xff,\r\n, ,,[]:,:"}, want: "10.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			trusted, err := ParseTrustedProxies(tc.trusted)
			if err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = tc.peer
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := ClientIP(r, trusted).String(); got != tc.want {
				t.Errorf("ClientIP = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestClientIPHugeHeader(t *testing.T) {
	trusted, err := ParseTrustedProxies("10.0.0.0/8")
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = "10.0.0.1:1234"
	r.Header.Set("X-Forwarded-For", strings.Repeat("10.1.1.1, ", 50_000)+"198.51.100.1, 10.2.2.2")
	if got, want := ClientIP(r, trusted), netip.MustParseAddr("198.51.100.1"); got != want {
		t.Errorf("ClientIP = %s, want %s", got, want)
	}
	if n := testing.AllocsPerRun(10, func() { ClientIP(r, trusted) }); n != 0 {
		t.Errorf("ClientIP allocates %v times, want 0", n)
	}
}

func FuzzClientIP(f *testing.F) {
	trusted, err := ParseTrustedProxies("10.0.0.0/8, fd00::/8")
	if err != nil {
		f.Fatal(err)
	}
	f.Add("10.0.0.1:1234", "198.51.100.1, 10.2.3.4")
	f.Add("[fd00::1]:443", "[2001:db8::1]:443, ::ffff:10.1.1.1")
	f.Add("garbage", "")
	f.Fuzz(func(t *testing.T, peer, xff string) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = peer
		r.Header.Set("X-Forwarded-For", xff)
		a := ClientIP(r, trusted)
		if a.IsValid() && (a.Is4In6() || a.Zone() != "") {
			t.Fatalf("ClientIP = %s, want unmapped and without zone", a)
		}
	})
}

func TestParseTrustedProxies(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"   ", nil},
		{"10.0.0.0/8", []string{"10.0.0.0/8"}},
		{"10.0.0.1", []string{"10.0.0.1/32"}},
		{"2001:db8::1", []string{"2001:db8::1/128"}},
		{"fd00::/8", []string{"fd00::/8"}},
		{" 10.0.0.0/8 ,192.168.1.1,  fd00::/8 , ::1 ", []string{"10.0.0.0/8", "192.168.1.1/32", "fd00::/8", "::1/128"}},
		{"10.1.2.3/8", []string{"10.0.0.0/8"}},
		{"::ffff:10.0.0.1", []string{"10.0.0.1/32"}},
		{"::ffff:10.0.0.0/104", []string{"10.0.0.0/8"}},
		{"fe80::1%eth0", []string{"fe80::1/128"}},
		{"10.0.0.0/8,", []string{"10.0.0.0/8"}},
	} {
		got, err := ParseTrustedProxies(tc.in)
		if err != nil {
			t.Errorf("ParseTrustedProxies(%q): %v", tc.in, err)
			continue
		}
		var gotS []string
		for _, p := range got {
			gotS = append(gotS, p.String())
		}
		if !reflect.DeepEqual(gotS, tc.want) {
			t.Errorf("ParseTrustedProxies(%q) = %v, want %v", tc.in, gotS, tc.want)
		}
	}

	for _, tc := range []struct{ in, bad string }{
		{"10.0.0.0/33", "10.0.0.0/33"},
		{"10.0.0.0/8, nonsense", "nonsense"},
		{"10.0.0.256", "10.0.0.256"},
		{"10.0.0.0/8; 192.168.0.0/16", "10.0.0.0/8; 192.168.0.0/16"},
		{"2001:db8::/129", "2001:db8::/129"},
		{"10.0.0.1:80", "10.0.0.1:80"},
		{"localhost", "localhost"},
	} {
		_, err := ParseTrustedProxies(tc.in)
		if err == nil {
			t.Errorf("ParseTrustedProxies(%q) succeeded, want an error", tc.in)
			continue
		}
		if !strings.Contains(err.Error(), fmt.Sprintf("%q", tc.bad)) {
			t.Errorf("ParseTrustedProxies(%q) error %q does not name %q", tc.in, err, tc.bad)
		}
	}
}

func BenchmarkClientIP(b *testing.B) {
	trusted, err := ParseTrustedProxies("10.0.0.0/8, 192.168.0.0/16, fd00::/8")
	if err != nil {
		b.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = "10.0.0.1:1234"
	r.Header.Set("X-Forwarded-For", "198.51.100.1, 10.2.3.4")
	b.ReportAllocs()
	for b.Loop() {
		ClientIP(r, trusted)
	}
}

func ExampleClientIP() {
	trusted, err := ParseTrustedProxies("10.0.0.0/8")
	if err != nil {
		panic(err)
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = "10.0.0.1:52100"
	r.Header.Set("X-Forwarded-For", "198.51.100.1, 10.20.0.5")
	fmt.Println(ClientIP(r, trusted))
	// Output: 198.51.100.1
}
