package http

import (
	"bytes"
	"embed"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strings"

	"github.com/sessiond/sessiond"
	"github.com/sessiond/sessiond/internal/english"
)

// ReportPath is the path, under the base path, of the "not me" page that
// report links open (docs/design.md, "Security activity").
const ReportPath = "report"

// ReportURL returns the address of the "not me" page, for the Manager's
// ReportURL, to which each link appends ?t=<token>: publicURL's origin,
// then basePath and ReportPath; with no publicURL, the path alone.
func ReportURL(publicURL, basePath string) string {
	origin := ""
	if publicURL != "" {
		if u, err := url.Parse(publicURL); err == nil && u.Host != "" {
			origin = canonicalOrigin(u.Scheme, u.Host)
		}
	}
	if basePath == "" {
		basePath = "/"
	}
	return origin + basePath + ReportPath
}

//go:embed templates/report.html
var reportFiles embed.FS

var reportTemplate = template.Must(template.ParseFS(reportFiles, "templates/report.html"))

// reportCSP lets the page load this origin's stylesheet and icon and post
// its form here, and nothing else: it has no script.
const reportCSP = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; " +
	"frame-ancestors 'none'; base-uri 'none'"

// reportPage is what the template of the "not me" page shows.
type reportPage struct {
	Base  string
	State string // confirm, done or error
	Title string

	// The confirmation: the reported session and the token the form
	// sends back.
	Token                             string
	Device, Name, Location, IPAddress string
	LoginTime, LoginISO               string
	Message, Code                     string
	Internal                          bool // sessiond's own users: they change their password on the page
}

// report serves the "not me" page. GET (and HEAD) shows the session the
// token names and a form, and changes nothing: mail scanners follow links.
// POST, from this origin only (the CSRF rule of cookie requests), ends that
// session, or with everywhere=1 every session of its user. A token that
// does not work, on either method, is answered 400 with a page that says
// why; the token appears on no page but in the form's hidden field, and
// the request log has the path only.
func (s *Server) report(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Cache-Control", "no-store")
	// The address holds the token: the stylesheet and the devices page
	// get the origin alone as Referer, and Origin is still sent with the
	// form (no-referrer would make it "null").
	hdr.Set("Referrer-Policy", "strict-origin")
	hdr.Set("Content-Security-Policy", reportCSP)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Cross-Origin-Opener-Policy", "same-origin")

	if r.Method == http.MethodPost {
		s.reportPost(w, r)
		return
	}
	token := r.URL.Query().Get("t")
	if token == "" {
		s.reportError(w, r, errNoReportToken)
		return
	}
	sess, err := s.Manager.ReportedSession(r.Context(), token)
	if err != nil {
		s.reportError(w, r, err)
		return
	}
	device := sess.Device
	if device == "" {
		device = "Unknown device"
	}
	s.writeReportPage(w, http.StatusOK, &reportPage{
		State: "confirm", Title: "Was this you?", Token: token,
		Device: device, Name: sess.Name, Location: sess.Location, IPAddress: sess.IPAddress,
		LoginTime: sess.CreatedAt.UTC().Format("2 January 2006 at 15:04 UTC"),
		LoginISO:  sess.CreatedAt.UTC().Format("2006-01-02T15:04:05Z"),
	})
}

// errNoReportToken is a report request without its token.
var errNoReportToken = &sessiond.InputError{Field: "t", Message: "is required"}

// reportPost is the form's POST.
func (s *Server) reportPost(w http.ResponseWriter, r *http.Request) {
	if err := s.checkOrigin(r); err != nil {
		s.reportError(w, r, err)
		return
	}
	body, _, err := readBody(w, r, formType)
	if err != nil {
		s.reportError(w, r, err)
		return
	}
	var token, everywhere string
	if err := decodeForm(body, map[string]*string{"t": &token, "everywhere": &everywhere}); err != nil {
		s.reportError(w, r, err)
		return
	}
	if token == "" {
		s.reportError(w, r, errNoReportToken)
		return
	}
	if everywhere != "" && everywhere != "1" {
		s.reportError(w, r, &sessiond.InputError{Field: "everywhere", Message: `must be "1" or absent`})
		return
	}
	n, err := s.Manager.Report(r.Context(), token, everywhere == "1")
	if err != nil {
		s.reportError(w, r, err)
		return
	}
	msg := "That sign-in was signed out."
	if everywhere == "1" {
		msg = "Signed out " + english.Plural(n, "device") + ": every device that was signed in to your account."
	}
	s.writeReportPage(w, http.StatusOK, &reportPage{
		State: "done", Title: "Signed out", Message: msg, Internal: !s.Manager.ExternalUsers(),
	})
}

// reportError answers err on the page: 400 for a link that does not work
// or a malformed request, else the status the error table gives (403 for
// a cross-site POST, 503 for a store that did not answer).
func (s *Server) reportError(w http.ResponseWriter, r *http.Request, err error) {
	p := &reportPage{State: "error", Title: "This link does not work"}
	if errors.Is(err, sessiond.ErrReportInvalid) {
		// The Manager's message says why: not genuine, expired, or
		// the sign-in has ended already.
		why := strings.TrimPrefix(err.Error(), sessiond.ErrReportInvalid.Error()+": ")
		p.Message = "This link cannot sign anything out: " + why + "."
		s.writeReportPage(w, http.StatusBadRequest, p)
		return
	}
	e := s.noteError(w, r, err)
	p.Code = e.code
	switch e.status {
	case http.StatusBadRequest:
		p.Message = "The link is incomplete (" + e.msg + "). Open it again from the e-mail, in full."
	case http.StatusForbidden:
		p.Title = "Request refused"
		p.Message = "This request did not come from this site's own page, so nothing was signed out. Open the link from the e-mail and use the button there."
	case http.StatusServiceUnavailable:
		p.Title = "Try again in a moment"
		p.Message = "The service cannot reach its database right now."
		w.Header().Set("Retry-After", "1")
	default:
		p.Title = "Request refused"
		p.Message = e.msg + "."
	}
	s.writeReportPage(w, e.status, p)
}

// writeReportPage renders p with status.
func (s *Server) writeReportPage(w http.ResponseWriter, status int, p *reportPage) {
	p.Base = s.base()
	var buf bytes.Buffer
	if err := reportTemplate.Execute(&buf, p); err != nil {
		// The template is fixed at build time and its data are strings.
		panic("http: render the report page: " + err.Error())
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}
