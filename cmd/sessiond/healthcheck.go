package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// healthTimeout bounds a health check: a container runtime that waits
// longer would rather count the check as failed.
const healthTimeout = 2 * time.Second

// healthcheck asks the public listener at SESSIOND_ADDR whether it is ready,
// for container HEALTHCHECKs (a scratch image has no curl): it answers nil
// for a 200 from /readyz within healthTimeout and an error saying why for
// anything else, so the process exits 0 or 1 with one line on stderr.
func healthcheck(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs, c, _ := newFlagSet("sessiond healthcheck", getenv, stderr)
	if err := parseFlags(fs, "healthcheck", stdout, stderr, fs.Parse, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("healthcheck takes no arguments, got %q", fs.Args())
	}
	u := "http://" + dialAddr(c.Addr) + "/readyz"
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("healthcheck: SESSIOND_ADDR %q: %w", c.Addr, err)
	}
	// No proxy: the server is on this machine, and an HTTP_PROXY meant for
	// outgoing traffic must not answer for it.
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: GET %s: %s", u, resp.Status)
	}
	return nil
}

// dialAddr turns a listen address into one to connect to: a listener on
// every interface (":8080", "0.0.0.0:8080", "[::]:8080") is reached on
// the loopback interface of the same family.
func dialAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return net.JoinHostPort(host, port)
}
