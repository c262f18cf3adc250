package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// instruction is one Dockerfile line, continuations joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, ENV, ...
	args string
}

// parseDockerfile reads the instructions of the Dockerfile at path, by
// stage (a FROM starts one).
func parseDockerfile(t *testing.T, path string) [][]instruction {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var stages [][]instruction
	var line string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "#") {
			continue
		}
		if s, ok := strings.CutSuffix(strings.TrimRight(l, " \t"), `\`); ok {
			line += s + " "
			continue
		}
		line += l
		fields := strings.Fields(line)
		line = ""
		if len(fields) == 0 {
			continue
		}
		in := instruction{cmd: strings.ToUpper(fields[0]), args: strings.Join(fields[1:], " ")}
		if in.cmd == "FROM" {
			stages = append(stages, nil)
		}
		if len(stages) == 0 {
			t.Fatalf("%s: %s before the first FROM", path, in.cmd)
		}
		stages[len(stages)-1] = append(stages[len(stages)-1], in)
	}
	return stages
}

// TestDockerfileMatchesTheImage: the Dockerfile at the module root builds
// what buildImage builds (the same files, owners, modes and settings), so
// an image from either is the same image. No Docker daemon is needed to
// check it, only to build it.
func TestDockerfileMatchesTheImage(t *testing.T) {
	stages := parseDockerfile(t, filepath.Join("..", "..", "Dockerfile"))
	if len(stages) != 2 {
		t.Fatalf("got %d stages, want a build stage and a final one", len(stages))
	}
	build, final := stages[0], stages[1]

	// The build stage's Go is the one go.mod asks for.
	gomod, err := os.ReadFile(filepath.Join("..", "..", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	if m == nil {
		t.Fatal("go.mod has no go directive")
	}
	if want := "golang:" + string(m[1]) + " AS build"; build[0].args != want {
		t.Errorf("build stage: FROM %s, want FROM %s", build[0].args, want)
	}
	runs := ""
	for _, in := range build {
		if in.cmd == "RUN" {
			runs += in.args + "\n"
		}
	}
	for _, want := range []string{
		"CGO_ENABLED=0 go build -buildvcs=auto -trimpath -ldflags='-s -w' -o /rootfs/sessiond ./cmd/sessiond",
		"cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/",
		"cp internal/ociimage/etc/passwd internal/ociimage/etc/group /rootfs/etc/",
		"chmod 0755 /rootfs/sessiond /rootfs/etc /rootfs/etc/ssl /rootfs/etc/ssl/certs",
		"chmod 0644 /rootfs/etc/passwd /rootfs/etc/group /rootfs/etc/ssl/certs/ca-certificates.crt",
		"chown 65532:65532 /rootfs/data && chmod 0700 /rootfs/data",
		"chmod 1777 /rootfs/tmp",
	} {
		if !strings.Contains(runs, want) {
			t.Errorf("the build stage does not run %q", want)
		}
	}

	want := imageConfig("${VERSION}", "${REVISION}")
	var env, ports []string
	labels := map[string]string{}
	var froms, copies, users, healthchecks, entrypoints []string
	for _, in := range final {
		switch in.cmd {
		case "FROM":
			froms = append(froms, in.args)
		case "COPY":
			copies = append(copies, in.args)
		case "ENV":
			env = append(env, strings.Fields(in.args)...)
		case "EXPOSE":
			for _, p := range strings.Fields(in.args) {
				ports = append(ports, p+"/tcp")
			}
		case "USER":
			users = append(users, in.args)
		case "LABEL":
			for _, kv := range regexp.MustCompile(`(\S+)="([^"]*)"`).FindAllStringSubmatch(in.args, -1) {
				labels[kv[1]] = kv[2]
			}
		case "HEALTHCHECK":
			healthchecks = append(healthchecks, in.args)
		case "ENTRYPOINT":
			entrypoints = append(entrypoints, in.args)
		case "ARG":
		default:
			t.Errorf("final stage: %s %s is not in the daemonless image", in.cmd, in.args)
		}
	}
	if !slices.Equal(froms, []string{"scratch"}) {
		t.Errorf("final stage: FROM %q, want scratch", froms)
	}
	if !slices.Equal(copies, []string{"--from=build /rootfs/ /"}) {
		t.Errorf("final stage: COPY %q, want the build stage's /rootfs/ alone", copies)
	}
	// docker build adds PATH to an image on scratch; imageEnv has it too.
	if wantEnv := want.Env[1:]; !slices.Equal(env, wantEnv) || !strings.HasPrefix(want.Env[0], "PATH=") {
		t.Errorf("ENV %q, want %q", env, wantEnv)
	}
	var wantPorts []string
	for p := range want.ExposedPorts {
		wantPorts = append(wantPorts, p)
	}
	slices.Sort(ports)
	slices.Sort(wantPorts)
	if !slices.Equal(ports, wantPorts) {
		t.Errorf("EXPOSE %q, want %q", ports, wantPorts)
	}
	if !slices.Equal(users, []string{want.User}) {
		t.Errorf("USER %q, want %s", users, want.User)
	}
	if len(labels) != len(want.Labels) {
		t.Errorf("LABEL %q, want %q", labels, want.Labels)
	}
	for k, v := range want.Labels {
		if labels[k] != v {
			t.Errorf("LABEL %s=%q, want %q", k, labels[k], v)
		}
	}
	var entrypoint []string
	if len(entrypoints) != 1 || json.Unmarshal([]byte(entrypoints[0]), &entrypoint) != nil || !slices.Equal(entrypoint, want.Entrypoint) {
		t.Errorf("ENTRYPOINT %q, want %q", entrypoints, want.Entrypoint)
	}

	if len(healthchecks) != 1 {
		t.Fatalf("HEALTHCHECK %q, want one", healthchecks)
	}
	opts, cmd, ok := strings.Cut(healthchecks[0], "CMD ")
	if !ok {
		t.Fatalf("HEALTHCHECK %s: no CMD", healthchecks[0])
	}
	var got []string
	if err := json.Unmarshal([]byte(cmd), &got); err != nil || !slices.Equal(append([]string{"CMD"}, got...), want.Healthcheck.Test) {
		t.Errorf("HEALTHCHECK CMD %s, want %q", cmd, want.Healthcheck.Test[1:])
	}
	durations := map[string]time.Duration{}
	retries := ""
	for _, o := range strings.Fields(opts) {
		k, v, _ := strings.Cut(strings.TrimPrefix(o, "--"), "=")
		if k == "retries" {
			retries = v
			continue
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Errorf("HEALTHCHECK %s: %v", o, err)
		}
		durations[k] = d
	}
	h := want.Healthcheck
	if durations["interval"] != h.Interval || durations["timeout"] != h.Timeout || durations["start-period"] != h.StartPeriod || retries != "3" || h.Retries != 3 {
		t.Errorf("HEALTHCHECK options %q, want interval %s, timeout %s, start period %s, 3 retries", opts, h.Interval, h.Timeout, h.StartPeriod)
	}
}
