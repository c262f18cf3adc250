package http

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// ParseTrustedProxies parses SESSIOND_TRUSTED_PROXIES: comma-separated CIDRs
// or bare IPs (v4 or v6), spaces allowed; "" is none. A bare IP becomes a
// /32 or /128, a CIDR with host bits set is masked ("10.1.2.3/8" is
// 10.0.0.0/8), IPv4-mapped IPv6 is read as IPv4 and empty entries (a
// trailing comma) are ignored. Errors name the bad entry.
func ParseTrustedProxies(s string) ([]netip.Prefix, error) {
	var prefixes []netip.Prefix
	for entry := range strings.SplitSeq(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		p, err := parseTrustedEntry(entry)
		if err != nil {
			return nil, fmt.Errorf("trusted proxies: entry %q is not a CIDR or an IP address", entry)
		}
		prefixes = append(prefixes, p)
	}
	return prefixes, nil
}

func parseTrustedEntry(entry string) (netip.Prefix, error) {
	if strings.Contains(entry, "/") {
		p, err := netip.ParsePrefix(entry)
		if err != nil {
			return netip.Prefix{}, err
		}
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(entry)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap().WithZone("")
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// ClientIP returns the client's address for r.
//
// The socket peer (r.RemoteAddr) is the client unless it is inside one of
// the trusted prefixes. Then every X-Forwarded-For header, in order, forms
// one comma-separated list, which is walked from the right: trusted
// addresses are skipped and the first other address is the client. A
// malformed entry stops the walk and the last trusted hop (the last address
// skipped, or the peer) is the client, since nothing left of it can be
// believed; when every entry is trusted, the left-most one is the client.
//
// Entries may carry a port ("1.2.3.4:5678", "[2001:db8::1]:443"), which is
// dropped, as are IPv6 zones; IPv4-mapped IPv6 addresses are returned as
// IPv4. An unparsable RemoteAddr gives the zero Addr.
//
// The walk reads the headers in place from the right and stops at the
// client, so a huge header costs no allocation.
func ClientIP(r *http.Request, trusted []netip.Prefix) netip.Addr {
	peer, ok := parseForwardedAddr(r.RemoteAddr)
	if !ok {
		return netip.Addr{}
	}
	if !trustedAddr(peer, trusted) {
		return peer
	}
	last := peer
	// Values keeps the order in which the header fields arrived.
	values := r.Header.Values("X-Forwarded-For")
	for i := len(values) - 1; i >= 0; i-- {
		v := values[i]
		for {
			entry := v
			j := strings.LastIndexByte(v, ',')
			if j >= 0 {
				entry, v = v[j+1:], v[:j]
			}
			a, ok := parseForwardedAddr(entry)
			if !ok {
				return last
			}
			if !trustedAddr(a, trusted) {
				return a
			}
			last = a
			if j < 0 {
				break
			}
		}
	}
	return last
}

func trustedAddr(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseForwardedAddr parses one address as X-Forwarded-For or RemoteAddr
// carries it: "1.2.3.4", "1.2.3.4:5678", "2001:db8::1", "[2001:db8::1]",
// "[2001:db8::1]:443", with optional surrounding whitespace. The result is
// unmapped and has no zone.
func parseForwardedAddr(s string) (netip.Addr, bool) {
	s = strings.Trim(s, " \t")
	host := s
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return netip.Addr{}, false
		}
		host = s[1:end]
		if rest := s[end+1:]; rest != "" && (rest[0] != ':' || !validPort(rest[1:])) {
			return netip.Addr{}, false
		}
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is6() {
			return netip.Addr{}, false
		}
		return a.Unmap().WithZone(""), true
	}
	if i := strings.IndexByte(s, ':'); i >= 0 && strings.LastIndexByte(s, ':') == i {
		// Exactly one colon: an IPv4 address with a port.
		if !validPort(s[i+1:]) {
			return netip.Addr{}, false
		}
		host = s[:i]
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is4() {
			return netip.Addr{}, false
		}
		return a, true
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap().WithZone(""), true
}

// validPort reports whether port is a decimal port number.
func validPort(port string) bool {
	if port == "" || len(port) > 5 {
		return false
	}
	n := 0
	for i := 0; i < len(port); i++ {
		c := port[i]
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
	}
	return n <= 65535
}
