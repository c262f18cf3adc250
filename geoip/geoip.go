// Package geoip turns a client IP address into a coarse location, "City,
// Country", read from a MaxMind DB (.mmdb) file: GeoLite2 or GeoIP2 City or
// Country, or a DB-IP file in the same layout.
package geoip

import (
	"fmt"
	"net/netip"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/oschwald/maxminddb-golang/v2"
)

// DB looks up locations in an open .mmdb file. It is safe for concurrent
// use. A nil *DB is valid and knows no locations, so callers without a
// database can use it unconditionally.
type DB struct {
	r *maxminddb.Reader
}

// Open opens the MaxMind DB file at path. The file is memory-mapped; replace
// it by renaming a new file over it, never by rewriting it in place, and
// open it again to see the new data.
func Open(path string) (*DB, error) {
	r, err := maxminddb.Open(path)
	if err != nil {
		return nil, fmt.Errorf("geoip: open %s: %w", path, err)
	}
	return &DB{r: r}, nil
}

// Close releases the file. Lookups after Close return "". Closing a nil DB
// does nothing.
func (db *DB) Close() error {
	if db == nil || db.r == nil {
		return nil
	}
	if err := db.r.Close(); err != nil {
		return fmt.Errorf("geoip: close: %w", err)
	}
	return nil
}

// record holds the only fields Lookup decodes; the decoder skips the rest of
// a City record (subdivisions, location, other languages) without
// allocating for them. Country-shaped files have no city.
type record struct {
	City struct {
		Names struct {
			EN string `maxminddb:"en"`
		} `maxminddb:"names"`
	} `maxminddb:"city"`
	Country struct {
		Names struct {
			EN string `maxminddb:"en"`
		} `maxminddb:"names"`
	} `maxminddb:"country"`
}

// Lookup returns the English "City, Country" of ip, "Country" when the
// database knows only the country, "City" in the rare record with a city and
// no country, and "" when the address is unknown, the lookup fails or db is
// nil. IPv4-mapped IPv6 addresses are looked up as IPv4 and zones are
// ignored.
//
// Addresses that are not globally reachable (private, shared CGNAT space,
// loopback, link-local, multicast, unspecified, documentation and other
// special-purpose ranges) always give "", whatever the file says about them:
// a location for them would be a guess about some other network.
func (db *DB) Lookup(ip netip.Addr) string {
	if db == nil || db.r == nil {
		return ""
	}
	ip = ip.Unmap().WithZone("")
	if !global(ip) {
		return ""
	}
	var rec record
	if err := db.r.Lookup(ip).Decode(&rec); err != nil {
		return ""
	}
	city, country := clean(rec.City.Names.EN), clean(rec.Country.Names.EN)
	switch {
	case city != "" && country != "":
		return city + ", " + country
	case country != "":
		return country
	default:
		return city
	}
}

// special holds the IANA special-purpose ranges that are not globally
// reachable and that netip's predicates do not already cover.
var special = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),   // shared address space (CGNAT)
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // TEST-NET-1
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // TEST-NET-2
	netip.MustParsePrefix("203.0.113.0/24"),  // TEST-NET-3
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved
	netip.MustParsePrefix("::/96"),           // IPv4-compatible (deprecated)
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use IPv4/IPv6 translation
	netip.MustParsePrefix("100::/64"),        // discard-only
	netip.MustParsePrefix("2001:2::/48"),     // benchmarking
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("3fff::/20"),       // documentation
	netip.MustParsePrefix("5f00::/16"),       // segment routing SIDs
	netip.MustParsePrefix("fec0::/10"),       // site-local (deprecated)
}

// global reports whether ip is a globally reachable unicast address, the
// only kind Lookup locates. Callers pass unmapped addresses; an IPv4-mapped
// address is judged as the IPv4 address it carries.
func global(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || !ip.IsGlobalUnicast() || ip.IsPrivate() {
		return false
	}
	for _, p := range special {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// clean keeps a name from the database fit for a web page and a log line:
// the file is trusted, but a broken one must not put control characters or
// invalid UTF-8 in front of users. Clean names, the usual case, are returned
// as they are.
func clean(s string) string {
	ok := utf8.ValidString(s)
	if ok {
		for _, r := range s {
			if !unicode.IsPrint(r) {
				ok = false
				break
			}
		}
	}
	if ok {
		return strings.TrimSpace(s)
	}
	var b strings.Builder
	for _, r := range s {
		if r != utf8.RuneError && unicode.IsPrint(r) {
			b.WriteRune(r)
		}
	}
	return strings.TrimSpace(b.String())
}
