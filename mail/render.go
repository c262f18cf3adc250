package mail

import (
	"bytes"
	"embed"
	htmltemplate "html/template"
	"strings"
	texttemplate "text/template"
	"unicode"

	"github.com/sessiond/sessiond"
)

// Subject is the subject of the new-sign-in e-mail.
const Subject = "New sign-in to your account"

//go:embed templates
var templates embed.FS

// The two parts of the e-mail. The HTML part escapes every value: the
// device's name is the user's own text, and so in part is the device.
var (
	textTmpl = texttemplate.Must(texttemplate.ParseFS(templates, "templates/new_sign_in.txt"))
	htmlTmpl = htmltemplate.Must(htmltemplate.ParseFS(templates, "templates/new_sign_in.html"))
)

// view is what the templates show, every field made ready to print.
type view struct {
	Subject   string
	Username  string
	Device    string
	Location  string
	At        string
	IPAddress string
	ReportURL string
}

// render returns the text and the HTML part of the e-mail telling of s.
func render(s sessiond.NewSignInMail) (text, html string, err error) {
	v := view{
		Subject:   Subject,
		Username:  oneLine(s.Username),
		Device:    oneLine(s.Device),
		Location:  oneLine(s.Location),
		IPAddress: oneLine(s.IPAddress),
		ReportURL: oneLine(s.ReportURL),
	}
	if v.Device == "" {
		v.Device = "an unknown device"
	}
	if name := oneLine(s.Name); name != "" {
		v.Device = name + " (" + v.Device + ")"
	}
	if v.Location == "" {
		v.Location = "an unknown location"
	}
	if v.IPAddress == "" {
		v.IPAddress = "unknown"
	}
	if s.At.IsZero() {
		v.At = "unknown"
	} else {
		v.At = s.At.UTC().Format("Monday, 2 January 2006 at 15:04 UTC")
	}
	var tb, hb bytes.Buffer
	if err := textTmpl.Execute(&tb, v); err != nil {
		return "", "", err
	}
	if err := htmlTmpl.Execute(&hb, v); err != nil {
		return "", "", err
	}
	return tb.String(), hb.String(), nil
}

// oneLine turns the control characters of s (line breaks, tabs) into
// spaces and trims it: a device name cannot add lines of its own to the
// text part, which could pass for the message's.
func oneLine(s string) string {
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s))
}
