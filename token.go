package sessiond

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
)

// Access token limits and header values.
const (
	// maxAccessTokenSize is the longest access token Verify looks at, in
	// bytes; longer ones are refused before any parsing.
	maxAccessTokenSize = 8 << 10
	// accessTokenType is the typ header of every access token (RFC 9068).
	accessTokenType = "at+jwt"
	// accessLeeway is the clock skew allowed on exp, nbf and iat.
	accessLeeway = 60 * time.Second
	// defaultVerifiedCacheSize bounds the verified-token cache.
	defaultVerifiedCacheSize = 100_000
)

// forbiddenHeaders are JOSE headers that would let a token choose its own
// key or add processing rules; an access token carrying any of them is
// refused whatever their value.
var forbiddenHeaders = [...]string{"crit", "jku", "jwk", "x5u", "x5c"}

// AccessClaims are the claims of an access token.
type AccessClaims struct {
	jwt.RegisteredClaims
	// SessionID is the session the token was issued for.
	SessionID string `json:"sid"`
	// Extra are the session's own claims (see Session.Claims), written as
	// top-level claims when the token is issued. Verify leaves it nil: the
	// session's current claims are in the store.
	Extra json.RawMessage `json:"-"`
}

// MarshalJSON writes the claims with Extra's members beside the others.
// Extra never repeats a name of theirs: CheckClaims refuses those.
func (c *AccessClaims) MarshalJSON() ([]byte, error) {
	type plain AccessClaims
	b, err := json.Marshal((*plain)(c))
	if err != nil || len(c.Extra) <= len("{}") {
		return b, err
	}
	b = append(b[:len(b)-1], ',')
	return append(b, c.Extra[1:]...), nil
}

// UnmarshalJSON decodes the claims, refusing an exp, nbf or iat that is not
// a JSON number. jwt.NumericDate alone also takes a string of digits
// ("9999999999"), which RFC 7519 does not allow and which other verifiers
// of the same token would read differently or refuse.
func (c *AccessClaims) UnmarshalJSON(b []byte) error {
	type plain AccessClaims
	// The outer fields shadow the promoted ones of the same JSON names, so
	// the times arrive raw and the rest decodes as usual, in one pass.
	var w struct {
		*plain
		Exp json.RawMessage `json:"exp"`
		Nbf json.RawMessage `json:"nbf"`
		Iat json.RawMessage `json:"iat"`
	}
	w.plain = (*plain)(c)
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	var err error
	if c.ExpiresAt, err = numericDate("exp", w.Exp); err != nil {
		return err
	}
	if c.NotBefore, err = numericDate("nbf", w.Nbf); err != nil {
		return err
	}
	c.IssuedAt, err = numericDate("iat", w.Iat)
	return err
}

// accessClaimNames are the members AccessClaims decodes.
var accessClaimNames = [...]string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "sid", "typ"}

// checkPayloadNames is checkMemberNames on the payload of compact JWS
// token.
func checkPayloadNames(token string) error {
	first := strings.IndexByte(token, '.')
	last := strings.LastIndexByte(token, '.')
	payload, err := base64.RawURLEncoding.DecodeString(token[first+1 : last])
	if err != nil {
		return err
	}
	return checkMemberNames(payload)
}

// checkMemberNames refuses a JSON object with a duplicate member or with a
// member that folds to one of accessClaimNames without being spelled so.
func checkMemberNames(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return errors.New("claims are not a JSON object")
	}
	seen := make(map[string]struct{}, 16)
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		name, _ := t.(string)
		if _, dup := seen[name]; dup {
			return fmt.Errorf("claim %q appears twice", name)
		}
		seen[name] = struct{}{}
		for _, n := range accessClaimNames {
			if name != n && strings.EqualFold(name, n) {
				return fmt.Errorf("claim %q is %q in another letter case", name, n)
			}
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return err
		}
	}
	return nil
}

// numericDate decodes a time claim that must be a JSON number; nil when
// the claim is absent.
func numericDate(name string, raw json.RawMessage) (*jwt.NumericDate, error) {
	if raw == nil {
		return nil, nil
	}
	if c := raw[0]; c != '-' && (c < '0' || c > '9') {
		return nil, fmt.Errorf("claim %s is not a number", name)
	}
	d := new(jwt.NumericDate)
	if err := d.UnmarshalJSON(raw); err != nil {
		return nil, fmt.Errorf("claim %s: %w", name, err)
	}
	return d, nil
}

// AccessTokens issues and verifies access tokens: Ed25519-signed JWTs
// (alg EdDSA, typ at+jwt, kid). It is safe for concurrent use.
//
// Verify remembers the tokens it has verified (a bounded cache keyed by the
// exact token string), so a token seen before costs a map lookup instead of
// a signature check. The cache never changes an
// answer: exp and nbf are checked against now on every call, and a token is
// only cached after it verified in full.
type AccessTokens struct {
	issuer  string
	signer  *SigningKey
	keys    map[string]ed25519.PublicKey
	jwks    []byte
	keyfunc jwt.Keyfunc
	// opts are the parser options of every verification but the clock,
	// which is per call.
	opts  []jwt.ParserOption
	cache *verifiedCache
}

// NewAccessTokens returns an AccessTokens that signs with current and
// verifies tokens of current and of every previous public key, each chosen
// by its kid (the RFC 7638 thumbprint), so a rotated-out key keeps its
// tokens valid until they expire. issuer is both the iss and the aud of the
// tokens. It panics when issuer is empty or a key is malformed: both are
// configuration errors caught at start.
func NewAccessTokens(issuer string, current *SigningKey, previous ...ed25519.PublicKey) *AccessTokens {
	if issuer == "" {
		panic("sessiond: NewAccessTokens: empty issuer")
	}
	if current == nil || len(current.Key) != ed25519.PrivateKeySize {
		panic("sessiond: NewAccessTokens: missing or malformed signing key")
	}
	curPub := current.Key.Public().(ed25519.PublicKey)
	kid, err := signingKeyID(curPub)
	if err != nil {
		panic("sessiond: NewAccessTokens: " + err.Error())
	}
	if current.ID != "" && current.ID != kid {
		panic("sessiond: NewAccessTokens: signing key ID is not the thumbprint of its public key")
	}
	signer := &SigningKey{ID: kid, Key: current.Key}

	a := &AccessTokens{
		issuer: issuer,
		signer: signer,
		keys:   map[string]ed25519.PublicKey{kid: curPub},
		cache:  newVerifiedCache(defaultVerifiedCacheSize),
	}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{publicJWK(kid, curPub)}}
	for _, pub := range previous {
		id, err := signingKeyID(pub)
		if err != nil {
			panic("sessiond: NewAccessTokens: previous key: " + err.Error())
		}
		if _, dup := a.keys[id]; dup {
			continue
		}
		pub = slices.Clone(pub)
		a.keys[id] = pub
		set.Keys = append(set.Keys, publicJWK(id, pub))
	}
	a.jwks, err = json.Marshal(set)
	if err != nil {
		panic("sessiond: NewAccessTokens: marshal JWKS: " + err.Error())
	}
	a.keyfunc = a.keyFor
	a.opts = []jwt.ParserOption{
		jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuer(issuer),
		jwt.WithAudience(issuer),
		jwt.WithLeeway(accessLeeway),
		jwt.WithIssuedAt(),
		jwt.WithStrictDecoding(),
	}
	return a
}

func publicJWK(kid string, pub ed25519.PublicKey) jose.JSONWebKey {
	return jose.JSONWebKey{Key: pub, KeyID: kid, Algorithm: string(jose.EdDSA), Use: "sig"}
}

// JWKS returns the JSON Web Key Set (RFC 7517) of every verification key,
// public parts only, the current key first. The caller may keep the slice.
func (a *AccessTokens) JWKS() []byte { return slices.Clone(a.jwks) }

// Issue signs an access token for sessionID of userID, issued at now and
// expiring at expiresAt (both truncated to the second, so the token never
// outlives expiresAt).
func (a *AccessTokens) Issue(userID, sessionID string, now, expiresAt time.Time) (string, error) {
	return a.IssueWithClaims(userID, sessionID, nil, now, expiresAt)
}

// IssueWithClaims is Issue with the session's own claims (a compact JSON
// object that CheckClaims returned, or nil) as top-level claims.
func (a *AccessTokens) IssueWithClaims(userID, sessionID string, extra json.RawMessage, now, expiresAt time.Time) (string, error) {
	if userID == "" || sessionID == "" {
		return "", errors.New("access token: empty user id or session id")
	}
	if !expiresAt.After(now) {
		return "", errors.New("access token: expiry is not after issue time")
	}
	var jti [16]byte
	_, _ = rand.Read(jti[:]) // never fails since Go 1.24
	claims := &AccessClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    a.issuer,
			Audience:  jwt.ClaimStrings{a.issuer},
			Subject:   userID,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(expiresAt),
			ID:        base64.RawURLEncoding.EncodeToString(jti[:]),
		},
		SessionID: sessionID,
		Extra:     extra,
	}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	t.Header["kid"] = a.signer.ID
	t.Header["typ"] = accessTokenType
	s, err := t.SignedString(a.signer.Key)
	if err != nil {
		return "", fmt.Errorf("access token: sign: %w", err)
	}
	return s, nil
}

// Verify checks token at now and returns its claims. Every failure wraps
// ErrInvalidToken (and, where one applies, the jwt package's error, such as
// jwt.ErrTokenExpired). A token verified before is answered from the cache,
// with exp and nbf checked again against now. The returned claims are the
// caller's to modify.
func (a *AccessTokens) Verify(token string, now time.Time) (*AccessClaims, error) {
	if len(token) > maxAccessTokenSize {
		return nil, errTokenTooLarge
	}
	if e, ok := a.cache.get(token); ok {
		if err := e.check(now); err != nil {
			return nil, err
		}
		return cloneClaims(e.claims), nil
	}
	c, err := a.verify(token, now)
	if err != nil {
		return nil, err
	}
	a.cache.put(token, newCacheEntry(c), now)
	return cloneClaims(c), nil
}

// verifyUncached is Verify without the cache: every call checks the
// signature. It neither reads nor fills the cache.
func (a *AccessTokens) verifyUncached(token string, now time.Time) (*AccessClaims, error) {
	if len(token) > maxAccessTokenSize {
		return nil, errTokenTooLarge
	}
	return a.verify(token, now)
}

var errTokenTooLarge = &tokenError{reason: "access token over 8 KiB"}

func (a *AccessTokens) verify(token string, now time.Time) (*AccessClaims, error) {
	if !isCompactJWS(token) {
		return nil, &tokenError{reason: "malformed access token", err: jwt.ErrTokenMalformed}
	}
	opts := append(a.opts[:len(a.opts):len(a.opts)], jwt.WithTimeFunc(func() time.Time { return now }))
	claims := new(AccessClaims)
	if _, err := jwt.NewParser(opts...).ParseWithClaims(token, claims, a.keyfunc); err != nil {
		return nil, jwtError(err)
	}
	// Signed by us, so the payload is ours to judge now (a forged token
	// never costs this): a duplicate member, or one of the token's own
	// claim names in another letter case ("Sub", "ſub"), is refused, since
	// encoding/json matches names case-insensitively and keeps the last,
	// and would read such a member as the real claim where verifiers that
	// match names exactly would not.
	if err := checkPayloadNames(token); err != nil {
		return nil, &tokenError{reason: "access token claims: " + err.Error(), err: jwt.ErrTokenMalformed}
	}
	if claims.Subject == "" {
		return nil, &tokenError{reason: "access token has no sub", err: jwt.ErrTokenRequiredClaimMissing}
	}
	if claims.SessionID == "" {
		return nil, &tokenError{reason: "access token has no sid", err: jwt.ErrTokenRequiredClaimMissing}
	}
	return claims, nil
}

// keyFor picks the verification key by kid after checking the header. It
// runs after the parser has pinned alg to EdDSA.
func (a *AccessTokens) keyFor(t *jwt.Token) (any, error) {
	if _, ok := t.Method.(*jwt.SigningMethodEd25519); !ok {
		return nil, &tokenError{reason: "access token algorithm is not EdDSA", err: jwt.ErrTokenSignatureInvalid}
	}
	for _, h := range forbiddenHeaders {
		if _, ok := t.Header[h]; ok {
			return nil, &tokenError{reason: "access token has a forbidden " + h + " header"}
		}
	}
	typ, _ := t.Header["typ"].(string)
	if !isAccessTokenType(typ) {
		return nil, &tokenError{reason: "access token typ is not at+jwt"}
	}
	kid, ok := t.Header["kid"].(string)
	if !ok || kid == "" {
		return nil, &tokenError{reason: "access token has no kid"}
	}
	pub, ok := a.keys[kid]
	if !ok {
		return nil, &tokenError{reason: "access token kid is unknown"}
	}
	return pub, nil
}

// isAccessTokenType reports whether typ names an access token: RFC 9068
// allows the media type with or without its "application/" prefix, and
// RFC 7515 compares media types case-insensitively.
func isAccessTokenType(typ string) bool {
	if len(typ) > len("application/") && strings.EqualFold(typ[:len("application/")], "application/") {
		typ = typ[len("application/"):]
	}
	return strings.EqualFold(typ, accessTokenType)
}

// jwsAlphabet marks the bytes of a compact JWS: base64url and '.'.
var jwsAlphabet = func() (t [256]bool) {
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.") {
		t[c] = true
	}
	return t
}()

// isCompactJWS reports whether s has only base64url characters and dots.
// Go's base64 decoder skips CR and LF, so without this check one token
// would have many spellings.
func isCompactJWS(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !jwsAlphabet[s[i]] {
			return false
		}
	}
	return true
}

// tokenError is a refused token. Its message is fixed text (never a piece
// of the token); it matches ErrInvalidToken and the underlying cause.
type tokenError struct {
	reason string
	err    error
}

func (e *tokenError) Error() string { return ErrInvalidToken.Error() + ": " + e.reason }

func (e *tokenError) Unwrap() []error {
	if e.err == nil {
		return []error{ErrInvalidToken}
	}
	return []error{ErrInvalidToken, e.err}
}

// jwtError turns an error of the jwt parser into a tokenError with a fixed
// message, keeping the jwt sentinel for errors.Is.
func jwtError(err error) error {
	var te *tokenError
	if errors.As(err, &te) {
		return te // from keyFor
	}
	for _, m := range []struct {
		sentinel error
		reason   string
	}{
		{jwt.ErrTokenExpired, "access token expired"},
		{jwt.ErrTokenNotValidYet, "access token not valid yet"},
		{jwt.ErrTokenUsedBeforeIssued, "access token issued in the future"},
		{jwt.ErrTokenRequiredClaimMissing, "access token misses a required claim"},
		{jwt.ErrTokenInvalidIssuer, "access token has the wrong issuer"},
		{jwt.ErrTokenInvalidAudience, "access token has the wrong audience"},
		{jwt.ErrTokenSignatureInvalid, "access token signature or algorithm is invalid"},
		{jwt.ErrTokenMalformed, "malformed access token"},
		{jwt.ErrTokenUnverifiable, "access token cannot be verified"},
		{jwt.ErrTokenInvalidClaims, "access token has invalid claims"},
	} {
		if errors.Is(err, m.sentinel) {
			return &tokenError{reason: m.reason, err: m.sentinel}
		}
	}
	return &tokenError{reason: "access token refused"}
}

// claimsBox holds a deep copy of AccessClaims in one allocation.
type claimsBox struct {
	c             AccessClaims
	exp, nbf, iat jwt.NumericDate
	aud           [1]string
}

// cloneClaims returns a deep copy of c, so callers cannot change what the
// cache holds.
func cloneClaims(c *AccessClaims) *AccessClaims {
	b := &claimsBox{c: *c}
	if c.ExpiresAt != nil {
		b.exp = *c.ExpiresAt
		b.c.ExpiresAt = &b.exp
	}
	if c.NotBefore != nil {
		b.nbf = *c.NotBefore
		b.c.NotBefore = &b.nbf
	}
	if c.IssuedAt != nil {
		b.iat = *c.IssuedAt
		b.c.IssuedAt = &b.iat
	}
	switch len(c.Audience) {
	case 0:
	case 1:
		b.aud[0] = c.Audience[0]
		b.c.Audience = b.aud[:]
	default:
		b.c.Audience = slices.Clone(c.Audience)
	}
	return &b.c
}

// cacheEntry is a verified token: its claims and the window in which it
// is valid, with the leeway applied as the jwt validator applies it.
type cacheEntry struct {
	// expiresBefore: valid while now is before it (exp + leeway).
	expiresBefore time.Time
	// notBefore: valid from it on (nbf - leeway); zero when no nbf.
	notBefore time.Time
	// issuedBefore: valid from it on (iat - leeway); zero when no iat.
	issuedBefore time.Time
	claims       *AccessClaims
}

// newCacheEntry takes ownership of c, which verify guarantees has an exp.
func newCacheEntry(c *AccessClaims) cacheEntry {
	e := cacheEntry{expiresBefore: c.ExpiresAt.Add(accessLeeway), claims: c}
	if c.NotBefore != nil {
		e.notBefore = c.NotBefore.Add(-accessLeeway)
	}
	if c.IssuedAt != nil {
		e.issuedBefore = c.IssuedAt.Add(-accessLeeway)
	}
	return e
}

var (
	errCachedExpired     = &tokenError{reason: "access token expired", err: jwt.ErrTokenExpired}
	errCachedNotValidYet = &tokenError{reason: "access token not valid yet", err: jwt.ErrTokenNotValidYet}
	errCachedIssuedLater = &tokenError{reason: "access token issued in the future", err: jwt.ErrTokenUsedBeforeIssued}
)

// check repeats the time checks of the jwt validator.
func (e *cacheEntry) check(now time.Time) error {
	if !now.Before(e.expiresBefore) {
		return errCachedExpired
	}
	if !e.notBefore.IsZero() && now.Before(e.notBefore) {
		return errCachedNotValidYet
	}
	if !e.issuedBefore.IsZero() && now.Before(e.issuedBefore) {
		return errCachedIssuedLater
	}
	return nil
}

// cacheShards spreads the verified-token cache over independently locked
// maps so concurrent requests rarely wait on each other.
const cacheShards = 64

// verifiedCache maps a verified token, the exact string, to its entry. A
// look-up compares the whole string, so no other token, however crafted,
// can find an entry; a keyed hash only picks the shard. Each shard holds at
// most perShard entries; inserting into a full shard first drops expired
// entries among a few it samples, else one of them, so every operation is
// O(1). Go randomizes where map iteration starts, which makes the sample
// random. An entry costs the token's length plus about 250 bytes.
type verifiedCache struct {
	perShard int
	seed     maphash.Seed
	shards   [cacheShards]cacheShard
}

type cacheShard struct {
	mu sync.RWMutex
	m  map[string]cacheEntry
	_  [32]byte // keep shards on separate cache lines
}

// evictionSample is how many entries a full shard looks at per insert.
const evictionSample = 8

func newVerifiedCache(size int) *verifiedCache {
	c := &verifiedCache{perShard: max(1, size/cacheShards), seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].m = make(map[string]cacheEntry)
	}
	return c
}

func (c *verifiedCache) shard(token string) *cacheShard {
	return &c.shards[maphash.String(c.seed, token)%cacheShards]
}

func (c *verifiedCache) get(token string) (cacheEntry, bool) {
	s := c.shard(token)
	s.mu.RLock()
	e, ok := s.m[token]
	s.mu.RUnlock()
	return e, ok
}

// put stores e for token. It keeps its own copy of token, so a caller's
// buffer (a request header) is not retained.
func (c *verifiedCache) put(token string, e cacheEntry, now time.Time) {
	s := c.shard(token)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[token]; ok {
		// Another request verified the same token meanwhile. Leave its
		// entry: assigning would make token, which may be a slice of a
		// large request header, the map's key.
		return
	}
	if len(s.m) >= c.perShard {
		victim, evicted, n := "", false, 0
		for k, old := range s.m {
			if n == 0 {
				victim = k
			}
			if !now.Before(old.expiresBefore) {
				delete(s.m, k)
				evicted = true
			}
			if n++; n == evictionSample {
				break
			}
		}
		if !evicted {
			delete(s.m, victim)
		}
	}
	s.m[strings.Clone(token)] = e
}

// len returns the number of cached tokens.
func (c *verifiedCache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}
