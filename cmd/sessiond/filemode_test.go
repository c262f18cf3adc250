//go:build unix

package main

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/sessiond/sessiond/internal/sessiondtest"
)

// TestDataFilesArePrivate: the SQLite file (password hashes, sessions), its
// -wal and -shm files and the generated keys are created 0600, whatever the
// umask.
func TestDataFilesArePrivate(t *testing.T) {
	// The loosest umask: what the files get is then what sessiond asks for.
	old := syscall.Umask(0)
	t.Cleanup(func() { syscall.Umask(old) })
	ts := startServer(t, nil)
	c := sessiondtest.NewClient(t, ts.URL)
	c.Register("mia")
	c.Login("mia", nil)
	for _, name := range []string{"sessiond.db", "sessiond.db-wal", "sessiond.db-shm", "signing-key.pem", "refresh-key"} {
		fi, err := os.Stat(filepath.Join(ts.DataDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Errorf("%s: got mode %#o, want 0600", name, got)
		}
	}
}

// TestAdminKeysFileIsPrivate: admin-key new creates the data directory
// 0700, as the server does, and the keys file 0600, whatever the umask.
func TestAdminKeysFileIsPrivate(t *testing.T) {
	old := syscall.Umask(0)
	t.Cleanup(func() { syscall.Umask(old) })
	dir := filepath.Join(t.TempDir(), "data")
	newAdminKey(t, map[string]string{"SESSIOND_DATA_DIR": dir}, "app")
	for name, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, "admin-keys"): 0o600} {
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: got mode %#o, want %#o", name, got, want)
		}
	}
}
