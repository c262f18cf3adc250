// Command sessiond serves the sessiond API and devices page, and runs admin
// subcommands against the same stores.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
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

const usage = `Usage:
  sessiond [serve] [flags]                    serve the API and the devices page
  sessiond user add USERNAME EMAIL            add a user (password from standard input)
  sessiond user lock USER                     lock a user and end their sessions
  sessiond user unlock USER                   unlock a user
  sessiond user delete USER                   delete a user and end their sessions
  sessiond user reset-password USER           set a new password (standard input), ending every session
  sessiond sessions list USER                 list a user's sessions
  sessiond sessions revoke USER [SESSION]     end one session, or all of them

Every command reads the SESSIOND_* variables; each has a flag (sessiond serve -h).
`

// run is the whole program: main only adds the process around it, so tests
// can start it on port 0 in a temporary directory.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, args, getenv, stdout, stderr)
	case "user", "sessions":
		return admin(ctx, cmd, args, getenv, stdin, stdout, stderr)
	case "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprintf(stderr, "sessiond: unknown command %q\n\n%s", cmd, usage)
	return errUsage
}
