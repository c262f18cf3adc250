//go:build linux

package main

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/sessiond/sessiond/internal/freeport"
)

const caBundle = "/etc/ssl/certs/ca-certificates.crt"

// TestImageServesAsNonRootFromEmptyBase builds the image as scripts/image.sh
// does, loads it back from the tarball docker load would read, unpacks its
// one layer and runs its entrypoint the way a container runtime would: as
// uid 65532, chrooted into that filesystem (nothing of the host's: no
// libc, no /dev, no /proc), with only the image's environment. The server
// answers /readyz and a registration, keeps its SQLite file private to its
// user, and `sessiond healthcheck` run the same way says ready, then not
// ready once the server is stopped.
func TestImageServesAsNonRootFromEmptyBase(t *testing.T) {
	userns := os.Geteuid() != 0
	if _, err := os.Stat(caBundle); err != nil {
		t.Fatalf("the image takes its CA certificates from %s: apt-get install ca-certificates", caBundle)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	work := t.TempDir()

	// Build it.
	root, err := moduleRoot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(work, "sessiond")
	var buildLog bytes.Buffer
	start := time.Now()
	if err := buildBinary(ctx, root, runtime.GOARCH, bin, &buildLog); err != nil {
		t.Fatalf("%v\n%s", err, &buildLog)
	}
	t.Logf("go build ./cmd/sessiond: %s", time.Since(start).Round(time.Millisecond))
	info, err := readBinary(bin)
	if err != nil {
		t.Fatal(err)
	}
	built, err := buildImage(imageOptions{Binary: bin, CACerts: caBundle}, info, time.Unix(1_700_000_000, 0))
	if err != nil {
		t.Fatal(err)
	}
	// The same inputs make the same image: the config names the
	// uncompressed layer's digest, so equal configs mean equal files.
	again, err := buildImage(imageOptions{Binary: bin, CACerts: caBundle}, info, time.Unix(1_700_000_000, 0))
	if err != nil {
		t.Fatal(err)
	}
	c1, err1 := built.ConfigName()
	c2, err2 := again.ConfigName()
	if err1 != nil || err2 != nil || c1 != c2 {
		t.Fatalf("two builds of the same binary: configs %v and %v (%v, %v)", c1, c2, err1, err2)
	}
	archive := filepath.Join(work, "sessiond-image.tar")
	if err := tarball.WriteToFile(archive, name.MustParseReference("sessiond:test").(name.Tag), built); err != nil {
		t.Fatal(err)
	}

	// Read it back as a runtime would.
	img, err := tarball.ImageFromPath(archive, nil)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	checkConfig(t, cf, info)
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 {
		t.Fatalf("got %d layers, want 1", len(layers))
	}
	size, err := layers[0].Size()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("image size: one layer, %d bytes compressed (%.1f MiB)", size, float64(size)/(1<<20))
	rootDir := filepath.Join(work, "rootfs")
	unpack(t, layers[0], rootDir, !userns)

	// The process sees the image's user and files; the host sees them
	// owned by 65532, or by us when a user namespace maps us to 65532.
	j := jail{root: rootDir, userns: userns, user: cf.Config.User}
	hostUID, hostGID := uid, gid
	if userns {
		hostUID, hostGID = os.Geteuid(), os.Getegid()
	}
	out, err := j.command(cf.Config.Env, "/sessiond", "version").CombinedOutput()
	if err != nil {
		if userns {
			t.Fatalf("running the image as uid %d in a chroot needs root, or unprivileged user namespaces "+
				"(sysctl kernel.unprivileged_userns_clone=1, and kernel.apparmor_restrict_unprivileged_userns=0 on Ubuntu): %v\n%s", uid, err, out)
		}
		t.Fatalf("/sessiond version in the image: %v\n%s", err, out)
	}
	if !strings.HasPrefix(string(out), "sessiond ") {
		t.Fatalf("/sessiond version: got %q", out)
	}

	// Serve on free loopback ports instead of the image's :8080 and :8081.
	port, err := freeport.Port()
	if err != nil {
		t.Fatal(err)
	}
	adminPort, err := freeport.Port()
	if err != nil {
		t.Fatal(err)
	}
	if adminPort == port {
		adminPort++
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	env := setEnv(cf.Config.Env, "SESSIOND_ADDR", addr)
	env = setEnv(env, "SESSIOND_ADMIN_ADDR", "127.0.0.1:"+strconv.Itoa(adminPort))

	var serverLog syncBuffer
	server := j.command(env, append(slices.Clone(cf.Config.Entrypoint), cf.Config.Cmd...)...)
	server.Stdout, server.Stderr = &serverLog, &serverLog
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- server.Wait() }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			server.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("server output:\n%s", serverLog.String())
		}
	})

	base := "http://" + addr
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}
	waitReady(t, client, base+"/readyz", exited)
	resp, err := client.Post(base+"/api/v1/auth/register", "application/json",
		strings.NewReader(`{"username":"oona","email":"oona@example.com","password":"correct horse battery staple"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /api/v1/auth/register: got %d, want 201: %s", resp.StatusCode, body)
	}

	// The user's password hash lands in a file only the server's user reads.
	for path, want := range map[string]os.FileMode{"data": os.ModeDir | 0o700, "data/sessiond.db": 0o600} {
		fi, err := os.Stat(filepath.Join(rootDir, path))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode() != want || int(st.Uid) != hostUID || int(st.Gid) != hostGID {
			t.Errorf("/%s: got %v %d:%d, want %v %d:%d (%d:%d in the image)", path, fi.Mode(), st.Uid, st.Gid, want, hostUID, hostGID, uid, gid)
		}
	}

	healthcheck := func() (int, string) {
		t.Helper()
		if len(cf.Config.Healthcheck.Test) < 2 || cf.Config.Healthcheck.Test[0] != "CMD" {
			t.Fatalf("Healthcheck.Test: got %q, want CMD and a command", cf.Config.Healthcheck.Test)
		}
		out, err := j.command(env, cf.Config.Healthcheck.Test[1:]...).CombinedOutput()
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatal(err)
		}
		if exit != nil {
			return exit.ExitCode(), string(out)
		}
		return 0, string(out)
	}
	if code, out := healthcheck(); code != 0 {
		t.Fatalf("healthcheck with the server up: exit %d, want 0: %s", code, out)
	}

	server.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			t.Fatalf("server exit after SIGTERM: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server did not stop within 10 s of SIGTERM")
	}
	if code, out := healthcheck(); code != 1 || !strings.Contains(out, "healthcheck:") {
		t.Fatalf("healthcheck with the server stopped: exit %d %q, want exit 1 saying why", code, out)
	}
}

// checkConfig checks how the image says to run it.
func checkConfig(t *testing.T, cf *v1.ConfigFile, info binaryInfo) {
	t.Helper()
	c := cf.Config
	if cf.OS != "linux" || cf.Architecture != runtime.GOARCH {
		t.Errorf("platform: got %s/%s, want linux/%s", cf.OS, cf.Architecture, runtime.GOARCH)
	}
	if !slices.Equal(c.Entrypoint, []string{"/sessiond"}) || len(c.Cmd) != 0 {
		t.Errorf("Entrypoint %q Cmd %q: want [/sessiond] and no Cmd", c.Entrypoint, c.Cmd)
	}
	if c.User != "65532:65532" {
		t.Errorf("User: got %q, want 65532:65532", c.User)
	}
	for _, kv := range []string{"SESSIOND_ADDR=:8080", "SESSIOND_DATA_DIR=/data", "SESSIOND_ADMIN_ADDR=:8081"} {
		if !slices.Contains(c.Env, kv) {
			t.Errorf("Env %q lacks %s", c.Env, kv)
		}
	}
	if _, ok := c.ExposedPorts["8080/tcp"]; !ok || len(c.ExposedPorts) != 2 {
		t.Errorf("ExposedPorts: got %v, want 8080/tcp and 8081/tcp", c.ExposedPorts)
	}
	if c.Healthcheck == nil || !slices.Equal(c.Healthcheck.Test, []string{"CMD", "/sessiond", "healthcheck"}) {
		t.Errorf("Healthcheck: got %+v, want CMD /sessiond healthcheck", c.Healthcheck)
	}
	want := map[string]string{
		"org.opencontainers.image.source":   sourceURL,
		"org.opencontainers.image.version":  info.Version,
		"org.opencontainers.image.revision": info.Revision,
	}
	for k, v := range want {
		if c.Labels[k] != v {
			t.Errorf("label %s: got %q, want %q", k, c.Labels[k], v)
		}
	}
}

// unpack extracts layer into dir as a runtime does, with the modes and (as
// root) the owners the layer gives, and checks it holds exactly the
// image's files.
func unpack(t *testing.T, layer v1.Layer, dir string, chown bool) {
	t.Helper()
	want := map[string]struct {
		mode     os.FileMode
		uid, gid int
	}{
		"etc/":                              {os.ModeDir | 0o755, 0, 0},
		"etc/ssl/":                          {os.ModeDir | 0o755, 0, 0},
		"etc/ssl/certs/":                    {os.ModeDir | 0o755, 0, 0},
		"etc/ssl/certs/ca-certificates.crt": {0o644, 0, 0},
		"etc/passwd":                        {0o644, 0, 0},
		"etc/group":                         {0o644, 0, 0},
		"data/":                             {os.ModeDir | 0o700, uid, gid},
		"tmp/":                              {os.ModeDir | os.ModeSticky | 0o777, 0, 0},
		"sessiond":                          {0o755, 0, 0},
	}
	rc, err := layer.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	// The chroot's / must be searchable by the image's user.
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil { // whatever the umask
		t.Fatal(err)
	}
	tr := tar.NewReader(rc)
	seen := map[string]bool{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		w, ok := want[h.Name]
		mode := h.FileInfo().Mode()
		if !ok || mode != w.mode || h.Uid != w.uid || h.Gid != w.gid {
			t.Fatalf("layer entry %s %v %d:%d, want %v %d:%d", h.Name, mode, h.Uid, h.Gid, w.mode, w.uid, w.gid)
		}
		seen[h.Name] = true
		path := filepath.Join(dir, filepath.FromSlash(h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.Mkdir(path, 0o700)
		case tar.TypeReg:
			var f *os.File
			if f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
				_, err = io.Copy(f, tr)
				if cerr := f.Close(); err == nil {
					err = cerr
				}
			}
		}
		if err == nil && chown {
			err = os.Lchown(path, h.Uid, h.Gid)
		}
		if err == nil {
			err = os.Chmod(path, mode) // after chown, which clears setuid bits; the umask is not applied
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("the layer lacks %s", name)
		}
	}
	if got, err := os.ReadFile(filepath.Join(dir, "etc/passwd")); err != nil || !bytes.Contains(got, []byte(":65532:65532:")) {
		t.Errorf("/etc/passwd has no user 65532: %q %v", got, err)
	}
}

// jail runs programs of an unpacked image the way a container runtime
// does: chrooted into it, as the image's user, with the environment given
// and nothing else.
type jail struct {
	root string
	// userns: not root, so the image's user is ours mapped in a user
	// namespace (with a mount namespace of its own, where chroot is allowed).
	userns bool
	user   string // the image's UID:GID
}

func (j jail) command(env []string, args ...string) *exec.Cmd {
	u, g, _ := strings.Cut(j.user, ":")
	uid, err := strconv.ParseUint(u, 10, 32)
	gid, err2 := strconv.ParseUint(g, 10, 32)
	if err != nil || err2 != nil {
		panic("the image's User " + strconv.Quote(j.user) + " is not numeric UID:GID")
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = slices.Clone(env)
	if cmd.Env == nil {
		cmd.Env = []string{} // nil would mean the test's own environment
	}
	cmd.Dir = "/"
	attr := &syscall.SysProcAttr{
		Chroot:     j.root,
		Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: j.userns},
	}
	if j.userns {
		attr.Cloneflags = syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: int(uid), HostID: os.Geteuid(), Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: int(gid), HostID: os.Getegid(), Size: 1}}
	}
	cmd.SysProcAttr = attr
	return cmd
}

// setEnv returns env with key set to value, replacing what it had.
func setEnv(env []string, key, value string) []string {
	out := slices.DeleteFunc(slices.Clone(env), func(kv string) bool { return strings.HasPrefix(kv, key+"=") })
	return append(out, key+"="+value)
}

// waitReady waits up to 15 s for url to answer 200, failing early if the
// server exits.
func waitReady(t *testing.T, client *http.Client, url string, exited <-chan error) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	last := "no answer"
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			t.Fatalf("the server exited before it was ready: %v", err)
		default:
		}
		resp, err := client.Get(url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("GET %s: not 200 within 15 s: %s", url, last)
}

// syncBuffer is a bytes.Buffer a process can write while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
