package sessiond

import (
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Field limits.
const (
	MaxUsernameLen   = 64
	MaxEmailLen      = 254
	MaxDeviceNameLen = 64
	MaxDeviceIDLen   = 256
)

// CheckUsername reports whether name is a valid username: 1-64 ASCII
// letters, digits, '.', '_' or '-'.
func CheckUsername(name string) error {
	if name == "" {
		return invalid("username", "is required")
	}
	if len(name) > MaxUsernameLen {
		return invalid("username", "must be at most %d characters", MaxUsernameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return invalid("username", "may contain only ASCII letters, digits, '.', '_' and '-'")
		}
	}
	return nil
}

// CheckEmail reports whether addr is a plain email address.
func CheckEmail(addr string) error {
	if addr == "" {
		return invalid("email", "is required")
	}
	if len(addr) > MaxEmailLen {
		return invalid("email", "must be at most %d characters", MaxEmailLen)
	}
	a, err := mail.ParseAddress(addr)
	if err != nil || a.Address != addr || a.Name != "" || hasControl(addr) {
		return invalid("email", "must be an email address like name@example.com")
	}
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || at == len(addr)-1 || strings.ContainsAny(addr, " \"") {
		return invalid("email", "must be an email address like name@example.com")
	}
	return nil
}

// CheckDeviceName reports whether name is a valid session name: up to 64
// characters of valid UTF-8 without control characters. "" is valid.
func CheckDeviceName(field, name string) error {
	if !utf8.ValidString(name) {
		return invalid(field, "must be valid UTF-8")
	}
	if utf8.RuneCountInString(name) > MaxDeviceNameLen {
		return invalid(field, "must be at most %d characters", MaxDeviceNameLen)
	}
	if hasControl(name) {
		return invalid(field, "must not contain control characters")
	}
	return nil
}

func hasControl(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return true
		}
	}
	return false
}
