package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sessiond/sessiond"
	sessiondhttp "github.com/sessiond/sessiond/http"
	"github.com/sessiond/sessiond/internal/english"
)

// maxImportLine is the longest line of an import file: far more than a
// user with the longest username, email and hash needs.
const maxImportLine = 64 << 10

// importLine is one line of an import file (docs/design.md, "Imported
// password hashes").
type importLine struct {
	Username     *string `json:"username"`
	Email        *string `json:"email"`
	PasswordHash *string `json:"password_hash"`
	CreatedAt    *string `json:"created_at"`
}

// importReport counts and lists what an import did.
type importReport struct {
	imported, skipped, refused int
	lines                      int       // read so far
	notes                      []note    // not printed yet
	out                        io.Writer // where notes are printed
}

// maxHeldNotes is how many notes wait for the batch before them before
// that batch is imported early, so a file of refused lines does not grow
// memory.
const maxHeldNotes = 10000

// print writes, in line order, the notes of every line decided so far and
// forgets them: the caller knows that no line up to the last one read is
// still waiting in a batch.
func (r *importReport) print() {
	slices.SortStableFunc(r.notes, func(a, b note) int { return a.line - b.line })
	for _, n := range r.notes {
		fmt.Fprintln(r.out, n.text)
	}
	r.notes = r.notes[:0]
}

// note is what became of one line that was not imported.
type note struct {
	line int
	text string
}

func (r *importReport) skip(line int, why string) {
	r.skipped++
	r.notes = append(r.notes, note{line, fmt.Sprintf("line %d: skipped: %s", line, why)})
}

func (r *importReport) refuse(line int, why string) {
	r.refused++
	r.notes = append(r.notes, note{line, fmt.Sprintf("line %d: refused: %s", line, why)})
}

func (r *importReport) summary() string {
	return fmt.Sprintf("imported %d, skipped %d, refused %d", r.imported, r.skipped, r.refused)
}

// errRefused says that an import refused lines: it ends with a non-zero
// exit status once the report is printed.
var errRefused = errors.New("refused")

// importUsers runs "sessiond user import FILE": it reads JSON Lines from
// path ("-": stdin) a batch at a time, imports each batch in one
// transaction, and prints what it skipped and refused, then the counts.
// Lines are never held beyond their batch, so a file of any size streams.
func importUsers(ctx context.Context, m *sessiond.Manager, path string, stdin io.Reader, stdout, stderr io.Writer) error {
	in := stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	rep := &importReport{out: stdout}
	prog := newProgress(stderr)
	err := readImport(ctx, m, bufio.NewReaderSize(in, 256<<10), rep, prog)
	prog.done(rep)
	rep.print()
	fmt.Fprintln(stdout, rep.summary())
	switch {
	case err != nil:
		return fmt.Errorf("import stopped after line %d: %w", rep.lines, err)
	case rep.refused > 0:
		return fmt.Errorf("%s %w", english.Plural(rep.refused, "line"), errRefused)
	}
	return nil
}

// pending is a request of a batch and the line it came from.
type pending struct {
	line int
	req  sessiond.ImportRequest
}

// readImport reads every line of in into rep, importing a batch whenever
// it is full.
func readImport(ctx context.Context, m *sessiond.Manager, in *bufio.Reader, rep *importReport, prog *progress) error {
	batch := make([]pending, 0, sessiond.MaxImportBatch)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := importBatch(ctx, m, batch, rep)
		batch = batch[:0]
		prog.tick(rep)
		// Every line read so far is decided: the notes go out in line
		// order (a line refused as it was read is noted before the lines
		// of its batch) and are not kept.
		rep.print()
		return err
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		raw, tooLong, err := readLine(in)
		if err == io.EOF && raw == nil {
			return flush()
		}
		if err != nil && err != io.EOF {
			return err
		}
		rep.lines++
		line := rep.lines
		switch r, why := parseImportLine(raw, tooLong); {
		case why == "-":
			// blank line
		case why != "":
			rep.refuse(line, why)
			switch {
			case len(batch) == 0:
				rep.print()
			case len(rep.notes) >= maxHeldNotes:
				if err := flush(); err != nil {
					return err
				}
			}
		default:
			batch = append(batch, pending{line, r})
			if len(batch) == cap(batch) {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if err == io.EOF {
			return flush()
		}
	}
}

// readLine returns the next line of in without its line end; tooLong when
// it was longer than maxImportLine (the rest of it is read and dropped).
// It returns io.EOF with a nil line at the end.
func readLine(in *bufio.Reader) (line []byte, tooLong bool, err error) {
	var buf []byte
	for {
		chunk, err := in.ReadSlice('\n')
		if len(buf)+len(chunk) > maxImportLine {
			tooLong = true
		} else {
			buf = append(buf, chunk...)
		}
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err == io.EOF && len(buf) == 0 && !tooLong:
			return nil, false, io.EOF
		case err != nil && err != io.EOF:
			return nil, false, err
		}
		if buf == nil {
			buf = []byte{}
		}
		return bytes.TrimRight(buf, "\r\n"), tooLong, err
	}
}

// parseImportLine decodes one line; why says why it is refused ("-" for a
// blank line, which is neither imported nor refused).
func parseImportLine(raw []byte, tooLong bool) (sessiond.ImportRequest, string) {
	var r sessiond.ImportRequest
	if tooLong {
		return r, fmt.Sprintf("longer than %d bytes", maxImportLine)
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return r, "-"
	}
	if sessiondhttp.HasLoneSurrogate(raw) {
		// encoding/json would fold it to U+FFFD, making two addresses one.
		return r, "holds a lone UTF-16 surrogate escape (such as \\ud800 without its pair)"
	}
	if !utf8.Valid(raw) {
		// encoding/json would turn each invalid byte into U+FFFD, making
		// two addresses one.
		return r, "is not valid UTF-8"
	}
	if why := importNames(raw); why != "" {
		return r, why
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var l importLine
	if err := dec.Decode(&l); err != nil {
		return r, "not a JSON object of username, email, password_hash and created_at: " + jsonProblem(err)
	}
	if dec.More() {
		return r, "more than one JSON value on the line"
	}
	for _, f := range []struct {
		name string
		v    *string
	}{{"username", l.Username}, {"email", l.Email}, {"password_hash", l.PasswordHash}} {
		if f.v == nil {
			return r, f.name + " is missing"
		}
	}
	r = sessiond.ImportRequest{Username: *l.Username, Email: *l.Email, PasswordHash: *l.PasswordHash}
	if l.CreatedAt != nil {
		t, err := time.Parse(time.RFC3339Nano, *l.CreatedAt)
		if err != nil {
			return r, "created_at: must be an RFC 3339 time like 2021-03-04T05:06:07Z"
		}
		r.CreatedAt = t
	}
	return r, ""
}

// jsonProblem says what is wrong with a line without quoting its values
// (one of them may be a secret).
func jsonProblem(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return te.Field + " must be a string"
	}
	if s := err.Error(); strings.HasPrefix(s, "json: unknown field ") {
		return "unknown field " + strings.TrimPrefix(s, "json: unknown field ")
	}
	return "malformed JSON"
}

// importBatch imports one batch and records each line's outcome.
func importBatch(ctx context.Context, m *sessiond.Manager, batch []pending, rep *importReport) error {
	rs := make([]sessiond.ImportRequest, len(batch))
	for i, p := range batch {
		rs[i] = p.req
	}
	_, errs, err := m.ImportUsers(ctx, rs)
	if err != nil {
		return err
	}
	for i, err := range errs {
		line := batch[i].line
		var ie *sessiond.InputError
		switch {
		case err == nil:
			rep.imported++
		case errors.Is(err, sessiond.ErrUsernameTaken):
			rep.skip(line, fmt.Sprintf("username %q is already taken", rs[i].Username))
		case errors.Is(err, sessiond.ErrEmailTaken):
			rep.skip(line, fmt.Sprintf("email %q is already registered", rs[i].Email))
		case errors.As(err, &ie):
			rep.refuse(line, ie.Error())
		default:
			return err
		}
	}
	return nil
}

// progress writes a progress line to a terminal about once a second, and
// nothing to anything else (a file, a pipe, a test's buffer).
type progress struct {
	w     io.Writer // nil: not a terminal
	start time.Time
	last  time.Time
}

func newProgress(stderr io.Writer) *progress {
	now := time.Now()
	p := &progress{start: now, last: now}
	if f, ok := stderr.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.w = f
		}
	}
	return p
}

func (p *progress) tick(rep *importReport) {
	if p.w == nil || time.Since(p.last) < time.Second {
		return
	}
	p.last = time.Now()
	fmt.Fprintf(p.w, "\r%d lines read: %s (%.0f users/s)\x1b[K", rep.lines, rep.summary(), float64(rep.imported)/time.Since(p.start).Seconds())
}

func (p *progress) done(rep *importReport) {
	if p.w != nil && !p.last.Equal(p.start) {
		fmt.Fprint(p.w, "\r\x1b[K")
	}
}

// importNames refuses a line whose object repeats a member or names one in
// another spelling than the file format's: encoding/json matches names
// case-insensitively and keeps the last, so "USERNAME" or a second
// "username" would otherwise pick the value silently.
func importNames(raw []byte) string {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return "not a JSON object of username, email, password_hash and created_at"
	}
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return "malformed JSON"
		}
		name, _ := t.(string)
		switch name {
		case "username", "email", "password_hash", "created_at":
		default:
			return "unknown field " + strconv.Quote(name)
		}
		if seen[name] {
			return name + " appears twice"
		}
		seen[name] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return "malformed JSON"
		}
	}
	return ""
}
