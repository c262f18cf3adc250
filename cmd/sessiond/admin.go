package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sessiond/sessiond"
	"github.com/sessiond/sessiond/internal/english"
)

// admin runs the user and sessions subcommands against the configured
// stores.
func admin(ctx context.Context, group string, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	verb, args := args[0], args[1:]
	switch verb {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	cmd := group + " " + verb
	want := map[string][2]int{ // command: min and max arguments
		"user add": {2, 2}, "user import": {1, 1}, "user lock": {1, 1}, "user unlock": {1, 1}, "user delete": {1, 1},
		"user reset-password": {1, 1}, "sessions list": {1, 1}, "sessions revoke": {1, 2},
	}
	n, ok := want[cmd]
	if !ok {
		fmt.Fprintf(stderr, "sessiond: unknown command %q\n\n%s", cmd, usage)
		return errUsage
	}
	fs, c, check := newFlagSet("sessiond "+cmd, getenv, stderr)
	var pos []string
	err := parseFlags(fs, cmd, stdout, stderr, func(args []string) (err error) {
		pos, err = parseInterleaved(fs, args)
		return err
	}, args)
	if err != nil {
		return err
	}
	args = pos
	if len(args) < n[0] || len(args) > n[1] {
		fmt.Fprintf(stderr, "sessiond: %s takes %s, got %d\n\n%s", cmd, argCount(n), len(args), usage)
		return errUsage
	}
	if err := check(); err != nil {
		return err
	}
	if group == "user" && c.external() {
		return fmt.Errorf("%s: users are the app's own in external mode (SESSIOND_USERS=external): manage them in the app; sessiond sessions list and revoke take the app's user id", cmd)
	}
	// Admin acts end sessions: their audit lines (who, which session, why)
	// go to standard error, as the server's go to its log.
	log := newLogger(c, stderr)
	// An administrator's acts are not throttled.
	m, st, err := open(ctx, c, log, func(p *sessiond.Parts) { p.Limiter = sessiond.NoThrottles })
	if err != nil {
		return err
	}
	defer st.Close()
	m.SignupOpen = true

	if cmd == "user import" {
		return importUsers(ctx, m, args[0], stdin, stdout, stderr)
	}
	if cmd == "user add" {
		pw, err := readPassword(stdin)
		if err != nil {
			return err
		}
		u, err := m.Register(ctx, sessiond.RegisterRequest{Username: args[0], Email: args[1], Password: pw})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "added user %s (id %s)\n", u.Username, u.ID)
		return nil
	}
	// USER is a username, or in external mode the app's own user id,
	// which names its sessions as it is.
	u := &sessiond.User{ID: args[0], Username: args[0]}
	if !c.external() {
		u, err = m.FindUser(ctx, args[0])
		if errors.Is(err, sessiond.ErrNotFound) {
			return fmt.Errorf("no user %q", args[0])
		}
		if err != nil {
			return err
		}
	}
	ended := func(n int, err error) error {
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: %s ended\n", u.Username, english.Plural(n, "session"))
		return nil
	}
	switch cmd {
	case "user lock":
		return ended(m.SetLocked(ctx, u.ID, true))
	case "user unlock":
		_, err := m.SetLocked(ctx, u.ID, false)
		if err == nil {
			fmt.Fprintf(stdout, "%s: unlocked\n", u.Username)
		}
		return err
	case "user delete":
		return ended(m.DeleteUser(ctx, u.ID))
	case "user reset-password":
		pw, err := readPassword(stdin)
		if err != nil {
			return err
		}
		return ended(m.ResetPassword(ctx, u.ID, pw))
	case "sessions list":
		list, err := m.List(ctx, u.ID, "")
		if err != nil {
			return err
		}
		if len(list) == 0 {
			fmt.Fprintf(stdout, "%s has no sessions\n", u.Username)
			return nil
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tDEVICE\tIP\tLOCATION\tLAST ACTIVE")
		for _, s := range list {
			dev := dash(s.Device)
			if s.Name != "" {
				dev = s.Name + " (" + s.Device + ")"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.ID, dev, dash(s.IPAddress), dash(s.Location), s.LastActive.UTC().Format(time.RFC3339))
		}
		return tw.Flush()
	case "sessions revoke":
		if len(args) == 2 {
			if err := m.Revoke(ctx, u.ID, args[1], sessiond.ReasonAdmin); err != nil {
				if errors.Is(err, sessiond.ErrNotFound) {
					return fmt.Errorf("%s has no session %q", u.Username, args[1])
				}
				return err
			}
			fmt.Fprintf(stdout, "%s: session %s ended\n", u.Username, args[1])
			return nil
		}
		return ended(m.RevokeAll(ctx, u.ID, sessiond.ReasonAdmin))
	}
	return errUsage
}

// parseInterleaved parses flags wherever they appear among the positional
// arguments (flag.Parse stops at the first positional one), so that
// "sessiond sessions list alice --data-dir /srv/sessiond" works, and returns
// the positional arguments. Everything after "--" is positional.
//
// A session id (22 or more base64url characters) is positional even when
// it starts with "-", as base64url ids may.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for len(args) > 0 {
		if looksLikeID(args[0]) && fs.Lookup(strings.TrimLeft(args[0], "-")) == nil {
			pos = append(pos, args[0])
			args = args[1:]
			continue
		}
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	return pos, nil
}

// looksLikeID reports whether w could be a session id.
func looksLikeID(w string) bool {
	if len(w) < 22 {
		return false
	}
	for i := 0; i < len(w); i++ {
		c := w[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func argCount(n [2]int) string {
	switch {
	case n[0] == n[1]:
		return english.Plural(n[0], "argument")
	default:
		return fmt.Sprintf("%d or %d arguments", n[0], n[1])
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// readPassword reads one line from r, the password, without its line end.
func readPassword(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, 8<<10)).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", err
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", errors.New("password: give it on standard input, e.g. printf '%s\\n' \"$PASSWORD\" | sessiond user add ...")
	}
	return pw, sessiond.CheckPassword("password", pw)
}
