package sessiond_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
)

// The test vectors of the imported hash formats are made at test time by
// the tools that make them in the wild: Django's own make_password (Debian
// python3-django, with python3-argon2 and python3-bcrypt for its argon2
// and bcrypt_sha256 hashers), htpasswd -B (Debian apache2-utils) and the
// argon2 command (Debian argon2). scripts/test.sh installs them.

// toolPasswords are the passwords the vectors are made of: ASCII, and
// UTF-8 beyond it (each tool hashes the UTF-8 bytes). The first is hashed
// at each tool's default cost (bcrypt at 10), the others cheaply.
var toolPasswords = []string{"correct horse battery", "pässwörd ✓ 日本語 12345"}

// vector is a hash made by a tool, and the password it was made of.
type vector struct {
	name, hash, password string
}

var (
	toolOnce sync.Once
	toolVecs []vector
	toolErr  error
)

// toolVectors returns hashes of toolPasswords in every imported format,
// made once per test binary; it fails the test when a tool is missing.
func toolVectors(t *testing.T) []vector {
	t.Helper()
	toolOnce.Do(func() { toolVecs, toolErr = makeToolVectors() })
	if toolErr != nil {
		t.Fatal(toolErr)
	}
	return toolVecs
}

func makeToolVectors() ([]vector, error) {
	var vs []vector
	dj, err := djangoHashes(toolPasswords)
	if err != nil {
		return nil, err
	}
	for i, pw := range toolPasswords {
		for _, name := range []string{"pbkdf2_sha256", "argon2", "bcrypt_sha256"} {
			vs = append(vs, vector{"django " + name, dj[i][name], pw})
		}
		h, err := htpasswdHash(pw, 4+6*boolInt(i == 0))
		if err != nil {
			return nil, err
		}
		vs = append(vs, vector{"htpasswd -B", h, pw})
		// The argon2 command's own default variant is argon2i: -id asks
		// for argon2id. -l 16 is the hash length of argon2-cffi's, 32
		// sessiond's own.
		for _, args := range [][]string{{"-t", "2", "-k", "4096", "-p", "2"}, {"-t", "1", "-k", "8192", "-p", "1", "-l", "16"}} {
			h, err := argon2Hash(pw, "somesaltsomesalt", args...)
			if err != nil {
				return nil, err
			}
			vs = append(vs, vector{"argon2 " + strings.Join(args, " "), h, pw})
		}
	}
	return vs, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// toolMissing says how to install a missing tool.
func toolMissing(tool, pkg string, err error) error {
	return fmt.Errorf("%s: %v; install Debian's %s (apt-get install %s), or run scripts/test.sh, which does", tool, err, pkg, pkg)
}

// djangoScript hashes the passwords of the JSON list on standard input
// with Django's make_password, with each of the three imported hashers:
// the first password at Django's default costs, the others at low ones
// (Django's own hashers with their cost attributes lowered), so that the
// tests verify many vectors quickly and a few at the real price.
const djangoScript = `
import json, sys
from django.conf import settings
settings.configure(PASSWORD_HASHERS=[
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
])
from django.contrib.auth import hashers
from django.contrib.auth.hashers import make_password

class CheapPBKDF2(hashers.PBKDF2PasswordHasher):
    iterations = 1000

class CheapArgon2(hashers.Argon2PasswordHasher):
    time_cost, memory_cost, parallelism = 1, 1024, 2

class CheapBCryptSHA256(hashers.BCryptSHA256PasswordHasher):
    rounds = 4

default = ["pbkdf2_sha256", "argon2", "bcrypt_sha256"]
cheap = [CheapPBKDF2(), CheapArgon2(), CheapBCryptSHA256()]
out = []
for i, pw in enumerate(json.load(sys.stdin)):
    out.append({name: make_password(pw, hasher=default[j] if i == 0 else cheap[j])
                for j, name in enumerate(default)})
print(json.dumps(out))
`

// djangoHashes runs djangoScript under Debian's python3 (/usr/bin/python3
// first: another python3 on PATH may lack the Debian packages).
func djangoHashes(pws []string) ([]map[string]string, error) {
	in, _ := json.Marshal(pws)
	var lastErr error
	for _, py := range []string{"/usr/bin/python3", "python3"} {
		out, err := run(in, py, "-c", djangoScript)
		if err != nil {
			lastErr = err
			continue
		}
		var hs []map[string]string
		if err := json.Unmarshal(out, &hs); err != nil || len(hs) != len(pws) {
			return nil, fmt.Errorf("django make_password: unexpected output %q", out)
		}
		return hs, nil
	}
	return nil, toolMissing("python3 with django, argon2 and bcrypt", "python3-django python3-argon2 python3-bcrypt", lastErr)
}

// htpasswdHash returns htpasswd's bcrypt hash of pw at cost.
func htpasswdHash(pw string, cost int) (string, error) {
	out, err := run([]byte(pw+"\n"), "htpasswd", "-niB", "-C", fmt.Sprint(cost), "user")
	if err != nil {
		return "", toolMissing("htpasswd", "apache2-utils", err)
	}
	_, h, ok := strings.Cut(strings.TrimSpace(string(out)), ":")
	if !ok {
		return "", fmt.Errorf("htpasswd: unexpected output %q", out)
	}
	return h, nil
}

// argon2Hash returns the argon2 command's argon2id PHC string of pw.
func argon2Hash(pw, salt string, args ...string) (string, error) {
	out, err := run([]byte(pw), "argon2", append([]string{salt, "-id", "-e"}, args...)...)
	if err != nil {
		return "", toolMissing("argon2", "argon2", err)
	}
	return strings.TrimSpace(string(out)), nil
}

func run(stdin []byte, name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %s", name, err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out, nil
}
