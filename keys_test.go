package sessiond

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestSigningKeyPEMRoundTrip(t *testing.T) {
	k := newTestSigningKey(t)
	if k.ID != rfc7638(k.Key.Public().(ed25519.PublicKey)) {
		t.Errorf("ID %q is not the RFC 7638 thumbprint", k.ID)
	}
	pemBytes, err := k.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(pemBytes, []byte("-----BEGIN PRIVATE KEY-----\n")) {
		t.Errorf("MarshalPEM does not write a PKCS#8 block:\n%s", pemBytes)
	}
	back, err := ParseSigningKey(pemBytes)
	if err != nil {
		t.Fatalf("ParseSigningKey(MarshalPEM()): %v", err)
	}
	if back.ID != k.ID || !back.Key.Equal(k.Key) {
		t.Error("round trip changed the key")
	}
}

// requireOpenSSL returns the path of openssl or fails with how to get it.
func requireOpenSSL(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("openssl")
	if err != nil {
		t.Fatalf("openssl not found (%v); install it: apt-get install -y openssl", err)
	}
	return path
}

func TestParseSigningKeyFromOpenSSL(t *testing.T) {
	openssl := requireOpenSSL(t)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "signing.pem")
	if out, err := exec.Command(openssl, "genpkey", "-algorithm", "ed25519", "-out", keyFile).CombinedOutput(); err != nil {
		t.Fatalf("openssl genpkey: %v\n%s", err, out)
	}
	pemBytes, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ParseSigningKey(pemBytes)
	if err != nil {
		t.Fatalf("ParseSigningKey of an openssl key: %v", err)
	}

	// openssl's view of the public key must be ours.
	spki, err := exec.Command(openssl, "pkey", "-in", keyFile, "-pubout", "-outform", "DER").Output()
	if err != nil {
		t.Fatalf("openssl pkey -pubout: %v", err)
	}
	pub, err := x509.ParsePKIXPublicKey(spki)
	if err != nil {
		t.Fatal(err)
	}
	if !k.Key.Public().(ed25519.PublicKey).Equal(pub) {
		t.Error("public key differs from the one openssl derives")
	}
	if k.ID != rfc7638(pub.(ed25519.PublicKey)) {
		t.Errorf("kid %q is not the thumbprint of the openssl public key", k.ID)
	}
	// A key sessiond writes reads back in openssl.
	ours, err := newTestSigningKey(t).MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	ourFile := filepath.Join(dir, "ours.pem")
	if err := os.WriteFile(ourFile, ours, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(openssl, "pkey", "-in", ourFile, "-noout").CombinedOutput(); err != nil {
		t.Errorf("openssl cannot read MarshalPEM output: %v\n%s", err, out)
	}
}

func TestParseSigningKeyRefuses(t *testing.T) {
	pkcs8PEM := func(key any) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	good, err := newTestSigningKey(t).MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	goodBlock, _ := pem.Decode(good)
	pubDER, err := x509.MarshalPKIXPublicKey(newTestSigningKey(t).Key.Public())
	if err != nil {
		t.Fatal(err)
	}
	withHeader := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED"}, Bytes: goodBlock.Bytes})
	corrupt := bytes.Clone(goodBlock.Bytes)
	corrupt[0] ^= 0xff

	for _, tc := range []struct {
		name  string
		input []byte
		want  string // a word the error must contain
	}{
		{"empty", nil, "empty"},
		{"whitespace", []byte(" \n\t\n"), "empty"},
		{"garbage", []byte("not a key at all"), "PEM"},
		{"raw DER", goodBlock.Bytes, "PEM"},
		{"base64 without PEM armour", []byte(base64.StdEncoding.EncodeToString(goodBlock.Bytes)), "PEM"},
		{"RSA key", pkcs8PEM(rsaKey), "RSA"},
		{"ECDSA key", pkcs8PEM(ecKey), "ECDSA"},
		{"PKCS#1 RSA key", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)}), "RSA PRIVATE KEY"},
		{"public key", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), "PUBLIC KEY"},
		{"encrypted key", pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: goodBlock.Bytes}), "encrypted"},
		{"OpenSSH key", pem.EncodeToMemory(&pem.Block{Type: "OPENSSH PRIVATE KEY", Bytes: []byte("openssh-key-v1")}), "OpenSSH"},
		{"PEM headers", withHeader, "headers"},
		{"corrupt DER", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: corrupt}), "PKCS#8"},
		{"truncated PEM", good[:len(good)/2], "PEM"},
		{"two keys", append(bytes.Clone(good), good...), "more than one"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := ParseSigningKey(tc.input)
			if err == nil {
				t.Fatalf("accepted, kid %s", k.ID)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
			if b := pemBody(tc.input); len(b) >= 16 && strings.Contains(err.Error(), b[:16]) {
				t.Errorf("error %q quotes the key", err)
			}
		})
	}
	if _, err := ParseSigningKey(good); err != nil {
		t.Fatalf("the untouched key is refused: %v", err)
	}
	// Whitespace around one block is fine.
	if _, err := ParseSigningKey(append(append([]byte("\n\n"), good...), "\n\n"...)); err != nil {
		t.Errorf("surrounding whitespace: %v", err)
	}
}

// pemBody returns the first base64 line of a PEM input, or "".
func pemBody(b []byte) string {
	lines := strings.Split(string(b), "\n")
	if len(lines) > 1 {
		return lines[1]
	}
	return ""
}

func TestLoadOrCreateSigningKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "keys")
	path := filepath.Join(dir, "signing.pem")
	k1, err := LoadOrCreateSigningKey(path)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	checkKeyFile(t, path)
	before, _ := os.ReadFile(path)
	k2, err := LoadOrCreateSigningKey(path)
	if err != nil {
		t.Fatalf("reload: %v", err)
	}
	if k1.ID != k2.ID || !k1.Key.Equal(k2.Key) {
		t.Error("reload returned another key")
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Error("reload rewrote the file")
	}
	if fromFile, err := ParseSigningKey(after); err != nil || fromFile.ID != k1.ID {
		t.Errorf("file holds another key or cannot be parsed: %v", err)
	}
}

func TestLoadOrCreateKeepsACorruptFile(t *testing.T) {
	for _, tc := range []struct {
		name string
		load func(string) error
	}{
		{"signing key", func(p string) error { _, err := LoadOrCreateSigningKey(p); return err }},
		{"refresh key", func(p string) error { _, err := LoadOrCreateRefreshKey(p); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "key")
			if err := os.WriteFile(path, []byte("corrupt"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := tc.load(path); err == nil {
				t.Fatal("a corrupt key file was accepted")
			} else if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file", err)
			}
			if b, _ := os.ReadFile(path); string(b) != "corrupt" {
				t.Error("a corrupt key file was overwritten")
			}
		})
	}
}

func TestLoadOrCreateConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new", "signing.pem")
	const n = 16
	ids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := LoadOrCreateSigningKey(path)
			if err == nil {
				ids[i] = k.ID
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if ids[i] != ids[0] {
			t.Fatalf("concurrent creators got different keys: %s and %s", ids[0], ids[i])
		}
	}
	k, err := LoadOrCreateSigningKey(path)
	if err != nil || k.ID != ids[0] {
		t.Errorf("the file holds another key than the creators got: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %v, want only the key (temporary files removed)", names)
	}
}

// checkKeyFile checks the modes of a created key file and its directory.
func checkKeyFile(t *testing.T, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if m := fi.Mode().Perm(); m != 0o600 {
		t.Errorf("key file mode %o, want 600", m)
	}
	di, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if m := di.Mode().Perm(); m != 0o700 {
		t.Errorf("key directory mode %o, want 700", m)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("key directory holds %d entries, want 1 (no temporary file left)", len(entries))
	}
}

func TestRefreshKeyParse(t *testing.T) {
	k := mustRefreshKey(t)
	if len(k.Secret) != 32 || len(k.ID) != 8 || k.ID != refreshKeyID(k.Secret) {
		t.Fatalf("GenerateRefreshKey: %d-byte secret, id %q", len(k.Secret), k.ID)
	}
	for _, enc := range []struct {
		name string
		text string
	}{
		{"standard padded", base64.StdEncoding.EncodeToString(k.Secret)},
		{"standard unpadded", base64.RawStdEncoding.EncodeToString(k.Secret)},
		{"URL padded", base64.URLEncoding.EncodeToString(k.Secret)},
		{"URL unpadded", base64.RawURLEncoding.EncodeToString(k.Secret)},
		{"surrounding whitespace", "  \n" + base64.StdEncoding.EncodeToString(k.Secret) + "\r\n\n"},
	} {
		got, err := ParseRefreshKey([]byte(enc.text))
		if err != nil {
			t.Errorf("%s: %v", enc.name, err)
			continue
		}
		if !bytes.Equal(got.Secret, k.Secret) || got.ID != k.ID {
			t.Errorf("%s: parsed another key", enc.name)
		}
	}

	secret := base64.StdEncoding.EncodeToString(k.Secret)
	for _, tc := range []struct {
		name, text, want string
	}{
		{"empty", "", "empty"},
		{"whitespace", " \n", "empty"},
		{"not base64", "this is not base64 at all!", "base64"},
		{"31 bytes", base64.StdEncoding.EncodeToString(k.Secret[:31]), "31 bytes"},
		{"33 bytes", base64.StdEncoding.EncodeToString(append(bytes.Clone(k.Secret), 1)), "33 bytes"},
		{"hex", strings.Repeat("ab", 32), "48 bytes"},
		{"all zero", base64.StdEncoding.EncodeToString(make([]byte, 32)), "zero"},
		{"two keys", secret + "\n" + secret, "base64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseRefreshKey([]byte(tc.text))
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
			if strings.Contains(err.Error(), secret[:12]) {
				t.Errorf("error %q quotes the secret", err)
			}
		})
	}
}

func TestRefreshKeyID(t *testing.T) {
	a, b := mustRefreshKey(t), mustRefreshKey(t)
	if a.ID == b.ID {
		t.Error("two random keys share an id")
	}
	if refreshKeyID(a.Secret) != refreshKeyID(bytes.Clone(a.Secret)) {
		t.Error("refreshKeyID is not deterministic")
	}
	if strings.Contains(base64.RawURLEncoding.EncodeToString(a.Secret), a.ID) {
		t.Error("the id is a piece of the secret")
	}
}

func TestLoadOrCreateRefreshKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "refresh.key")
	k1, err := LoadOrCreateRefreshKey(path)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	checkKeyFile(t, path)
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := base64.StdEncoding.EncodeToString(k1.Secret) + "\n"; string(content) != want {
		t.Errorf("file holds %d bytes not in the form base64 + newline", len(content))
	}
	k2, err := LoadOrCreateRefreshKey(path)
	if err != nil {
		t.Fatalf("reload: %v", err)
	}
	if !bytes.Equal(k1.Secret, k2.Secret) || k1.ID != k2.ID {
		t.Error("reload returned another key")
	}
}

func TestLoadOrCreateUnreadable(t *testing.T) {
	// A path whose parent is a file cannot be created.
	parent := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(parent, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateSigningKey(filepath.Join(parent, "signing.pem")); err == nil {
		t.Error("signing key under a file: no error")
	}
	if _, err := LoadOrCreateRefreshKey(filepath.Join(parent, "refresh.key")); err == nil {
		t.Error("refresh key under a file: no error")
	}
}
