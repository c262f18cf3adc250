package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"debug/buildinfo"
	"debug/elf"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The user the server runs as: no name in the host's /etc/passwd, so a
// file it creates on a mounted volume belongs to nobody there by accident.
const uid, gid = 65532, 65532

// The image's /etc/passwd and /etc/group: the Dockerfile copies the same
// files, so both images agree byte for byte.
var (
	//go:embed etc/passwd
	passwd []byte
	//go:embed etc/group
	group []byte
)

// sourceURL is the org.opencontainers.image.source label.
const sourceURL = "https://github.com/sessiond/sessiond"

// imageEnv is the image's environment. docker build gives an image on
// scratch the default PATH; this image has it too, so both are the same.
// The admin listener binds every interface inside the container: publish
// it only on a private network (docs/deploy.md).
var imageEnv = []string{
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"SESSIOND_ADDR=:8080",
	"SESSIOND_DATA_DIR=/data",
	"SESSIOND_ADMIN_ADDR=:8081",
}

// healthcheck is the HEALTHCHECK of the Dockerfile: `sessiond healthcheck`
// gives up after 2 s, well inside the timeout.
var healthcheck = v1.HealthConfig{
	Test:        []string{"CMD", "/sessiond", "healthcheck"},
	Interval:    30 * time.Second,
	Timeout:     5 * time.Second,
	StartPeriod: 5 * time.Second,
	Retries:     3,
}

// imageConfig is what the image runs and how, as the Dockerfile's final
// stage says it.
func imageConfig(version, revision string) v1.Config {
	hc := healthcheck
	return v1.Config{
		Entrypoint:   []string{"/sessiond"},
		Env:          append([]string(nil), imageEnv...),
		User:         strconv.Itoa(uid) + ":" + strconv.Itoa(gid),
		WorkingDir:   "/", // what docker build sets on scratch, like PATH
		ExposedPorts: map[string]struct{}{"8080/tcp": {}, "8081/tcp": {}},
		Healthcheck:  &hc,
		Labels: map[string]string{
			"org.opencontainers.image.source":   sourceURL,
			"org.opencontainers.image.version":  version,
			"org.opencontainers.image.revision": revision,
		},
	}
}

// imageOptions is what goes into an image.
type imageOptions struct {
	Binary  string // a statically linked sessiond for Linux
	CACerts string // a PEM bundle of CA certificates
}

// binaryInfo is what a sessiond binary says of itself.
type binaryInfo struct {
	Arch     string    // GOARCH
	Version  string    // the module version, "unknown" when Go recorded none
	Revision string    // the commit, "unknown" when Go recorded none
	Time     time.Time // the commit's time, zero when unknown
}

// readBinary checks that path is a sessiond an empty base can run (Linux,
// no dynamic loader) and reads its build information.
func readBinary(path string) (binaryInfo, error) {
	f, err := elf.Open(path)
	if err != nil {
		return binaryInfo{}, fmt.Errorf("%s: not a Linux executable: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return binaryInfo{}, fmt.Errorf("%s is dynamically linked; an image on an empty base has no libc: build it with CGO_ENABLED=0", path)
		}
	}
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return binaryInfo{}, fmt.Errorf("%s: %w", path, err)
	}
	info := binaryInfo{Version: bi.Main.Version, Revision: "unknown"}
	if info.Version == "" || info.Version == "(devel)" {
		info.Version = "unknown"
	}
	goos := ""
	for _, s := range bi.Settings {
		switch s.Key {
		case "GOOS":
			goos = s.Value
		case "GOARCH":
			info.Arch = s.Value
		case "vcs.revision":
			info.Revision = s.Value
		case "vcs.time":
			info.Time, _ = time.Parse(time.RFC3339Nano, s.Value)
		}
	}
	if goos != "linux" || info.Arch == "" {
		return binaryInfo{}, fmt.Errorf("%s was built for GOOS=%q GOARCH=%q, not Linux", path, goos, info.Arch)
	}
	return info, nil
}

// buildImage makes the image from an empty base: one layer holding the
// files below, and a config saying how to run them. created stamps every
// file and the image, so the same inputs give the same digest.
//
//	/sessiond                          0755 root
//	/etc/ssl/certs/ca-certificates.crt 0644 root
//	/etc/passwd, /etc/group            0644 root
//	/data                              0700 65532:65532
//	/tmp                               1777 root
func buildImage(o imageOptions, info binaryInfo, created time.Time) (v1.Image, error) {
	bin, err := os.ReadFile(o.Binary)
	if err != nil {
		return nil, err
	}
	certs, err := os.ReadFile(o.CACerts)
	if err != nil {
		return nil, fmt.Errorf("CA certificates: %w (on Debian: apt-get install ca-certificates)", err)
	}
	if !bytes.Contains(certs, []byte("-----BEGIN CERTIFICATE-----")) {
		return nil, fmt.Errorf("%s holds no PEM certificate", o.CACerts)
	}
	created = created.UTC().Truncate(time.Second)
	layerTar, err := rootfs(created, []entry{
		{name: "etc/", mode: 0o755},
		{name: "etc/ssl/", mode: 0o755},
		{name: "etc/ssl/certs/", mode: 0o755},
		{name: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, data: certs},
		{name: "etc/passwd", mode: 0o644, data: passwd},
		{name: "etc/group", mode: 0o644, data: group},
		{name: "data/", mode: 0o700, uid: uid, gid: gid},
		{name: "tmp/", mode: 0o1777},
		{name: "sessiond", mode: 0o755, data: bin},
	})
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer), tarball.WithCompressionLevel(gzip.BestCompression), tarball.WithCompressedCaching)
	if err != nil {
		return nil, err
	}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History: v1.History{
			Created:   v1.Time{Time: created},
			CreatedBy: "internal/ociimage: sessiond, CA certificates, passwd and group, /data, /tmp",
		},
	})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS = "linux"
	cf.Architecture = info.Arch
	cf.Created = v1.Time{Time: created}
	cf.Config = imageConfig(info.Version, info.Revision)
	return mutate.ConfigFile(img, cf)
}

// entry is one file or directory (a name ending in /) of the layer.
type entry struct {
	name     string
	mode     int64 // permission, setuid, setgid and sticky bits, as tar keeps them
	uid, gid int
	data     []byte
}

// rootfs writes entries as an uncompressed tar, in order.
func rootfs(mtime time.Time, entries []entry) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{
			Name:    e.name,
			Mode:    e.mode,
			Uid:     e.uid,
			Gid:     e.gid,
			ModTime: mtime,
			Format:  tar.FormatPAX,
		}
		if strings.HasSuffix(e.name, "/") {
			if e.data != nil {
				return nil, errors.New("rootfs: directory " + e.name + " with contents")
			}
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
