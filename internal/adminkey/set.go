package adminkey

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultInterval is how often Watch reads the keys file unless
// Set.Interval says otherwise.
const DefaultInterval = time.Second

// Set is the keys a running server accepts: the valid lines of the keys
// file, as last read. It is safe for concurrent use.
//
// It fails closed. A missing or unreadable file means no keys, and a
// malformed line is never a key: it is skipped with a warning that gives
// its line number only, and the other lines still count.
type Set struct {
	// Interval is how often Watch reads the file; DefaultInterval when
	// zero. Set it before calling Watch.
	Interval time.Duration

	path string
	log  *slog.Logger
	cur  atomic.Pointer[snapshot]

	mu   sync.Mutex // serialises loads
	seen string     // what the last load found: "missing", "error: ...", or the content's SHA-256
}

// snapshot is one reading of the file; it is never changed once stored.
type snapshot struct {
	names []string
	sums  [][sha256.Size]byte
}

// Open reads the keys file at path. A missing file means no keys (none
// made yet), not an error; a file that exists but cannot be read is an
// error. Malformed lines are logged to logger (which may be nil) and
// skipped. Call Watch to follow later changes.
func Open(path string, logger *slog.Logger) (*Set, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Set{path: path, log: logger}
	s.cur.Store(&snapshot{})
	if err := s.load(true); err != nil {
		return nil, err
	}
	return s, nil
}

// Lookup returns the name of the key whose hash matches key's. It hashes
// whatever it is given, well-formed or not, and compares the hash with
// every stored one in constant time without stopping at a match, so how
// long it takes says nothing about the key or how close it came.
func (s *Set) Lookup(key string) (name string, ok bool) {
	sum := sha256.Sum256([]byte(key))
	snap := s.cur.Load()
	match := -1
	for i := range snap.sums {
		eq := subtle.ConstantTimeCompare(sum[:], snap.sums[i][:])
		match = subtle.ConstantTimeSelect(eq, i, match)
	}
	if match < 0 {
		return "", false
	}
	return snap.names[match], true
}

// Len returns how many keys the set holds now.
func (s *Set) Len() int {
	return len(s.cur.Load().names)
}

// Watch reads the file every Interval until ctx is done, and replaces the
// set's keys whenever the file's content changes (compared by hash, since
// a rewrite within the file system's timestamp granularity leaves the
// modification time as it was). Added and revoked keys thus take effect
// within one Interval. A file that disappears or becomes unreadable
// leaves no keys, with a warning.
func (s *Set) Watch(ctx context.Context) {
	interval := s.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.load(false)
		}
	}
}

// load reads the file and, when what it finds differs from the last load,
// replaces the keys. At open, an unreadable file is returned as an error;
// later it leaves no keys.
func (s *Set) load(opening bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	data, err := os.ReadFile(s.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if s.seen == "missing" {
			return nil
		}
		level := slog.LevelWarn
		if opening {
			level = slog.LevelInfo // a fresh install has no keys yet
		}
		s.log.Log(context.Background(), level, "admin keys file missing: every admin key is refused", "path", s.path)
		s.cur.Store(&snapshot{})
		s.seen = "missing"
		return nil
	case err != nil:
		if opening {
			return fmt.Errorf("admin keys: %w", err)
		}
		// The error names the path and the cause, never content.
		if seen := "error: " + err.Error(); s.seen != seen {
			s.log.Warn("admin keys file unreadable: every admin key is refused", "path", s.path, "err", err)
			s.cur.Store(&snapshot{})
			s.seen = seen
		}
		return nil
	}
	sum := sha256.Sum256(data)
	seen := hex.EncodeToString(sum[:])
	if s.seen == seen {
		return nil
	}
	entries, problems := parse(data)
	for _, p := range problems {
		s.log.Warn("admin keys file: line skipped", "path", s.path, "line", p.line, "reason", p.reason)
	}
	snap := &snapshot{names: make([]string, len(entries)), sums: make([][sha256.Size]byte, len(entries))}
	for i, e := range entries {
		snap.names[i] = e.Name
		hex.Decode(snap.sums[i][:], []byte(e.Hash)) // parse checked it
	}
	s.cur.Store(snap)
	s.seen = seen
	s.log.Info("admin keys loaded", "path", s.path, "keys", len(entries))
	return nil
}
