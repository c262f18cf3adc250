package main

import (
	"net/http"
	"net/http/pprof"
	"strings"
)

// withPprof serves Go's profiles under /debug/pprof/ in front of the admin
// handler when on is set (SESSIOND_PPROF; docs/design.md, "Profiling"). They
// are on the admin listener only, never the public one, and only when asked
// for: a profile shows the process's code paths and timings to whoever
// reaches the listener, without the admin key.
func withPprof(admin http.Handler, on bool) http.Handler {
	if !on {
		return admin
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/debug/pprof/") {
			mux.ServeHTTP(w, r)
			return
		}
		admin.ServeHTTP(w, r)
	})
}
