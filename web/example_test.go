package web_test

import (
	"net/http"

	"github.com/sessiond/sessiond/web"
)

// The page is the catch-all of the server's mux: the API and the JWKS have
// more specific patterns, so they take precedence.
func ExampleHandler() {
	mux := http.NewServeMux()
	// mux.Handle("/api/v1/", api)
	mux.Handle("/", web.Handler(web.Options{
		Signup:    true,
		PublicURL: "https://auth.example.com",
	}))
	_ = http.ListenAndServe("localhost:8080", mux)
}
