package sessiond

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"hash"
	"strconv"
	"strings"
	"sync"
)

// maxRefreshTokenSize is the longest refresh token Parse looks at, in
// bytes; longer ones are refused before any work.
const maxRefreshTokenSize = 1 << 10

// refreshPrefix starts every refresh token; it names the format version.
const refreshPrefix = "sdr1."

// refreshMACDomain separates refresh token MACs from any other use of the
// refresh key.
const refreshMACDomain = "sessiond refresh token v1\x00"

// RefreshClaims are what a refresh token says: which session of which user,
// at which refresh generation.
type RefreshClaims struct {
	UserID     string
	SessionID  string
	Generation uint64
}

// RefreshTokens mints and parses refresh tokens. A refresh token is opaque
// to clients and never a JWT:
//
//	sdr1.<key id>.<base64url(user id)>.<session id>.<generation>.<base64url(MAC)>
//
// where the MAC is HMAC-SHA256 under the refresh key over a domain prefix
// and the length-prefixed user id, session id and generation (big-endian
// uint64). Base64url is unpadded, the generation is decimal without
// leading zeros, so each token has exactly one spelling. The token's
// secret part is derived from the key: the store keeps only the generation
// and nothing at rest can rebuild a token. It is safe for concurrent use.
type RefreshTokens struct {
	current *refreshMAC
	keys    map[string]*refreshMAC
}

// refreshMAC computes token MACs under one key, reusing HMAC states.
type refreshMAC struct {
	id   string
	pool sync.Pool // of hash.Hash
}

func newRefreshMAC(k *RefreshKey) *refreshMAC {
	if k == nil || len(k.Secret) != refreshKeySize {
		panic("sessiond: NewRefreshTokens: missing refresh key or secret is not 32 bytes")
	}
	id := refreshKeyID(k.Secret)
	if k.ID != "" && k.ID != id {
		panic("sessiond: NewRefreshTokens: refresh key ID does not match its secret")
	}
	secret := bytes.Clone(k.Secret)
	m := &refreshMAC{id: id}
	m.pool.New = func() any { return hmac.New(sha256.New, secret) }
	return m
}

// sum appends the MAC of c under domain to dst.
func (m *refreshMAC) sum(dst []byte, domain string, c *RefreshClaims) []byte {
	h := m.pool.Get().(hash.Hash)
	h.Reset()
	var buf [128]byte
	b := append(buf[:0], domain...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(c.UserID)))
	b = append(b, c.UserID...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(c.SessionID)))
	b = append(b, c.SessionID...)
	b = binary.BigEndian.AppendUint64(b, c.Generation)
	h.Write(b)
	dst = h.Sum(dst)
	m.pool.Put(h)
	return dst
}

// NewRefreshTokens returns a RefreshTokens that mints with current and
// parses tokens of current and of every retired key, each found by the key
// id in the token. It panics when a key is malformed (a configuration
// error caught at start).
func NewRefreshTokens(current *RefreshKey, retired ...*RefreshKey) *RefreshTokens {
	cur := newRefreshMAC(current)
	r := &RefreshTokens{current: cur, keys: map[string]*refreshMAC{cur.id: cur}}
	secrets := map[string][]byte{cur.id: current.Secret}
	for _, k := range retired {
		m := newRefreshMAC(k)
		if s, dup := secrets[m.id]; dup {
			if !bytes.Equal(s, k.Secret) {
				// 48-bit ids of random keys do not collide in practice.
				panic("sessiond: NewRefreshTokens: two different refresh keys share a key id")
			}
			continue
		}
		secrets[m.id] = k.Secret
		r.keys[m.id] = m
	}
	return r
}

// Mint returns the refresh token of c under the current key. c must be
// valid: a non-empty UserID, a SessionID of base64url characters, and a
// Generation of at least 1; Mint panics otherwise, since those come from
// the Manager, never from a client.
func (r *RefreshTokens) Mint(c RefreshClaims) string {
	if c.UserID == "" || c.Generation == 0 || !isRefreshSessionID(c.SessionID) {
		panic("sessiond: RefreshTokens.Mint: empty user id, malformed session id or generation 0")
	}
	t := r.current.mint(refreshPrefix, refreshMACDomain, &c)
	if len(t) > maxRefreshTokenSize {
		panic("sessiond: RefreshTokens.Mint: token would exceed 1 KiB (user or session id too long)")
	}
	return t
}

func (m *refreshMAC) mint(prefix, domain string, c *RefreshClaims) string {
	var mac [sha256.Size]byte
	sum := m.sum(mac[:0], domain, c)
	enc := base64.RawURLEncoding
	b := make([]byte, 0, len(prefix)+len(m.id)+enc.EncodedLen(len(c.UserID))+len(c.SessionID)+20+enc.EncodedLen(len(sum))+5)
	b = append(b, prefix...)
	b = append(b, m.id...)
	b = append(b, '.')
	b = enc.AppendEncode(b, []byte(c.UserID))
	b = append(b, '.')
	b = append(b, c.SessionID...)
	b = append(b, '.')
	b = strconv.AppendUint(b, c.Generation, 10)
	b = append(b, '.')
	b = enc.AppendEncode(b, sum)
	return string(b)
}

// isRefreshSessionID reports whether id is non-empty base64url, the
// alphabet session ids are drawn from and that keeps the token unambiguous.
func isRefreshSessionID(id string) bool {
	if id == "" {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c == '.' || !jwsAlphabet[c] {
			return false
		}
	}
	return true
}

// refreshError is a refused refresh token; the reason is fixed text.
func refreshError(reason string) error {
	return &tokenError{reason: "refresh token: " + reason}
}

var (
	errRefreshTooLarge  = refreshError("over 1 KiB")
	errRefreshMalformed = refreshError("malformed")
	errRefreshKey       = refreshError("unknown key")
	errRefreshUser      = refreshError("malformed user id")
	errRefreshGen       = refreshError("malformed generation")
	errRefreshMAC       = refreshError("wrong MAC")
)

// strictB64 is unpadded base64url that refuses non-zero trailing bits.
var strictB64 = base64.RawURLEncoding.Strict()

// Parse checks token and returns its claims. Every failure wraps
// ErrInvalidToken; the MAC is compared in constant time, and only a token
// minted by Mint under a known key, spelled exactly as Mint spells it, is
// accepted.
func (r *RefreshTokens) Parse(token string) (RefreshClaims, error) {
	return r.parse(token, refreshPrefix, refreshMACDomain)
}

// parse checks a token of the refresh token layout minted with prefix
// and domain.
func (r *RefreshTokens) parse(token, prefix, domain string) (RefreshClaims, error) {
	if len(token) > maxRefreshTokenSize {
		return RefreshClaims{}, errRefreshTooLarge
	}
	// Only base64url and dots: Go's base64 decoder would skip CR and LF.
	if !isCompactJWS(token) {
		return RefreshClaims{}, errRefreshMalformed
	}
	rest, ok := strings.CutPrefix(token, prefix)
	if !ok {
		return RefreshClaims{}, errRefreshMalformed
	}
	var parts [5]string
	for i := range 4 {
		if parts[i], rest, ok = strings.Cut(rest, "."); !ok {
			return RefreshClaims{}, errRefreshMalformed
		}
	}
	if strings.IndexByte(rest, '.') >= 0 {
		return RefreshClaims{}, errRefreshMalformed
	}
	parts[4] = rest
	kid, userB64, sid, genText, macB64 := parts[0], parts[1], parts[2], parts[3], parts[4]

	key, ok := r.keys[kid]
	if !ok {
		return RefreshClaims{}, errRefreshKey
	}
	if sid == "" {
		return RefreshClaims{}, errRefreshMalformed
	}
	user, err := strictB64.DecodeString(userB64)
	if err != nil || len(user) == 0 {
		return RefreshClaims{}, errRefreshUser
	}
	gen, ok := parseGeneration(genText)
	if !ok {
		return RefreshClaims{}, errRefreshGen
	}
	var got [sha256.Size]byte
	if strictB64.EncodedLen(sha256.Size) != len(macB64) {
		return RefreshClaims{}, errRefreshMAC
	}
	if n, err := strictB64.Decode(got[:], []byte(macB64)); err != nil || n != sha256.Size {
		return RefreshClaims{}, errRefreshMAC
	}
	c := RefreshClaims{UserID: string(user), SessionID: sid, Generation: gen}
	var want [sha256.Size]byte
	if !hmac.Equal(key.sum(want[:0], domain, &c), got[:]) {
		return RefreshClaims{}, errRefreshMAC
	}
	return c, nil
}

// parseGeneration reads a decimal generation of at least 1 with no leading
// zeros, so each generation has one spelling.
func parseGeneration(s string) (uint64, bool) {
	if s == "" || len(s) > 20 || s[0] == '0' {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	g, err := strconv.ParseUint(s, 10, 64)
	return g, err == nil && g != 0
}
