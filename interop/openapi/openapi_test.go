// Package openapi_test checks that the OpenAPI descriptions in docs/ serve
// the tools clients use (docs/design.md, "Testing"): Redocly's and
// Spectral's linters find no error in them, and a TypeScript client written
// against the types openapi-typescript generates from them type-checks.
//
// The Node.js tools are pinned in package.json and package-lock.json and
// installed into node_modules with npm ci when missing or stale.
package openapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// documents are the OpenAPI descriptions checked, relative to this
// directory. Each must lint without errors under redocly.yaml and
// .spectral.yaml (problems that are meant are listed in
// .redocly.lint-ignore.yaml and .spectral.yaml), and the types generated
// from it into gen/<name>.ts must type-check with the programs here (*.ts).
var documents = []string{
	"../../docs/openapi.yaml",
	"../../docs/openapi-admin.yaml",
}

// tools are the npm packages the test runs, as package-lock.json pins them.
var tools = []string{"@redocly/cli", "@stoplight/spectral-cli", "openapi-typescript", "typescript"}

// minNode is the oldest Node.js every tool supports (Spectral: 18.18).
var minNode = [2]int{18, 18}

const installHint = "apt-get install -y nodejs npm (bash scripts/test.sh installs them)"

func TestLint(t *testing.T) {
	installTools(t)
	for _, doc := range documents {
		t.Run(filepath.Base(doc), func(t *testing.T) {
			t.Run("redocly", func(t *testing.T) { redocly(t, doc) })
			t.Run("spectral", func(t *testing.T) { spectral(t, doc) })
		})
	}
}

// TestTypeScriptClient generates TypeScript types from every document and
// type-checks the client programs of this directory against them.
func TestTypeScriptClient(t *testing.T) {
	installTools(t)
	if err := os.MkdirAll("gen", 0o755); err != nil {
		t.Fatal(err)
	}
	for _, doc := range documents {
		out := filepath.Join("gen", strings.TrimSuffix(filepath.Base(doc), filepath.Ext(doc))+".ts")
		run(t, "openapi-typescript", doc, "-o", out)
		src, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(src, []byte("export interface paths")) {
			t.Fatalf("%s: openapi-typescript wrote no paths:\n%.2000s", out, src)
		}
	}
	run(t, "tsc", "--noEmit", "-p", "tsconfig.json")
}

// redocly lints doc with Redocly's recommended rules (redocly.yaml) and
// fails on any error.
func redocly(t *testing.T, doc string) {
	out, stderr := runOutput(t, "redocly", "lint", "--config", "redocly.yaml", "--format=json", doc)
	var report struct {
		Totals struct {
			Errors, Warnings, Ignored int
		}
		Problems []struct {
			RuleID   string `json:"ruleId"`
			Severity string
			Message  string
			Location []struct {
				Pointer string
			}
		}
	}
	if err := json.Unmarshal(out, &report); err != nil {
		t.Fatalf("redocly lint %s: output is not its JSON report (%v):\n%s%s", doc, err, out, stderr)
	}
	var lines []string
	for _, p := range report.Problems {
		where := ""
		if len(p.Location) > 0 {
			where = p.Location[0].Pointer
		}
		lines = append(lines, fmt.Sprintf("%s %s at %s: %s", p.Severity, p.RuleID, where, p.Message))
	}
	summary := fmt.Sprintf("redocly lint %s: %d errors, %d warnings, %d ignored", doc, report.Totals.Errors, report.Totals.Warnings, report.Totals.Ignored)
	if report.Totals.Errors > 0 {
		t.Fatalf("%s\n%s", summary, strings.Join(lines, "\n"))
	}
	for _, p := range report.Problems {
		if p.RuleID == "info-license" || p.RuleID == "info-license-url" {
			t.Errorf("%s: the document must name its license (%s: %s)", doc, p.RuleID, p.Message)
		}
	}
	t.Logf("%s\n%s", summary, strings.Join(lines, "\n"))
}

// spectral lints doc with Spectral's OpenAPI rules (.spectral.yaml) and
// fails on any error.
func spectral(t *testing.T, doc string) {
	out, stderr := runOutput(t, "spectral", "lint", "--ruleset", ".spectral.yaml", "--format=json", "--quiet", doc)
	var results []struct {
		Code     string
		Message  string
		Severity int // 0 error, 1 warning, 2 information, 3 hint
		Path     []any
		Range    struct {
			Start struct{ Line int }
		}
	}
	if err := json.Unmarshal(out, &results); err != nil {
		t.Fatalf("spectral lint %s: output is not its JSON report (%v):\n%s%s", doc, err, out, stderr)
	}
	var counts [4]int
	var lines []string
	for _, r := range results {
		if r.Severity >= 0 && r.Severity < len(counts) {
			counts[r.Severity]++
		}
		severity := [...]string{"error", "warning", "information", "hint"}[min(max(r.Severity, 0), 3)]
		lines = append(lines, fmt.Sprintf("%s %s at line %d %v: %s", severity, r.Code, r.Range.Start.Line+1, r.Path, r.Message))
	}
	summary := fmt.Sprintf("spectral lint %s: %d errors, %d warnings", doc, counts[0], counts[1])
	if counts[0] > 0 {
		t.Fatalf("%s\n%s", summary, strings.Join(lines, "\n"))
	}
	t.Logf("%s\n%s", summary, strings.Join(lines, "\n"))
}

// installTools makes sure node and the locked tools are installed, running
// npm ci when node_modules is missing or holds other versions.
func installTools(t *testing.T) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is not installed: " + installHint)
	}
	v, err := exec.Command(node, "--version").Output()
	if err != nil {
		t.Fatalf("node --version: %v", err)
	}
	if !atLeast(strings.TrimSpace(string(v)), minNode) {
		t.Fatalf("node %s is too old for the linters, which need %d.%d or later: install a newer nodejs", bytes.TrimSpace(v), minNode[0], minNode[1])
	}
	var lock struct {
		Packages map[string]struct {
			Version string `json:"version"`
		} `json:"packages"`
	}
	b, err := os.ReadFile("package-lock.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &lock); err != nil {
		t.Fatalf("package-lock.json: %v", err)
	}
	current := true
	for _, name := range tools {
		want := lock.Packages["node_modules/"+name].Version
		if want == "" {
			t.Fatalf("package-lock.json does not pin %s", name)
		}
		var installed struct {
			Version string `json:"version"`
		}
		if b, err := os.ReadFile(filepath.Join("node_modules", name, "package.json")); err == nil {
			json.Unmarshal(b, &installed)
		}
		current = current && installed.Version == want
	}
	if current {
		return
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Fatal("npm is not installed: " + installHint)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Env = toolEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in interop/openapi (needs the npm registry or its cache): %v\n%s", err, out)
	}
}

// atLeast reports whether the Node.js version v ("v20.19.2") is at least
// min (major, minor).
func atLeast(v string, min [2]int) bool {
	parts := strings.SplitN(strings.TrimPrefix(v, "v"), ".", 3)
	if len(parts) < 2 {
		return false
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return false
	}
	return major > min[0] || major == min[0] && minor >= min[1]
}

// toolEnv is the environment of the tools: no telemetry, no update checks.
func toolEnv() []string {
	return append(os.Environ(),
		"REDOCLY_TELEMETRY=off", "REDOCLY_SUPPRESS_UPDATE_NOTICE=true", "NO_UPDATE_NOTIFIER=1", "NO_COLOR=1")
}

// runOutput runs an installed tool and returns its standard output and
// standard error, whatever its exit status; it fails t if the tool could not
// run at all.
func runOutput(t *testing.T, tool string, args ...string) (stdout, stderr []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join("node_modules", ".bin", tool), args...)
	cmd.Env = toolEnv()
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if _, exited := err.(*exec.ExitError); err != nil && !exited {
		t.Fatalf("%s %s: %v\n%s", tool, strings.Join(args, " "), err, errOut.Bytes())
	}
	return out.Bytes(), errOut.Bytes()
}

// run runs an installed tool and fails t unless it exits 0.
func run(t *testing.T, tool string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join("node_modules", ".bin", tool), args...)
	cmd.Env = toolEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", tool, strings.Join(args, " "), err, out)
	}
}
