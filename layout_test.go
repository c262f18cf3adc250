package sessiond_test

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestOnlyWiringImportsStores: the HTTP layer and the binary reach the
// stores only through the Manager; in cmd/sessiond only the wiring
// (backends.go, serve.go) builds stores, to hand them to NewManager.
func TestOnlyWiringImportsStores(t *testing.T) {
	stores := map[string]bool{
		"github.com/sessiond/sessiond/sqlite":   true,
		"github.com/sessiond/sessiond/redis":    true,
		"github.com/sessiond/sessiond/postgres": true,
	}
	wiring := map[string]bool{"cmd/sessiond/backends.go": true, "cmd/sessiond/serve.go": true}
	checked := 0
	for _, dir := range []string{"http", "cmd/sessiond"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			f = filepath.ToSlash(f)
			if strings.HasSuffix(f, "_test.go") || wiring[f] {
				continue
			}
			af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			checked++
			for _, imp := range af.Imports {
				if p, _ := strconv.Unquote(imp.Path.Value); stores[p] {
					t.Errorf("%s imports %s: only the Manager talks to stores", f, p)
				}
			}
		}
	}
	if checked < 10 {
		t.Fatalf("checked %d files, want the sources of http/ and cmd/sessiond", checked)
	}
}
