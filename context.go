package sessiond

import "context"

type contextKey struct{}

// NewContext returns a copy of ctx that carries the authenticated session.
func NewContext(ctx context.Context, s *Session) context.Context {
	return context.WithValue(ctx, contextKey{}, s)
}

// FromContext returns the authenticated session carried by ctx, if any.
func FromContext(ctx context.Context) (*Session, bool) {
	s, ok := ctx.Value(contextKey{}).(*Session)
	return s, ok
}
