package mail_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/mail"
)

func TestNewRejectsBadURLs(t *testing.T) {
	for _, tc := range []struct{ name, url, want string }{
		{"empty", "", "missing"},
		{"not a URL", "smtp://user:s3cr3t@host:25:x%zz", "not a valid URL"},
		{"no scheme", "//user:s3cr3t@mail.example.com:587", "no scheme"},
		{"other scheme", "https://user:s3cr3t@mail.example.com:587", `"https" is neither smtp nor smtps`},
		{"opaque", "smtp:user:s3cr3t@mail.example.com", "no //host"},
		{"no host", "smtp://user:s3cr3t@:587", "no host"},
		{"no port", "smtp://user:s3cr3t@mail.example.com", "no port"},
		{"port 0", "smtp://user:s3cr3t@mail.example.com:0", "port"},
		{"port too big", "smtps://user:s3cr3t@mail.example.com:70000", "port"},
		{"path", "smtp://user:s3cr3t@mail.example.com:587/x", "path"},
		{"query", "smtp://user:s3cr3t@mail.example.com:587?tls=1", "query"},
		{"fragment", "smtp://user:s3cr3t@mail.example.com:587#x", "fragment"},
		{"password but no user", "smtp://:s3cr3t@mail.example.com:587", "no user"},
		{"user but no password", "smtp://user@mail.example.com:587", "no password"},
		{"user, empty password", "smtp://user:@mail.example.com:587", "no password"},
		// Unescaped, a '/' or '#' in the password ends the authority:
		// what url.Parse then says would show part of it.
		{"password with a slash", "smtp://user:s3cr3t/x@mail.example.com:587", "not a valid URL"},
		{"password with a hash", "smtp://user:12345#s3cr3t@mail.example.com:587", "fragment"},
		{"digits before a slash", "smtp://user:12345/s3cr3t@mail.example.com:587", "path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := mail.New(tc.url, "noreply@example.com")
			if err == nil {
				t.Fatalf("got %v, want an error", m)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %q, want it to say %q", err, tc.want)
			}
			for _, secret := range []string{"s3cr3t", "12345"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("the error %q shows the password", err)
				}
			}
		})
	}
}

func TestNewAcceptsGoodURLs(t *testing.T) {
	for _, tc := range []struct{ url, want string }{
		{"smtp://mail.example.com:25", "smtp://mail.example.com:25"},
		{"smtp://mail.example.com:587/", "smtp://mail.example.com:587"},
		{"SMTPS://mail.example.com:465", "smtps://mail.example.com:465"},
		{"smtp://[::1]:2525", "smtp://[::1]:2525"},
		{"smtps://us%40er:p%2Fa%3Fs%23s%40@mail.example.com:465", "smtps://us%40er@mail.example.com:465"},
	} {
		m, err := mail.New(tc.url, "noreply@example.com")
		if err != nil {
			t.Errorf("%s: %v", tc.url, err)
			continue
		}
		if got, want := m.String(), "mail.Mailer{"+tc.want+" from noreply@example.com}"; got != want {
			t.Errorf("%s: got %s, want %s", tc.url, got, want)
		}
	}
}

func TestNewRejectsBadFromAddresses(t *testing.T) {
	for _, from := range []string{"", "noreply", "noreply@example.com, other@example.com", "a@example.com\r\nBcc: b@example.com"} {
		if _, err := mail.New("smtp://mail.example.com:25", from); err == nil {
			t.Errorf("From %q: got nil, want an error", from)
		}
	}
}

func TestMailerPrintsNoPassword(t *testing.T) {
	m, err := mail.New("smtps://mailer:s3cr3t@mail.example.com:465", "Example <noreply@example.com>")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
		for _, arg := range []any{m, *m} {
			got := fmt.Sprintf(f, arg)
			if strings.Contains(got, "s3cr3t") {
				t.Errorf("%s of %T shows the password: %s", f, arg, got)
			}
			if !strings.Contains(got, "smtps://mailer@mail.example.com:465") {
				t.Errorf("%s of %T: got %s, want the server's address", f, arg, got)
			}
		}
	}
}

func ExampleNew() {
	m, err := mail.New("smtp://mailer:secret@mail.example.com:587", "Example <noreply@example.com>")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(m)

	_, err = mail.New("smtp://mailer:secret@mail.example.com", "noreply@example.com")
	fmt.Println(err)
	// Output:
	// mail.Mailer{smtp://mailer@mail.example.com:587 from Example <noreply@example.com>}
	// mail: the SMTP URL has no port (want smtp://[user:pass@]host:port or smtps://[user:pass@]host:port, special characters percent-encoded)
}
