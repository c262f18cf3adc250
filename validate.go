package sessiond

import (
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Field limits.
const (
	maxUsernameLen   = 64
	maxEmailLen      = 254
	maxDeviceNameLen = 64
	MaxDeviceIDLen   = 256
)

// checkUsername reports whether name is a valid username: 1-64 ASCII
// letters, digits, '.', '_' or '-'.
func checkUsername(name string) error {
	if name == "" {
		return invalid("username", "is required")
	}
	if len(name) > maxUsernameLen {
		return invalid("username", "must be at most %d characters", maxUsernameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return invalid("username", "may contain only ASCII letters, digits, '.', '_' and '-'")
		}
	}
	return nil
}

// FoldLogin is the case fold under which usernames and emails are unique
// and looked up: ASCII letters only. A Unicode fold would make lookalikes
// equal to ASCII names (U+212A KELVIN SIGN folds to "k", so "\u212Aate"
// would sign in as "kate"); non-ASCII letters therefore compare exactly.
// Every UserStore compares FoldLogin of both sides.
func FoldLogin(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if c := b[j]; c >= 'A' && c <= 'Z' {
					b[j] = c + 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// checkEmail reports whether addr is a plain email address.
func checkEmail(addr string) error {
	if addr == "" {
		return invalid("email", "is required")
	}
	if len(addr) > maxEmailLen {
		return invalid("email", "must be at most %d characters", maxEmailLen)
	}
	if !utf8.ValidString(addr) {
		return invalid("email", "must be valid UTF-8")
	}
	if hasInvisible(addr) {
		return invalid("email", "must not contain control or format characters (such as bidi overrides or zero-width characters)")
	}
	a, err := mail.ParseAddress(addr)
	if err != nil || a.Address != addr || a.Name != "" {
		return invalid("email", "must be an email address like name@example.com")
	}
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || at == len(addr)-1 || strings.ContainsAny(addr, " \"") {
		return invalid("email", "must be an email address like name@example.com")
	}
	return nil
}

// checkDeviceName reports whether name is a valid session name: up to 64
// characters of valid UTF-8 without control or format characters. "" is
// valid.
func checkDeviceName(field, name string) error {
	if !utf8.ValidString(name) {
		return invalid(field, "must be valid UTF-8")
	}
	if utf8.RuneCountInString(name) > maxDeviceNameLen {
		return invalid(field, "must be at most %d characters", maxDeviceNameLen)
	}
	if hasInvisible(name) {
		return invalid(field, "must not contain control or format characters (such as bidi overrides or zero-width characters)")
	}
	return nil
}

// hasInvisible reports whether s holds a character that other people's
// screens would not show as itself: a control character (Cc), a format
// character (Cf: the bidi overrides and isolates U+202A-U+202E and
// U+2066-U+2069, which make "\u202eexe.evil" render as "live.exe", and
// the zero-width U+200B-U+200D and U+FEFF), a private-use character (Co),
// a surrogate (Cs), or a line or paragraph separator.
func hasInvisible(s string) bool {
	for _, r := range s {
		if r < 0x20 || r >= 0x7f && unicode.In(r, unicode.Cc, unicode.Cf, unicode.Co, unicode.Cs, unicode.Zl, unicode.Zp) {
			return true
		}
	}
	return false
}

// isPrintableASCII reports whether s is printable ASCII without spaces
// (0x21-0x7e): what user ids, claim names and imported hashes may hold.
func isPrintableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
