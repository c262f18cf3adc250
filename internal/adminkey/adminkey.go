// Package adminkey makes, stores and checks the API keys of the admin
// listener (docs/design.md, "Admin keys").
//
// A key is "sdk_" followed by 43 base64url characters, 32 random bytes. The
// keys file holds one "NAME SHA256-HEX" line per key: the name an
// administrator gave it and the SHA-256 of the whole key string, never the
// key itself. A stolen keys file therefore gives no usable key, and since a
// key is 256 random bits a plain hash is enough: there is nothing to guess,
// so a slow password hash would only slow down every admin call.
//
// New, List and Revoke work on the file, for the admin-key commands; Set
// serves the running server and follows the file as it changes.
package adminkey

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Prefix starts every admin key, so that a key is recognisable in a
// configuration file or a secret scanner's findings.
const Prefix = "sdk_"

// keyBytes is how many random bytes a key carries.
const keyBytes = 32

// MaxNameLen is the longest name a key may have.
const MaxNameLen = 64

var (
	// ErrInvalidName is returned for a name that is empty, longer than
	// MaxNameLen, or has a character other than ASCII letters, digits,
	// '.', '_' and '-'.
	ErrInvalidName = errors.New("invalid admin key name")
	// ErrNameTaken is returned by New for a name the file already has.
	ErrNameTaken = errors.New("admin key name already in use")
	// ErrNotFound is returned by Revoke for a name the file does not have.
	ErrNotFound = errors.New("no admin key of that name")
)

// Entry is one line of the keys file.
type Entry struct {
	// Name is what the administrator called the key.
	Name string
	// Hash is the lowercase hex SHA-256 of the whole key string.
	Hash string
}

// CheckName returns an error wrapping ErrInvalidName unless name is 1 to
// MaxNameLen ASCII letters, digits, '.', '_' and '-'.
func CheckName(name string) error {
	if name == "" || len(name) > MaxNameLen || strings.IndexFunc(name, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-')
	}) >= 0 {
		return fmt.Errorf("%w %q: use 1 to %d ASCII letters, digits, '.', '_' and '-'", ErrInvalidName, name, MaxNameLen)
	}
	return nil
}

// generate returns a new random key.
func generate() (string, error) {
	b := make([]byte, keyBytes)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return Prefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// hashOf returns the lowercase hex SHA-256 of key, as the file stores it.
func hashOf(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// New makes a key called name, adds its hash to the keys file at path
// (creating the file, mode 0600, when it does not exist) and returns the
// key: the only time it is ever seen. It refuses an invalid name
// (ErrInvalidName), a name the file already has (ErrNameTaken) and a file
// with a malformed line, which an administrator should look at before it
// is rewritten. The directory of path must exist.
func New(path, name string) (key string, err error) {
	if err := CheckName(name); err != nil {
		return "", err
	}
	entries, err := readStrict(path)
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		if e.Name == name {
			return "", fmt.Errorf("%w: %q", ErrNameTaken, name)
		}
	}
	key, err = generate()
	if err != nil {
		return "", fmt.Errorf("admin key: %w", err)
	}
	if err := write(path, append(entries, Entry{Name: name, Hash: hashOf(key)})); err != nil {
		return "", err
	}
	return key, nil
}

// List returns the keys of the file at path in file order; a missing file
// has none. A malformed line is an error naming its line number.
func List(path string) ([]Entry, error) {
	return readStrict(path)
}

// Revoke removes the key called name from the file at path. It returns an
// error wrapping ErrNotFound when the file has no such key, and refuses a
// file with a malformed line, as New does.
func Revoke(path, name string) error {
	entries, err := readStrict(path)
	if err != nil {
		return err
	}
	for i, e := range entries {
		if e.Name == name {
			return write(path, append(entries[:i:i], entries[i+1:]...))
		}
	}
	return fmt.Errorf("%w: %q", ErrNotFound, name)
}

// problem is a line of the keys file that is not a key. It says where and
// what kind of problem, never what the line holds: an administrator may
// have pasted a key where its hash belongs.
type problem struct {
	line   int
	reason string
}

// parse reads the keys file's content: the keys, and the lines that are
// none. Blank lines and lines starting with '#' are skipped. A line whose
// name or hash an earlier line already has is a problem, not a second key.
func parse(data []byte) ([]Entry, []problem) {
	var entries []Entry
	var problems []problem
	names := map[string]int{}
	hashes := map[string]int{}
	for i, line := range bytes.Split(data, []byte("\n")) {
		n := i + 1
		s := strings.TrimSpace(string(line))
		if s == "" || s[0] == '#' {
			continue
		}
		f := strings.Fields(s)
		if len(f) != 2 {
			problems = append(problems, problem{n, "want NAME SHA256-HEX"})
			continue
		}
		name, hash := f[0], strings.ToLower(f[1])
		if CheckName(name) != nil {
			problems = append(problems, problem{n, "invalid name"})
			continue
		}
		if b, err := hex.DecodeString(hash); err != nil || len(b) != sha256.Size {
			problems = append(problems, problem{n, "hash is not 64 hex characters"})
			continue
		}
		if prev, ok := names[name]; ok {
			problems = append(problems, problem{n, "name already on line " + strconv.Itoa(prev)})
			continue
		}
		if prev, ok := hashes[hash]; ok {
			problems = append(problems, problem{n, "hash already on line " + strconv.Itoa(prev)})
			continue
		}
		names[name], hashes[hash] = n, n
		entries = append(entries, Entry{Name: name, Hash: hash})
	}
	return entries, problems
}

// readStrict reads the keys file at path for a command that may rewrite
// it: a missing file has no keys, and any malformed line is an error.
func readStrict(path string) ([]Entry, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("admin keys: %w", err)
	}
	entries, problems := parse(data)
	if len(problems) > 0 {
		p := problems[0]
		return nil, fmt.Errorf("admin keys: %s line %d: %s (fix or remove the line)", path, p.line, p.reason)
	}
	return entries, nil
}

// write replaces the keys file at path with entries, atomically: readers
// see the old file or the new one, never a part. The file is mode 0600.
func write(path string, entries []Entry) (err error) {
	var b bytes.Buffer
	for _, e := range entries {
		fmt.Fprintf(&b, "%s %s\n", e.Name, e.Hash)
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	// CreateTemp makes the file 0600, and in the same directory, so that
	// the rename below does not cross file systems.
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("admin keys: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
			err = fmt.Errorf("admin keys: write %s: %w", path, err)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return err
	}
	if _, err := f.Write(b.Bytes()); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	// The rename is durable once the directory is; a failure to sync it
	// leaves the new file in place, so it is not reported.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
