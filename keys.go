package sessiond

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/go-jose/go-jose/v4"

	"github.com/sessiond/sessiond/internal/secretfile"
)

// SigningKey is the Ed25519 key that signs access tokens.
type SigningKey struct {
	// ID is the RFC 7638 JWK thumbprint (SHA-256, base64url without
	// padding) of the public key. It is the kid of the tokens the key signs.
	ID  string
	Key ed25519.PrivateKey
}

// GenerateSigningKey returns a new random signing key.
func GenerateSigningKey() (*SigningKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("signing key: generate: %w", err)
	}
	return newSigningKey(priv)
}

func newSigningKey(priv ed25519.PrivateKey) (*SigningKey, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, errors.New("signing key: wrong Ed25519 private key length")
	}
	id, err := signingKeyID(priv.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, err
	}
	return &SigningKey{ID: id, Key: priv}, nil
}

// signingKeyID returns the RFC 7638 JWK thumbprint (SHA-256, base64url
// without padding) of an Ed25519 public key: the kid sessiond gives it.
func signingKeyID(pub ed25519.PublicKey) (string, error) {
	if len(pub) != ed25519.PublicKeySize {
		return "", errors.New("signing key: wrong Ed25519 public key length")
	}
	jwk := jose.JSONWebKey{Key: pub}
	sum, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("signing key: thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}

// ParseSigningKey reads an Ed25519 private key in PKCS#8 PEM ("PRIVATE KEY"),
// as `openssl genpkey -algorithm ed25519` writes it. Errors name the problem
// and never include key material.
func ParseSigningKey(pemBytes []byte) (*SigningKey, error) {
	if len(bytes.TrimSpace(pemBytes)) == 0 {
		return nil, errors.New("signing key: empty input, want an Ed25519 private key in PKCS#8 PEM")
	}
	block, rest := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("signing key: no PEM block found, want an Ed25519 private key in PKCS#8 PEM (openssl genpkey -algorithm ed25519)")
	}
	if next, _ := pem.Decode(rest); next != nil {
		return nil, errors.New("signing key: more than one PEM block, want exactly one")
	}
	switch block.Type {
	case "PRIVATE KEY":
	case "ENCRYPTED PRIVATE KEY":
		return nil, errors.New("signing key: encrypted PKCS#8 keys are not supported, store the key unencrypted with mode 0600")
	case "OPENSSH PRIVATE KEY":
		return nil, errors.New("signing key: OpenSSH key format is not supported, want PKCS#8 PEM (openssl genpkey -algorithm ed25519)")
	default:
		return nil, fmt.Errorf("signing key: PEM block type is %q, want \"PRIVATE KEY\" (PKCS#8)", block.Type)
	}
	if len(block.Headers) != 0 {
		return nil, errors.New("signing key: PEM block has headers, want a plain PKCS#8 block")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		// The x509 message names the ASN.1 problem, not the key's bytes.
		return nil, fmt.Errorf("signing key: not a valid PKCS#8 private key: %w", err)
	}
	priv, ok := key.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("signing key: got a %s key, want Ed25519", keyKind(key))
	}
	return newSigningKey(priv)
}

func keyKind(key any) string {
	switch key.(type) {
	case *rsa.PrivateKey:
		return "RSA"
	case *ecdsa.PrivateKey:
		return "ECDSA"
	case *ecdh.PrivateKey:
		return "X25519"
	}
	return fmt.Sprintf("%T", key)
}

// MarshalPEM returns the key in PKCS#8 PEM, the format ParseSigningKey reads.
func (k *SigningKey) MarshalPEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k.Key)
	if err != nil {
		return nil, fmt.Errorf("signing key: marshal: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// LoadOrCreateSigningKey reads the signing key at path, or, when the file
// does not exist, generates one and writes it there (mode 0600, parent
// directories created with mode 0700). The write is atomic and never
// replaces an existing file: when two processes create the key at once,
// both end up with the one that reached the disk first.
func LoadOrCreateSigningKey(path string) (*SigningKey, error) {
	return loadOrCreate(path, "signing key", ParseSigningKey, func() ([]byte, *SigningKey, error) {
		k, err := GenerateSigningKey()
		if err != nil {
			return nil, nil, err
		}
		data, err := k.MarshalPEM()
		return data, k, err
	})
}

// loadOrCreate reads and parses path, or creates it with what generate
// returns when it does not exist.
func loadOrCreate[K any](path, what string, parse func([]byte) (K, error), generate func() ([]byte, K, error)) (K, error) {
	var zero K
	load := func() (K, error) {
		data, err := os.ReadFile(path)
		if err != nil {
			return zero, fmt.Errorf("%s: %w", what, err)
		}
		k, err := parse(data)
		if err != nil {
			return zero, fmt.Errorf("%s: %w", path, err)
		}
		return k, nil
	}
	k, err := load()
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	data, k, err := generate()
	if err != nil {
		return zero, err
	}
	won, err := secretfile.Create(path, data)
	if err != nil {
		return zero, fmt.Errorf("%s: create %s: %w", what, path, err)
	}
	if !won {
		// Another process created the file first; use its key.
		return load()
	}
	return k, nil
}

// RefreshKey is the secret under which refresh tokens are authenticated.
type RefreshKey struct {
	// ID is derived from Secret (see refreshKeyID) and travels in every
	// refresh token, so a retired key can still be found.
	ID string
	// Secret is 32 random bytes.
	Secret []byte
}

// refreshKeySize is the length of a refresh key's secret in bytes.
const refreshKeySize = 32

// refreshKeyID returns the id of a refresh key secret: the first 8
// base64url characters (48 bits) of SHA-256 over a domain-separation prefix
// and the secret. It identifies the key without revealing anything usable.
func refreshKeyID(secret []byte) string {
	h := sha256.New()
	h.Write([]byte("sessiond refresh key id v1\x00"))
	h.Write(secret)
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))[:refreshKeyIDLen]
}

const refreshKeyIDLen = 8

// GenerateRefreshKey returns a new random refresh key.
func GenerateRefreshKey() (*RefreshKey, error) {
	secret := make([]byte, refreshKeySize)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("refresh key: generate: %w", err)
	}
	return &RefreshKey{ID: refreshKeyID(secret), Secret: secret}, nil
}

// ParseRefreshKey reads a refresh key: base64 (standard or URL alphabet,
// padded or not, surrounding whitespace ignored) of exactly 32 bytes.
func ParseRefreshKey(data []byte) (*RefreshKey, error) {
	s := string(bytes.TrimSpace(data))
	if s == "" {
		return nil, errors.New("refresh key: empty input, want base64 of 32 random bytes")
	}
	var secret []byte
	for _, enc := range []*base64.Encoding{
		base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding,
	} {
		if b, err := enc.DecodeString(s); err == nil {
			secret = b
			break
		}
	}
	if secret == nil {
		return nil, errors.New("refresh key: not valid base64, want base64 of 32 random bytes")
	}
	if len(secret) != refreshKeySize {
		return nil, fmt.Errorf("refresh key: decodes to %d bytes, want %d", len(secret), refreshKeySize)
	}
	if bytes.Equal(secret, make([]byte, refreshKeySize)) {
		return nil, errors.New("refresh key: all bytes are zero, want 32 random bytes")
	}
	return &RefreshKey{ID: refreshKeyID(secret), Secret: secret}, nil
}

// marshal returns the file form of the key: base64 and a newline.
func (k *RefreshKey) marshal() []byte {
	return []byte(base64.StdEncoding.EncodeToString(k.Secret) + "\n")
}

// LoadOrCreateRefreshKey reads the refresh key at path, or generates and
// writes one when the file does not exist, with the same rules as
// LoadOrCreateSigningKey. The file holds the key in base64 and a newline.
func LoadOrCreateRefreshKey(path string) (*RefreshKey, error) {
	return loadOrCreate(path, "refresh key", ParseRefreshKey, func() ([]byte, *RefreshKey, error) {
		k, err := GenerateRefreshKey()
		if err != nil {
			return nil, nil, err
		}
		return k.marshal(), k, nil
	})
}
