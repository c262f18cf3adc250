// Package secretfile creates the files that hold sessiond's secrets (the
// signing and refresh keys, the webhook secret): mode 0600, written whole,
// never replacing one another process wrote first.
package secretfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// Create writes data to path with mode 0600, creating the parent
// directory with mode 0700. It writes a temporary file in the same
// directory, syncs it and then links it into place, which fails rather than
// replaces when path already exists: won is false when another process
// created path first (its content is then the one to use). Where hard
// links are not supported it falls back to rename.
func Create(path string, data []byte) (won bool, err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return false, err
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName)
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return false, err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Close(); err != nil {
		return false, err
	}
	if err := os.Link(tmpName, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil
		}
		if err := os.Rename(tmpName, path); err != nil {
			return false, err
		}
	}
	syncDir(dir)
	return true, nil
}

// syncDir makes a new directory entry durable; failures are ignored
// because some platforms cannot sync directories.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	_ = d.Sync()
	_ = d.Close()
}
