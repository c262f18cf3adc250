//go:build unix

package adminkey_test

import (
	"os"
	"syscall"
	"testing"

	"github.com/sessiond/sessiond/internal/adminkey"
)

// TestFileIsPrivate: the keys file is created 0600 whatever the umask, and
// a rewrite makes it 0600 again even if someone loosened it.
func TestFileIsPrivate(t *testing.T) {
	old := syscall.Umask(0) // the loosest umask: the mode is what the code asks for
	t.Cleanup(func() { syscall.Umask(old) })
	p := keysFile(t)
	mode := func() os.FileMode {
		t.Helper()
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Mode().Perm()
	}
	newKey(t, p, "app")
	if got := mode(); got != 0o600 {
		t.Fatalf("new file: got mode %#o, want 0600", got)
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	newKey(t, p, "ops")
	if got := mode(); got != 0o600 {
		t.Fatalf("after New: got mode %#o, want 0600", got)
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := adminkey.Revoke(p, "app"); err != nil {
		t.Fatal(err)
	}
	if got := mode(); got != 0o600 {
		t.Fatalf("after Revoke: got mode %#o, want 0600", got)
	}
}
