package geoip_test

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/sessiond/sessiond/geoip"
	"github.com/sessiond/sessiond/geoip/geoiptest"
)

func open(t *testing.T, path string) *geoip.DB {
	t.Helper()
	db, err := geoip.Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return db
}

func TestLookup(t *testing.T) {
	db := open(t, geoiptest.WriteSample(t))
	for _, tc := range []struct {
		name, ip, want string
	}{
		{"ipv4 city", "81.2.69.142", "London, United Kingdom"},
		{"ipv4 city second", "102.89.1.1", "Lagos, Nigeria"},
		{"ipv4 country only", "89.160.20.112", "Sweden"},
		{"city without english name", "175.16.199.1", "China"},
		{"ipv6 city", "2a02:c7f::1", "Berlin, Germany"},
		{"ipv6 city with zone", "2a02:c7f::1%eth0", "Berlin, Germany"},
		{"ipv6 country only", "2001:218::1", "Japan"},
		{"ipv4 mapped ipv6", "::ffff:81.2.69.142", "London, United Kingdom"},
		{"ipv4 unknown", "1.1.1.1", ""},
		{"ipv6 unknown", "2606:4700::1111", ""},
		{"private 10", "10.1.2.3", ""},
		{"private 192.168", "192.168.1.10", ""},
		{"private mapped", "::ffff:10.1.2.3", ""},
		{"loopback v4", "127.0.0.1", ""},
		{"loopback v6", "::1", ""},
		{"link-local v4", "169.254.1.1", ""},
		{"link-local v6", "fe80::1", ""},
		{"unique local v6", "fd12:3456::1", ""},
		{"unspecified v4", "0.0.0.0", ""},
		{"unspecified v6", "::", ""},
		{"cgnat", "100.64.0.1", ""},
		{"documentation v4", "192.0.2.1", ""},
		{"documentation v6", "2001:db8::1", ""},
		{"multicast", "224.0.0.1", ""},
		{"broadcast", "255.255.255.255", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := db.Lookup(netip.MustParseAddr(tc.ip)); got != tc.want {
				t.Errorf("Lookup(%s) = %q, want %q", tc.ip, got, tc.want)
			}
		})
	}
	if got := db.Lookup(netip.Addr{}); got != "" {
		t.Errorf("Lookup(zero Addr) = %q, want \"\"", got)
	}
}

func TestLookupCountryDB(t *testing.T) {
	// A Country-shaped file (GeoLite2-Country, DB-IP country) has no city.
	path := filepath.Join(t.TempDir(), "country.mmdb")
	geoiptest.Write(t, path, []geoiptest.Record{
		{Network: "81.2.69.0/24", Country: "United Kingdom", ISOCode: "GB"},
		{Network: "2a02:c7f::/32", Country: "Germany", ISOCode: "DE"},
	})
	db := open(t, path)
	for ip, want := range map[string]string{
		"81.2.69.142": "United Kingdom",
		"2a02:c7f::1": "Germany",
		"8.8.8.8":     "",
	} {
		if got := db.Lookup(netip.MustParseAddr(ip)); got != want {
			t.Errorf("Lookup(%s) = %q, want %q", ip, got, want)
		}
	}
}

func TestLookupCleansNames(t *testing.T) {
	path := filepath.Join(t.TempDir(), "odd.mmdb")
	geoiptest.Write(t, path, []geoiptest.Record{
		{Network: "81.2.69.0/24", City: "Lon\x00don\n", Country: " United Kingdom\x1b[31m"},
	})
	db := open(t, path)
	if got, want := db.Lookup(netip.MustParseAddr("81.2.69.1")), "London, United Kingdom[31m"; got != want {
		t.Errorf("Lookup = %q, want %q", got, want)
	}
}

func TestNilAndClosed(t *testing.T) {
	var db *geoip.DB
	if got := db.Lookup(netip.MustParseAddr("81.2.69.142")); got != "" {
		t.Errorf("nil DB Lookup = %q, want \"\"", got)
	}
	if err := db.Close(); err != nil {
		t.Errorf("nil DB Close = %v, want nil", err)
	}

	db, err := geoip.Open(geoiptest.WriteSample(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if got := db.Lookup(netip.MustParseAddr("81.2.69.142")); got != "" {
		t.Errorf("closed DB Lookup = %q, want \"\"", got)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.mmdb")
	if err := os.WriteFile(garbage, []byte("this is not a MaxMind DB file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.mmdb")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{filepath.Join(dir, "missing.mmdb"), garbage, empty, dir} {
		db, err := geoip.Open(path)
		if err == nil {
			db.Close()
			t.Errorf("Open(%s) succeeded, want an error", filepath.Base(path))
		}
	}
}

func BenchmarkLookup(b *testing.B) {
	db, err := geoip.Open(geoiptest.WriteSample(b))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	for _, ip := range []string{"81.2.69.142", "2a02:c7f::1", "1.1.1.1", "10.1.2.3"} {
		addr := netip.MustParseAddr(ip)
		b.Run(ip, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				db.Lookup(addr)
			}
		})
	}
}

func ExampleDB_Lookup() {
	dir, err := os.MkdirTemp("", "geoip-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "city.mmdb")
	if err := geoiptest.WriteFile(path, geoiptest.Sample); err != nil {
		panic(err)
	}

	db, err := geoip.Open(path)
	if err != nil {
		panic(err)
	}
	defer db.Close()

	fmt.Printf("%q\n", db.Lookup(netip.MustParseAddr("81.2.69.142")))
	fmt.Printf("%q\n", db.Lookup(netip.MustParseAddr("2a02:c7f::1")))
	fmt.Printf("%q\n", db.Lookup(netip.MustParseAddr("192.168.1.10")))

	var none *geoip.DB // no database configured
	fmt.Printf("%q\n", none.Lookup(netip.MustParseAddr("81.2.69.142")))
	// Output:
	// "London, United Kingdom"
	// "Berlin, Germany"
	// ""
	// ""
}
