// Command ociimage builds the sessiond container image without a Docker
// daemon and without pulling anything: the same files and settings as the
// Dockerfile at the module root, on an empty base, written as a tarball
// that `docker load` and `podman load` accept and, optionally, as an OCI
// image layout directory.
//
// Run it from the module root (scripts/image.sh does):
//
//	go run ./internal/ociimage [-o sessiond-image.tar] [-layout DIR] [-tag NAME:TAG]
//	                           [-binary PATH | -arch GOARCH] [-ca-certs PATH]
//
// Without -binary it builds ./cmd/sessiond as the Dockerfile does: static
// (CGO_ENABLED=0), -trimpath, -ldflags '-s -w', the version and commit
// from the build information Go records. The image's labels and creation
// time come from that build information; SOURCE_DATE_EPOCH, when set,
// gives the time instead.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return // help asked for and printed
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ociimage:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ociimage", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "sessiond-image.tar", "write the image here as a tarball for docker load or podman load (\"\" for none)")
	layoutDir := fs.String("layout", "", "also write the image as an OCI image layout in this directory")
	tag := fs.String("tag", "", "the image's name in the tarball and layout (default sessiond:VERSION)")
	binary := fs.String("binary", "", "put this static Linux sessiond in the image instead of building one")
	arch := fs.String("arch", runtime.GOARCH, "GOARCH to build for (without -binary)")
	caCerts := fs.String("ca-certs", "/etc/ssl/certs/ca-certificates.crt", "CA certificate bundle to put at /etc/ssl/certs/ca-certificates.crt")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("no arguments expected, got %q", fs.Args())
	}
	if *out == "" && *layoutDir == "" {
		return errors.New("nothing to write: give -o or -layout")
	}
	if *binary == "" {
		tmp, err := os.MkdirTemp("", "sessiond-image-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		*binary = filepath.Join(tmp, "sessiond")
		root, err := moduleRoot(ctx)
		if err != nil {
			return err
		}
		if err := buildBinary(ctx, root, *arch, *binary, stderr); err != nil {
			return err
		}
	}
	info, err := readBinary(*binary)
	if err != nil {
		return err
	}
	created, err := creationTime(getenv("SOURCE_DATE_EPOCH"), info)
	if err != nil {
		return err
	}
	img, err := buildImage(imageOptions{Binary: *binary, CACerts: *caCerts}, info, created)
	if err != nil {
		return err
	}
	if *tag == "" {
		*tag = defaultTag(info.Version)
	}
	ref, err := name.NewTag(*tag)
	if err != nil {
		return fmt.Errorf("-tag: %w", err)
	}
	if *out != "" {
		if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
			return err
		}
		if err := tarball.WriteToFile(*out, ref, img); err != nil {
			return err
		}
	}
	if *layoutDir != "" {
		if err := writeLayout(*layoutDir, ref, img); err != nil {
			return err
		}
	}
	return summarize(stdout, img, ref, info, *out, *layoutDir)
}

// moduleRoot is the directory of the main module's go.mod.
func moduleRoot(ctx context.Context) (string, error) {
	b, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(b))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("run this from inside the sessiond module")
	}
	return filepath.Dir(gomod), nil
}

// buildBinary builds ./cmd/sessiond of the module at root into out the way
// the Dockerfile does. -buildvcs=auto undoes a GOFLAGS=-buildvcs=false, so
// the binary knows its version and commit when built from a git clone (Go
// finds none in a git worktree, whose .git is a file).
func buildBinary(ctx context.Context, root, arch, out string, stderr io.Writer) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-buildvcs=auto", "-trimpath", "-ldflags=-s -w", "-o", out, "./cmd/sessiond")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	cmd.Stdout = stderr
	cmd.Stderr = stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build ./cmd/sessiond: %w", err)
	}
	return nil
}

// creationTime is SOURCE_DATE_EPOCH when set (the reproducible-builds
// convention), else the commit's time, else the Unix epoch: never the
// clock, so building the same commit twice gives the same image.
func creationTime(sourceDateEpoch string, info binaryInfo) (time.Time, error) {
	if sourceDateEpoch != "" {
		n, err := strconv.ParseInt(sourceDateEpoch, 10, 64)
		if err != nil || n < 0 {
			return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH: %q is not a number of seconds", sourceDateEpoch)
		}
		return time.Unix(n, 0).UTC(), nil
	}
	if !info.Time.IsZero() {
		return info.Time, nil
	}
	return time.Unix(0, 0).UTC(), nil
}

// notInTag is what a tag may not hold: a module version such as
// v1.2.3+dirty becomes sessiond:v1.2.3-dirty.
var notInTag = regexp.MustCompile(`[^A-Za-z0-9_.-]`)

func defaultTag(version string) string {
	if version == "unknown" {
		return "sessiond:dev"
	}
	t := notInTag.ReplaceAllString(version, "-")
	if len(t) > 128 {
		t = t[:128]
	}
	return "sessiond:" + strings.TrimLeft(t, ".-")
}

// writeLayout writes img as the only image of an OCI image layout at dir,
// named by the tag in org.opencontainers.image.ref.name.
func writeLayout(dir string, ref name.Tag, img v1.Image) error {
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	return p.AppendImage(img, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": ref.TagStr(),
	}))
}

// summarize says what was written and how big the image is.
func summarize(w io.Writer, img v1.Image, ref name.Tag, info binaryInfo, out, layoutDir string) error {
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	size, err := layerSize(img)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "image %s (%s, version %s, commit %s)\n", ref.String(), digest, info.Version, info.Revision)
	fmt.Fprintf(w, "one layer, %.1f MiB compressed\n", float64(size)/(1<<20))
	if out != "" {
		fmt.Fprintf(w, "wrote %s: docker load -i %s (or podman load -i %s)\n", out, out, out)
	}
	if layoutDir != "" {
		fmt.Fprintf(w, "wrote the OCI image layout %s\n", layoutDir)
	}
	return nil
}

// layerSize is the compressed size of img's layers: what a registry stores
// and a pull downloads.
func layerSize(img v1.Image) (int64, error) {
	layers, err := img.Layers()
	if err != nil {
		return 0, err
	}
	var n int64
	for _, l := range layers {
		s, err := l.Size()
		if err != nil {
			return 0, err
		}
		n += s
	}
	return n, nil
}
