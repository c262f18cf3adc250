//go:build linux

package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestSystemdUnitVerifies: systemd-analyze verify accepts every line of
// docs/sessiond.service (systemd ignores a line it cannot parse with only a
// warning, so a misspelt hardening option would silently do nothing), the
// unit keeps its hardening, and it points sessiond's data directory at the
// state directory systemd creates for it.
func TestSystemdUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal("systemd-analyze is missing: apt-get install systemd")
	}
	unit, err := os.ReadFile(filepath.Join("..", "..", "docs", "sessiond.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"ExecStart=/usr/local/bin/sessiond",
		"DynamicUser=yes",
		"StateDirectory=sessiond",
		"Environment=SESSIOND_DATA_DIR=/var/lib/sessiond",
		"EnvironmentFile=-/etc/sessiond/env",
		"ProtectSystem=strict",
		"ProtectHome=yes",
		"PrivateTmp=yes",
		"NoNewPrivileges=yes",
		"LimitNOFILE=65536",
		"RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
		"SystemCallFilter=@system-service",
		"CapabilityBoundingSet=",
		"MemoryDenyWriteExecute=yes",
		"Restart=on-failure",
	} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(want) + `$`).Match(unit) {
			t.Errorf("docs/sessiond.service lacks the line %s", want)
		}
	}

	// verify wants ExecStart to be an executable: point a copy at a real
	// sessiond.
	dir := t.TempDir()
	bin := filepath.Join(dir, "sessiond")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	local := bytes.Replace(unit, []byte("ExecStart=/usr/local/bin/sessiond"), []byte("ExecStart="+bin), 1)
	if warnings := verifyUnit(t, analyze, dir, "sessiond.service", local); len(warnings) > 0 {
		t.Errorf("systemd-analyze verify docs/sessiond.service:\n%s", strings.Join(warnings, "\n"))
	}
	// The same check sees a line systemd would ignore.
	bad := bytes.Replace(local, []byte("ProtectHome=yes"), []byte("ProtectHome=yes\nProtectHomes=yes"), 1)
	if warnings := verifyUnit(t, analyze, dir, "sessiond-bad.service", bad); len(warnings) == 0 {
		t.Error("systemd-analyze verify found nothing wrong with an unknown key: the check sees nothing")
	}

	// The one variable the unit sets is one sessiond reads.
	var help bytes.Buffer
	if err := run(t.Context(), []string{"serve", "-h"}, func(string) string { return "" }, nil, &help, &help); err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`(?m)^Environment=(SESSIOND_\w+)=`).FindAllSubmatch(unit, -1) {
		if !strings.Contains(help.String(), "("+string(m[1])) {
			t.Errorf("the unit sets %s, which sessiond does not read", m[1])
		}
	}
}

// verifyUnit writes unit to dir/name, runs systemd-analyze verify on it
// and returns what it said about that unit (it may also talk of units the
// machine has, such as network-online.target).
func verifyUnit(t *testing.T, analyze, dir, name string, unit []byte) []string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, unit, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(analyze, "verify", "--man=no", path)
	out, err := cmd.CombinedOutput()
	var warnings []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.Contains(line, name) {
			warnings = append(warnings, line)
		} else if line != "" {
			t.Logf("systemd-analyze verify: %s", line)
		}
	}
	if err != nil && len(warnings) == 0 {
		t.Fatalf("systemd-analyze verify %s: %v\n%s", name, err, out)
	}
	return warnings
}
