package http_test

import (
	"strings"
	"testing"

	sessiondhttp "github.com/sessiond/sessiond/http"
)

func TestReturnToRules(t *testing.T) {
	rules, err := sessiondhttp.ParseReturnRules("https://app.example.com, https://docs.example.com/guide/, http://localhost:3000/app", "https://auth.example.com")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		raw  string
		want bool
	}{
		// Relative paths of this origin.
		{"/", true},
		{"/app/page?x=1#top", true},
		{"/%2F%2Fevil.example", true}, // a path on this origin: browsers do not decode %2F
		{"/a/../b", true},
		// Other hosts by any spelling.
		{"//evil.example", false},
		{"///evil.example", false},
		{"/\\evil.example", false},
		{"\\\\evil.example", false},
		{"/\t/evil.example", false},
		{"/\n/evil.example", false},
		{"/ /evil.example", false},
		{"%2F%2Fevil.example", false},
		{"%2f%2fevil.example", false},
		{"https:evil.example", false},
		{"https:/evil.example", false},
		{"https:\\\\evil.example", false},
		{"https://evil.example", false},
		{"https://app.example.com@evil.example", false},
		{"https://user:pw@app.example.com/", false},
		{"https://app.example.com.evil.example/", false},
		{"https://app.example.com%2eevil.example/", false},
		{"https://evil.example/https://app.example.com", false},
		{"https://evil.example#https://app.example.com", false},
		{"javascript:alert(1)", false},
		{"JavaScript:alert(1)", false},
		{"data:text/html,<script>alert(1)</script>", false},
		{"vbscript:msgbox(1)", false},
		{"http://app.example.com/", false}, // another scheme is another origin
		{"https://app.example.com:8443/", false},
		{"https://аpp.example.com/", false}, // Cyrillic а
		{"", false},
		{"evil.example", false},
		{"/" + strings.Repeat("a", sessiondhttp.MaxReturnTo), false},
		// Allowed origins and prefixes.
		{"https://app.example.com", true},
		{"https://app.example.com/", true},
		{"https://APP.example.com/page", true},
		{"https://app.example.com:443/page", true},
		{"https://app.example.com/page?q=1#frag", true},
		{"https://docs.example.com/guide/intro", true},
		{"https://docs.example.com/guidebook", false},
		{"https://docs.example.com/", false},
		{"http://localhost:3000/app", true},
		{"http://localhost:3000/app/x", true},
		{"http://localhost:3000/application", false},
		{"http://localhost:3000/", false},
		{"https://auth.example.com/anything", true}, // the public URL's origin
	} {
		got, ok := rules.Check(tc.raw)
		if ok != tc.want || (ok && got != tc.raw) || (!ok && got != "") {
			t.Errorf("Check(%q): got (%q, %v), want allowed=%v", tc.raw, got, ok, tc.want)
		}
	}
	// Without rules only relative paths pass.
	var none *sessiondhttp.ReturnRules
	if _, ok := none.Check("/x"); !ok {
		t.Error("nil rules: a relative path was refused")
	}
	if _, ok := none.Check("https://app.example.com/"); ok {
		t.Error("nil rules: an absolute URL was allowed")
	}
	for _, bad := range []string{"app.example.com", "ftp://app.example.com", "https://u@app.example.com", "https://app.example.com/?q", "https://app.example.com/#f", "https://app.example.com/x?y=1"} {
		if _, err := sessiondhttp.ParseReturnRules(bad, ""); err == nil {
			t.Errorf("ParseReturnRules(%q): got nil error", bad)
		}
	}
}
