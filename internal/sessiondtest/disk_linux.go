package sessiondtest

import (
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// FullDisk is a small tmpfs mounted by a test, which it can fill up.
type FullDisk struct {
	Dir    string // where it is mounted
	filler string
}

// MountFullDisk mounts a 4 MiB tmpfs on a temporary directory, unmounted
// when t ends. It needs root (or CAP_SYS_ADMIN).
func MountFullDisk(t testing.TB) *FullDisk {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=4m"); err != nil {
		t.Fatalf("mount a tmpfs for the full-disk case: %v (this test needs root or CAP_SYS_ADMIN)", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return &FullDisk{Dir: dir, filler: filepath.Join(dir, "filler")}
}

// Fill empties the write-ahead log of the SQLite file db, if any (so that
// the next write must grow it), and then fills the disk to its last byte.
func (d *FullDisk) Fill(t testing.TB, db string) {
	t.Helper()
	if db != "" {
		c, err := sql.Open("sqlite", db)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
			t.Fatalf("checkpoint: %v", err)
		}
		c.Close()
	}
	f, err := os.Create(d.filler)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, size := range []int{1 << 16, 1 << 12, 1} {
		buf := make([]byte, size)
		for {
			if _, err := f.Write(buf); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("fill the disk: %v", err)
				}
				break
			}
		}
	}
}

// Free gives the disk its space back.
func (d *FullDisk) Free(t testing.TB) {
	t.Helper()
	if err := os.Remove(d.filler); err != nil {
		t.Fatal(err)
	}
}
