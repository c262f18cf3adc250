// Package sessiond is multi-device sign-in and session management.
//
// Every login creates a Session for one device. Clients carry a short-lived
// EdDSA JWT access token naming the session and an opaque refresh token that
// rotates on every use. Every request is checked against the SessionStore, so
// a revoked device is refused on its next request.
//
// The package holds only the domain: User, Session, the SessionStore and
// UserStore contracts, the Manager that implements sign-in, refresh and
// revocation, token handling and the sentinel errors. Stores live in
// sub-packages named after what they adapt (sqlite, redis, postgres) and the
// HTTP API in package http (imported as sessiondhttp).
//
// To embed sessiond in a Go service, open stores (sqlite.Open with
// sqlite.NewSessionStore and sqlite.NewUserStore on one machine), load or
// create the signing and refresh keys (LoadOrCreateSigningKey,
// LoadOrCreateRefreshKey), and build a Manager with NewManager. Serve the
// API with sessiondhttp.NewServer(m).Handler() and protect your own routes
// with sessiondhttp.Middleware(m), which puts the authenticated Session in
// the request context for FromContext. See the examples of NewManager and
// the program in examples/protected-api.
package sessiond
