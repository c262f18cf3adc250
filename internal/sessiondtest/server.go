package sessiondtest

import (
	"bytes"
	"log/slog"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	sessiondhttp "github.com/sessiond/sessiond/http"
	"github.com/sessiond/sessiond/web"
)

// Server is the HTTP surface of a test Manager, served on a random
// loopback port the way the binary serves it: the API, health checks and
// the devices page, behind an http.Server with the binary's limits.
type Server struct {
	*httptest.Server // URL is its address
	*Env
	// HTTP is the handler's Server; StartServer's configure may set its
	// fields.
	HTTP *sessiondhttp.Server
	// Logs holds what the Manager and the HTTP server logged, one JSON
	// object a line, unless Options.Logger sent it elsewhere.
	Logs *LogBuffer
}

// StartServer builds a Manager as o says (see NewManager) and serves it.
// configure, when not nil, runs before the server starts and may change
// the Manager's settings and s.HTTP's fields. The server stops when t
// ends, ending its event streams first.
func StartServer(t testing.TB, o Options, configure func(s *Server)) *Server {
	t.Helper()
	logs := &LogBuffer{}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	}
	s := &Server{Env: NewManager(t, o), Logs: logs}
	s.HTTP = sessiondhttp.NewServer(s.Manager)
	s.HTTP.Logger = o.Logger
	s.HTTP.Page = web.Handler(web.Options{Signup: s.Manager.SignupOpen, External: s.Manager.ExternalUsers()})
	if configure != nil {
		configure(s)
	}
	s.Server = httptest.NewUnstartedServer(s.HTTP.Handler())
	s.Config.ReadHeaderTimeout = 10 * time.Second
	s.Config.ReadTimeout = 30 * time.Second
	s.Config.WriteTimeout = 30 * time.Second
	s.Config.MaxHeaderBytes = sessiondhttp.MaxHeaderBytes
	s.Config.ErrorLog = slog.NewLogLogger(o.Logger.Handler(), slog.LevelWarn)
	s.Start()
	t.Cleanup(func() {
		s.HTTP.StopStreams()
		s.Close()
	})
	return s
}

// StartAdmin serves the admin API of s's Manager (an AdminServer that
// accepts keys) on another random loopback port, as the binary's admin
// listener, with the same logger; configure, when not nil, may set the
// AdminServer's fields first. It stops when t ends.
func (s *Server) StartAdmin(t testing.TB, keys sessiondhttp.AdminKeys, configure func(a *sessiondhttp.AdminServer)) *httptest.Server {
	t.Helper()
	a := sessiondhttp.NewAdminServer(s.Manager, keys)
	a.Logger = s.HTTP.Logger
	if configure != nil {
		configure(a)
	}
	srv := httptest.NewUnstartedServer(a.Handler())
	srv.Config.ReadHeaderTimeout = 10 * time.Second
	srv.Config.MaxHeaderBytes = sessiondhttp.MaxHeaderBytes
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// LogBuffer collects log lines; it is safe for concurrent use.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
