package http_test

import (
	"net/netip"
	"testing"

	"github.com/sessiond/sessiond"
	"github.com/sessiond/sessiond/geoip"
	sessiondhttp "github.com/sessiond/sessiond/http"
	"github.com/sessiond/sessiond/internal/sessiondtest"
)

// startServer serves a Manager with every store in a fresh SQLite file,
// the way the binary serves it by default (see sessiondtest.StartServer).
func startServer(t testing.TB, configure func(s *sessiondtest.Server)) *sessiondtest.Server {
	t.Helper()
	return sessiondtest.StartServer(t, sessiondtest.Options{}, configure)
}

// proxies parses a list of trusted proxies, as SESSIOND_TRUSTED_PROXIES.
func proxies(t testing.TB, list string) []netip.Prefix {
	t.Helper()
	p, err := sessiondhttp.ParseTrustedProxies(list)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// locator opens the GeoIP database at path, closed when t ends.
func locator(t testing.TB, path string) sessiond.Locator {
	t.Helper()
	g, err := geoip.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}
