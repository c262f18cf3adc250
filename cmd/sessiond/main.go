// Command sessiond serves the sessiond API and devices page, and runs admin
// subcommands against the same stores.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, "sessiond:", err)
		}
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

// errHelp says that help was asked for and printed: run answers it with
// success, since the command did what it was asked.
var errHelp = errors.New("help printed")

// commands is every command with its arguments and what it does, in the
// order the usage lists them.
var commands = []struct{ name, args, what string }{
	{"serve", "[flags]", "serve the API and the devices page (the default command)"},
	{"user add", "USERNAME EMAIL", "add a user (password from standard input)"},
	{"user import", "FILE", "import users with password hashes from JSON Lines (- for standard input)"},
	{"user lock", "USER", "lock a user and end their sessions"},
	{"user unlock", "USER", "unlock a user"},
	{"user delete", "USER", "delete a user and end their sessions"},
	{"user reset-password", "USER", "set a new password (standard input), ending every session"},
	{"sessions list", "USER", "list a user's sessions"},
	{"sessions revoke", "USER [SESSION]", "end one session, or all of them"},
	{"admin-key new", "NAME", "make an admin API key, printed once (only its hash is kept)"},
	{"admin-key list", "[--json]", "list the admin API keys: name and hash prefix"},
	{"admin-key revoke", "NAME", "revoke an admin API key (a running server notices within 5 s)"},
	{"healthcheck", "", "exit 0 when the server at SESSIOND_ADDR is ready, else 1"},
	{"version", "", "print the version, commit and Go version (also --version)"},
}

var usage = func() string {
	var b strings.Builder
	b.WriteString("Usage:\n")
	for _, c := range commands {
		fmt.Fprintf(&b, "  %-44s%s\n", strings.TrimSpace("sessiond "+c.name+" "+c.args), c.what)
	}
	b.WriteString("\nUSER is a username; with SESSIOND_USERS=external it is the app's own user id, and the user\n" +
		"commands are refused (the app keeps its users).\n" +
		"Every command reads the SESSIOND_* variables; each has a flag (sessiond serve -h).\n" +
		"SESSIOND_REDIS_URL and SESSIOND_DATABASE_URL may be given as SESSIOND_REDIS_URL_FILE and\n" +
		"SESSIOND_DATABASE_URL_FILE, paths to files that hold them.\n")
	return b.String()
}()

// synopsis is the usage line of one command.
func synopsis(cmd string) string {
	for _, c := range commands {
		if c.name == cmd {
			return strings.TrimSpace("sessiond " + c.name + " " + c.args)
		}
	}
	return "sessiond " + cmd
}

// run is the whole program: main only adds the process around it, so tests
// can start it on port 0 in a temporary directory.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	err := dispatch(ctx, args, getenv, stdin, stdout, stderr)
	if errors.Is(err, errHelp) {
		return nil
	}
	return err
}

func dispatch(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 {
		switch args[0] {
		case "-h", "-help", "--help", "help":
			fmt.Fprint(stdout, usage)
			return nil
		case "-version", "--version":
			cmd, args = "version", args[1:]
		default:
			if args[0] != "" && args[0][0] != '-' {
				cmd, args = args[0], args[1:]
			}
		}
	}
	switch cmd {
	case "serve":
		return serve(ctx, args, getenv, stdout, stderr)
	case "user", "sessions":
		return admin(ctx, cmd, args, getenv, stdin, stdout, stderr)
	case "admin-key":
		return adminKeyCmd(args, getenv, stdout, stderr)
	case "version":
		fs := flag.NewFlagSet("sessiond version", flag.ContinueOnError)
		if err := parseFlags(fs, "version", stdout, stderr, fs.Parse, args); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return fmt.Errorf("version takes no arguments, got %q", fs.Args())
		}
		fmt.Fprintln(stdout, version())
		return nil
	case "healthcheck":
		return healthcheck(ctx, args, getenv, stdout, stderr)
	}
	fmt.Fprintf(stderr, "sessiond: unknown command %q\n\n%s", cmd, usage)
	return errUsage
}

// parseFlags parses args with parse, a parser over fs, so that help asked
// for (-h, --help) goes to stdout with the command's usage and answers
// errHelp, while a wrong flag goes to stderr and answers errUsage.
func parseFlags(fs *flag.FlagSet, cmd string, stdout, stderr io.Writer, parse func([]string) error, args []string) error {
	var buf bytes.Buffer
	fs.SetOutput(&buf)
	fs.Usage = func() {
		fmt.Fprintf(&buf, "Usage: %s\n", synopsis(cmd))
		n := 0
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			fmt.Fprintf(&buf, "\nFlags (each defaults to the variable named after it):\n")
			fs.PrintDefaults()
		}
	}
	err := parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		stdout.Write(buf.Bytes())
		return errHelp
	case err != nil:
		stderr.Write(buf.Bytes())
		return errUsage
	}
	return nil
}
