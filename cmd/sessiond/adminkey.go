package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/sessiond/sessiond/internal/adminkey"
)

// hashPrefixLen is how much of a key's hash admin-key list shows: enough
// to tell keys apart, too little to stand for the hash.
const hashPrefixLen = 12

// adminKeyCmd runs the admin-key subcommands. They work on the keys file
// alone (docs/design.md, "Admin keys") and open no store, so they run
// where the stores are out of reach, and a running server notices their
// changes by itself.
func adminKeyCmd(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
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
	cmd := "admin-key " + verb
	want, ok := map[string]int{"admin-key new": 1, "admin-key list": 0, "admin-key revoke": 1}[cmd]
	if !ok {
		fmt.Fprintf(stderr, "sessiond: unknown command %q\n\n%s", cmd, usage)
		return errUsage
	}
	fs, c, check := newFlagSet("sessiond "+cmd, getenv, stderr)
	var asJSON *bool
	if verb == "list" {
		asJSON = fs.Bool("json", false, "print a JSON array of {name, hash_prefix}")
	}
	var pos []string
	err := parseFlags(fs, cmd, stdout, stderr, func(args []string) (err error) {
		pos, err = parseInterleaved(fs, args)
		return err
	}, args)
	if err != nil {
		return err
	}
	if len(pos) != want {
		fmt.Fprintf(stderr, "sessiond: %s takes %s, got %d\n\nUsage: %s\n", cmd, argCount([2]int{want, want}), len(pos), synopsis(cmd))
		return errUsage
	}
	if want == 1 {
		if err := adminkey.CheckName(pos[0]); err != nil {
			fmt.Fprintf(stderr, "sessiond: %s: %v\n\nUsage: %s\n", cmd, err, synopsis(cmd))
			return errUsage
		}
	}
	if err := check(); err != nil {
		return err
	}
	path := c.AdminKeysFile

	switch verb {
	case "new":
		name := pos[0]
		// As the server makes the data directory: private to its user.
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return err
		}
		key, err := adminkey.New(path, name)
		if errors.Is(err, adminkey.ErrNameTaken) {
			return fmt.Errorf("%s already has a key named %q: revoke it first, or choose another name", path, name)
		}
		if err != nil {
			return err
		}
		// The key alone on standard output, so KEY=$(sessiond admin-key new
		// app) works; the note goes where a terminal shows it but $() does
		// not capture it.
		fmt.Fprintln(stdout, key)
		fmt.Fprintf(stderr, "admin key %q added to %s; store it now, it is not shown again\n", name, path)
		return nil
	case "list":
		entries, err := adminkey.List(path)
		if err != nil {
			return err
		}
		if *asJSON {
			type item struct {
				Name       string `json:"name"`
				HashPrefix string `json:"hash_prefix"`
			}
			items := make([]item, 0, len(entries))
			for _, e := range entries {
				items = append(items, item{e.Name, e.Hash[:hashPrefixLen]})
			}
			return json.NewEncoder(stdout).Encode(items)
		}
		if len(entries) == 0 {
			fmt.Fprintf(stderr, "no admin keys in %s\n", path)
			return nil
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		for _, e := range entries {
			fmt.Fprintf(tw, "%s\t%s\n", e.Name, e.Hash[:hashPrefixLen])
		}
		return tw.Flush()
	case "revoke":
		name := pos[0]
		err := adminkey.Revoke(path, name)
		if errors.Is(err, adminkey.ErrNotFound) {
			return fmt.Errorf("%s has no key named %q", path, name)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "admin key %q revoked; a running server refuses it within 5 s\n", name)
		return nil
	}
	return errUsage
}
