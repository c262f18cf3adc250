//go:build unix

package webhooktest

import (
	"os"
	"syscall"
	"testing"
)

// lock holds an exclusive lock on path, shared by every test process,
// until the returned function is called.
func lock(t testing.TB, path string) (unlock func()) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		t.Fatalf("lock %s: %v", path, err)
	}
	return func() { f.Close() } // closing releases the lock
}
