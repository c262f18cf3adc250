package smtptest

import (
	"io"
	"mime"
	"mime/multipart"
	netmail "net/mail"
	"strings"
	"testing"
)

// Mail is a message the server got, taken apart as a mail client would.
type Mail struct {
	Header netmail.Header
	// Text has LF line ends (CRLF on the wire).
	Text, HTML string
}

// ParseMail takes a raw message apart with the standard library alone, as a
// mail client would: headers, and the two parts of a multipart/alternative
// body with their transfer encoding undone.
func ParseMail(t testing.TB, raw []byte) Mail {
	t.Helper()
	msg, err := netmail.ReadMessage(strings.NewReader(string(raw)))
	if err != nil {
		t.Fatalf("read message: %v\n%s", err, raw)
	}
	r := Mail{Header: msg.Header}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("got Content-Type %q (%v), want multipart/alternative", msg.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("next part: %v", err)
		}
		body, err := io.ReadAll(p)
		if err != nil {
			t.Fatal(err)
		}
		pt, pparams, err := mime.ParseMediaType(p.Header.Get("Content-Type"))
		if err != nil {
			t.Fatal(err)
		}
		if cs := strings.ToLower(pparams["charset"]); cs != "utf-8" {
			t.Errorf("part %s: got charset %q, want utf-8", pt, cs)
		}
		switch pt {
		case "text/plain":
			// CRLF on the wire, as RFC 5322 wants; LF for the checks.
			r.Text = strings.ReplaceAll(string(body), "\r\n", "\n")
		case "text/html":
			r.HTML = string(body)
		default:
			t.Errorf("got a part of type %q, want only text/plain and text/html", pt)
		}
	}
	if r.Text == "" || r.HTML == "" {
		t.Fatalf("got text part %q and HTML part %q, want both", r.Text, r.HTML)
	}
	return r
}
