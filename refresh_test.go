package sessiond

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func mustRefreshKey(t testing.TB) *RefreshKey {
	t.Helper()
	k, err := GenerateRefreshKey()
	if err != nil {
		t.Fatalf("GenerateRefreshKey: %v", err)
	}
	return k
}

// refreshParts splits a token into its six dot-separated parts.
func refreshParts(t *testing.T, tok string) []string {
	t.Helper()
	p := strings.Split(tok, ".")
	if len(p) != 6 {
		t.Fatalf("token %q has %d parts, want 6", tok, len(p))
	}
	return p
}

func TestRefreshRoundTrip(t *testing.T) {
	r := NewRefreshTokens(mustRefreshKey(t))
	for _, c := range []RefreshClaims{
		{UserID: "u", SessionID: "s", Generation: 1},
		{UserID: "user-1", SessionID: "AAAAAAAAAAAAAAAAAAAAAA", Generation: 2},
		{UserID: "{u:1}.with:odd/chars", SessionID: "a-b_c", Generation: 1 << 40},
		{UserID: "ünïcödé ユーザー", SessionID: "x", Generation: 18446744073709551615},
		{UserID: "\x00\xff", SessionID: "0", Generation: 10},
		{UserID: strings.Repeat("u", 600), SessionID: strings.Repeat("s", 64), Generation: 3},
	} {
		tok := r.Mint(c)
		if !strings.HasPrefix(tok, "sdr1.") {
			t.Errorf("token %q does not start with sdr1.", tok)
		}
		got, err := r.Parse(tok)
		if err != nil {
			t.Errorf("Parse(Mint(%+v)): %v", c, err)
			continue
		}
		if got != c {
			t.Errorf("Parse(Mint(c)) = %+v, want %+v", got, c)
		}
		if again := r.Mint(c); again != tok {
			t.Errorf("Mint is not deterministic: %q then %q", tok, again)
		}
	}
}

func TestRefreshKeys(t *testing.T) {
	oldKey, newKey, otherKey := mustRefreshKey(t), mustRefreshKey(t), mustRefreshKey(t)
	c := RefreshClaims{UserID: "user-1", SessionID: "session-1", Generation: 7}
	oldTok := NewRefreshTokens(oldKey).Mint(c)

	rotated := NewRefreshTokens(newKey, oldKey)
	got, err := rotated.Parse(oldTok)
	if err != nil || got != c {
		t.Errorf("token of a retired key: got %+v, %v; want %+v", got, err, c)
	}
	newTok := rotated.Mint(c)
	if p := strings.Split(newTok, "."); p[1] != newKey.ID {
		t.Errorf("new token carries key id %q, want the current key %q", p[1], newKey.ID)
	}
	if p := strings.Split(oldTok, "."); p[1] != oldKey.ID {
		t.Errorf("old token carries key id %q, want %q", p[1], oldKey.ID)
	}
	if _, err := NewRefreshTokens(newKey).Parse(oldTok); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("token of a key no longer configured: got %v, want ErrInvalidToken", err)
	}
	if _, err := NewRefreshTokens(otherKey).Parse(newTok); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("token of an unknown key: got %v, want ErrInvalidToken", err)
	}
	// A token whose key id names a configured key but whose MAC is from
	// another key.
	p := strings.Split(NewRefreshTokens(otherKey).Mint(c), ".")
	p[1] = newKey.ID
	if _, err := rotated.Parse(strings.Join(p, ".")); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("MAC of another key under a known key id: got %v, want ErrInvalidToken", err)
	}
}

func TestRefreshRefuses(t *testing.T) {
	key := mustRefreshKey(t)
	r := NewRefreshTokens(key)
	m := r.keys[key.ID]
	c := RefreshClaims{UserID: "u", SessionID: "session-1", Generation: 1}
	good := r.Mint(c)
	p := refreshParts(t, good)
	join := func(parts ...string) string { return strings.Join(parts, ".") }
	// A user id of one byte leaves 4 unused bits in its 2 base64 characters;
	// "u" is "dQ", and "dR" decodes to "u" in lenient base64.
	if p[2] != "dQ" {
		t.Fatalf("user id part is %q, want dQ", p[2])
	}
	other := r.Mint(RefreshClaims{UserID: "v", SessionID: "session-2", Generation: 2})
	op := refreshParts(t, other)
	// The MAC is 32 bytes in 43 characters: its last character carries 2
	// unused bits; flipping one of them keeps the bytes in lenient base64.
	last := p[5][len(p[5])-1]
	lenientMAC := p[5][:len(p[5])-1] + string(strictB64Alphabet[strings.IndexByte(strictB64Alphabet, last)^1])
	long := m.mint(refreshPrefix, refreshMACDomain, &RefreshClaims{UserID: strings.Repeat("u", 800), SessionID: "s", Generation: 1})
	gen0 := m.mint(refreshPrefix, refreshMACDomain, &RefreshClaims{UserID: "u", SessionID: "session-1", Generation: 0})
	noUser := m.mint(refreshPrefix, refreshMACDomain, &RefreshClaims{UserID: "", SessionID: "session-1", Generation: 1})
	noSession := m.mint(refreshPrefix, refreshMACDomain, &RefreshClaims{UserID: "u", SessionID: "", Generation: 1})
	accessKey := newTestSigningKey(t)
	access, err := NewAccessTokens(testIssuer, accessKey).Issue("u", "session-1", t0, t0.Add(60e9))
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, token string
	}{
		{"empty", ""},
		{"garbage", "garbage"},
		{"prefix only", "sdr1."},
		{"wrong prefix", join("sdr2", p[1], p[2], p[3], p[4], p[5])},
		{"prefix in capitals", join("SDR1", p[1], p[2], p[3], p[4], p[5])},
		{"no prefix", join(p[1], p[2], p[3], p[4], p[5])},
		{"unknown key id", join(p[0], "AAAAAAAA", p[2], p[3], p[4], p[5])},
		{"key id in other case", join(p[0], strings.ToUpper(p[1])+"x", p[2], p[3], p[4], p[5])},
		{"forged MAC", join(p[0], p[1], p[2], p[3], p[4], flip(p[5][:1])+p[5][1:])},
		{"MAC of other claims", join(p[0], p[1], p[2], p[3], p[4], op[5])},
		{"swapped session id", join(p[0], p[1], p[2], op[3], p[4], p[5])},
		{"swapped user id", join(p[0], p[1], op[2], p[3], p[4], p[5])},
		{"raised generation", join(p[0], p[1], p[2], p[3], "2", p[5])},
		{"generation 0 with a valid MAC", gen0},
		{"empty user id with a valid MAC", noUser},
		{"empty session id with a valid MAC", noSession},
		{"generation with a leading zero", join(p[0], p[1], p[2], p[3], "01", p[5])},
		{"generation with a plus sign", join(p[0], p[1], p[2], p[3], "+1", p[5])},
		{"generation overflowing uint64", join(p[0], p[1], p[2], p[3], "18446744073709551617", p[5])},
		{"generation in hex", join(p[0], p[1], p[2], p[3], "0x1", p[5])},
		{"empty generation", join(p[0], p[1], p[2], p[3], "", p[5])},
		{"user id with padding", join(p[0], p[1], p[2]+"==", p[3], p[4], p[5])},
		{"user id with non-zero trailing bits", join(p[0], p[1], "dR", p[3], p[4], p[5])},
		{"user id in standard base64", join(p[0], p[1], p[2]+"+/", p[3], p[4], p[5])},
		{"user id with a newline", join(p[0], p[1], "d\nQ", p[3], p[4], p[5])},
		{"empty user id", join(p[0], p[1], "", p[3], p[4], p[5])},
		{"empty session id", join(p[0], p[1], p[2], "", p[4], p[5])},
		{"MAC with padding", join(p[0], p[1], p[2], p[3], p[4], p[5]+"=")},
		{"MAC with non-zero trailing bits", join(p[0], p[1], p[2], p[3], p[4], lenientMAC)},
		{"MAC with a newline", join(p[0], p[1], p[2], p[3], p[4], p[5][:20]+"\r\n"+p[5][20:])},
		{"MAC truncated", join(p[0], p[1], p[2], p[3], p[4], p[5][:42])},
		{"MAC extended", join(p[0], p[1], p[2], p[3], p[4], p[5]+"A")},
		{"empty MAC", join(p[0], p[1], p[2], p[3], p[4], "")},
		{"extra part", good + ".x"},
		{"extra empty part", good + "."},
		{"missing part", join(p[0], p[1], p[2], p[4], p[5])},
		{"leading space", " " + good},
		{"trailing newline", good + "\n"},
		{"over 1 KiB with a valid MAC", long},
		{"access token", access},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := r.Parse(tc.token)
			if err == nil {
				t.Fatalf("Parse accepted the token: %+v", got)
			}
			if !errors.Is(err, ErrInvalidToken) {
				t.Errorf("error %v does not match ErrInvalidToken", err)
			}
			if got != (RefreshClaims{}) {
				t.Errorf("Parse returned claims %+v with an error", got)
			}
			if strings.Contains(err.Error(), p[5][:10]) || strings.Contains(err.Error(), "session-1") {
				t.Errorf("error %q quotes the token", err)
			}
		})
	}

	// The cases above are refusals of exactly what they name: the untouched
	// token parses, and the crafted long token is only refused for its size.
	if _, err := r.Parse(good); err != nil {
		t.Fatalf("the untouched token is refused: %v", err)
	}
	if len(long) <= maxRefreshTokenSize {
		t.Fatalf("long token is %d bytes, want over %d", len(long), maxRefreshTokenSize)
	}
}

const strictB64Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// TestRefreshLenientSpellingsWouldMatch checks the premise of the
// non-canonical cases above: lenient decoding maps them to the same bytes,
// so only the canonical checks refuse them.
func TestRefreshLenientSpellingsWouldMatch(t *testing.T) {
	key := mustRefreshKey(t)
	r := NewRefreshTokens(key)
	p := strings.Split(r.Mint(RefreshClaims{UserID: "u", SessionID: "s", Generation: 1}), ".")
	for _, s := range []string{"dQ", "dR", "d\nQ"} {
		b, err := lenientDecode(s)
		if err != nil || string(b) != "u" {
			t.Errorf("lenient decode of %q = %q, %v; want \"u\"", s, b, err)
		}
	}
	mac, err := lenientDecode(p[5])
	if err != nil {
		t.Fatal(err)
	}
	last := p[5][len(p[5])-1]
	alt := p[5][:len(p[5])-1] + string(strictB64Alphabet[strings.IndexByte(strictB64Alphabet, last)^1])
	mac2, err := lenientDecode(alt)
	if err != nil || string(mac2) != string(mac) || len(mac) != sha256.Size {
		t.Errorf("lenient decode of the MAC with a flipped trailing bit differs: %v", err)
	}
}

// lenientDecode is Go's default unpadded base64url decoding.
func lenientDecode(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(s)
}

func TestRefreshMintPanics(t *testing.T) {
	r := NewRefreshTokens(mustRefreshKey(t))
	for _, tc := range []struct {
		name string
		c    RefreshClaims
	}{
		{"empty user id", RefreshClaims{SessionID: "s", Generation: 1}},
		{"empty session id", RefreshClaims{UserID: "u", Generation: 1}},
		{"session id with a dot", RefreshClaims{UserID: "u", SessionID: "a.b", Generation: 1}},
		{"session id with a space", RefreshClaims{UserID: "u", SessionID: "a b", Generation: 1}},
		{"generation 0", RefreshClaims{UserID: "u", SessionID: "s"}},
		{"over 1 KiB", RefreshClaims{UserID: strings.Repeat("u", 1000), SessionID: "s", Generation: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			r.Mint(tc.c)
		})
	}
}

func TestNewRefreshTokensPanics(t *testing.T) {
	k := mustRefreshKey(t)
	for _, tc := range []struct {
		name string
		fn   func()
	}{
		{"nil key", func() { NewRefreshTokens(nil) }},
		{"short secret", func() { NewRefreshTokens(&RefreshKey{Secret: k.Secret[:31]}) }},
		{"ID of another secret", func() { NewRefreshTokens(&RefreshKey{ID: "AAAAAAAA", Secret: k.Secret}) }},
		{"nil retired key", func() { NewRefreshTokens(k, nil) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			tc.fn()
		})
	}
	// The same key twice is not a collision.
	NewRefreshTokens(k, k, &RefreshKey{Secret: k.Secret})
}

func FuzzRefreshParse(f *testing.F) {
	cur, err := GenerateRefreshKey()
	if err != nil {
		f.Fatal(err)
	}
	old, err := GenerateRefreshKey()
	if err != nil {
		f.Fatal(err)
	}
	r := NewRefreshTokens(cur, old)
	for _, c := range []RefreshClaims{
		{UserID: "u", SessionID: "s", Generation: 1},
		{UserID: "user-1", SessionID: "AAAAAAAAAAAAAAAAAAAAAA", Generation: 12345},
		{UserID: "{u:1}", SessionID: "x_y-z", Generation: 1<<64 - 1},
	} {
		tok := r.Mint(c)
		f.Add(tok)
		f.Add(NewRefreshTokens(old).Mint(c))
		f.Add(tok[:len(tok)-1])
		f.Add(tok + ".")
	}
	f.Add("sdr1.....")
	f.Add("")
	f.Fuzz(func(t *testing.T, token string) {
		c, err := r.Parse(token)
		if err != nil {
			if !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("error %v does not match ErrInvalidToken", err)
			}
			return
		}
		kid := strings.Split(token, ".")[1]
		if again := r.keys[kid].mint(refreshPrefix, refreshMACDomain, &c); again != token {
			t.Fatalf("Parse(%q) = %+v, which mints %q", token, c, again)
		}
	})
}

func BenchmarkRefreshParse(b *testing.B) {
	r := NewRefreshTokens(mustRefreshKey(b))
	tok := r.Mint(RefreshClaims{UserID: "AAAAAAAAAAAAAAAAAAAAAA", SessionID: "BBBBBBBBBBBBBBBBBBBBBB", Generation: 42})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Parse(tok); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRefreshMint(b *testing.B) {
	r := NewRefreshTokens(mustRefreshKey(b))
	c := RefreshClaims{UserID: "AAAAAAAAAAAAAAAAAAAAAA", SessionID: "BBBBBBBBBBBBBBBBBBBBBB", Generation: 42}
	b.ReportAllocs()
	for b.Loop() {
		r.Mint(c)
	}
}
