package http

import (
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/sessiond/sessiond"
)

// The answer of GET /api/v1/me, the hottest authenticated endpoint, is
// written by appending to a pooled buffer instead of by encoding/json: a
// CPU profile of the server under a /me load showed json.Marshal of the
// envelope (reflection through Data's interface) and the three time
// strings taking about half of the handler's own time, and the
// throughput target of /me is a ratio to the JWKS, which does neither.
// The bytes are exactly those writeJSON would write (mejson_test.go
// checks it); any string that needs escaping is handed to encoding/json.

var jsonBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// writeMe answers /me: what writeJSON(w, 200, "ok", {user, session})
// writes. A nil u is a user of the app's own, shown as {id} only
// (docs/design.md, "The app's own users").
func writeMe(w http.ResponseWriter, u *userJSON, sess *sessiond.Session) {
	bp := jsonBuffers.Get().(*[]byte)
	b, ok := appendMe((*bp)[:0], u, sess)
	if !ok {
		// Claims that are not JSON: encoding/json says what to answer.
		writeJSON(w, http.StatusOK, "ok", meJSON(u, sess))
	} else {
		setJSONHeaders(w.Header())
		w.WriteHeader(http.StatusOK)
		w.Write(b)
	}
	if cap(b) <= 64<<10 {
		*bp = b[:0]
		jsonBuffers.Put(bp)
	}
}

// meJSON is the data of /me as encoding/json encodes it; writeMe's bytes
// are the same.
func meJSON(u *userJSON, sess *sessiond.Session) any {
	type me struct {
		User    any         `json:"user"`
		Session sessionJSON `json:"session"`
	}
	if u == nil {
		return me{appUserJSON{ID: sess.UserID}, newSessionJSON(sess, sess.ID)}
	}
	return me{*u, newSessionJSON(sess, sess.ID)}
}

func appendMe(b []byte, u *userJSON, sess *sessiond.Session) ([]byte, bool) {
	b = append(b, `{"status":"success","status_code":200,"message":"ok","data":{"user":{"id":`...)
	if u == nil {
		b = appendJSONString(b, sess.UserID)
	} else {
		b = appendJSONString(b, u.ID)
		b = append(b, `,"username":`...)
		b = appendJSONString(b, u.Username)
		b = append(b, `,"email":`...)
		b = appendJSONString(b, u.Email)
		b = append(b, `,"created_at":`...)
		b = appendJSONString(b, u.CreatedAt)
	}
	b = append(b, `},"session":`...)
	b, ok := appendSessionJSON(b, sess, sess.ID)
	return append(b, "}}\n"...), ok
}

// appendSessionJSON appends what json.Marshal(newSessionJSON(s, currentID))
// returns; false when the session's claims are not JSON (json.Marshal
// fails then).
func appendSessionJSON(b []byte, s *sessiond.Session, currentID string) ([]byte, bool) {
	b = append(b, `{"id":`...)
	b = appendJSONString(b, s.ID)
	b = append(b, `,"device":`...)
	b = appendJSONString(b, s.Device)
	b = append(b, `,"device_class":`...)
	b = appendJSONString(b, s.Class())
	b = append(b, `,"name":`...)
	b = appendJSONString(b, s.Name)
	b = append(b, `,"ip_address":`...)
	b = appendJSONString(b, s.IPAddress)
	b = append(b, `,"location":`...)
	b = appendJSONString(b, s.Location)
	// Formatted times are digits and "-:T.Z+": nothing to escape.
	b = append(b, `,"login_time":"`...)
	b = appendTime(b, s.CreatedAt)
	b = append(b, `","last_active":"`...)
	b = appendTime(b, s.LastActive)
	b = append(b, `","expires_at":"`...)
	b = appendTime(b, s.ExpiresAt)
	if s.ID == currentID {
		b = append(b, `","current":true,"claims":`...)
	} else {
		b = append(b, `","current":false,"claims":`...)
	}
	b, ok := appendClaims(b, s.Claims)
	return append(b, '}'), ok
}

// appendClaims appends claims as encoding/json writes a json.RawMessage
// (compacted, with <, >, & and U+2028/U+2029 escaped), or {} for none.
// Claims are kept compact (sessiond.CheckClaims), so those without
// whitespace or such characters are copied as they are.
func appendClaims(b []byte, c json.RawMessage) ([]byte, bool) {
	if len(c) == 0 {
		return append(b, "{}"...), true
	}
	for _, x := range c {
		if x <= ' ' || x >= 0x80 || x == '<' || x == '>' || x == '&' {
			q, err := json.Marshal(c)
			if err != nil {
				return b, false
			}
			return append(b, q...), true
		}
	}
	return append(b, c...), true
}

// appendTime appends formatTime(t) without parsing the layout each time
// (AppendFormat did, three times per answer).
func appendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.AppendFormat(b, timeFormat)
	}
	hour, minute, sec := t.Clock()
	b = appendDigits(b, year, 4)
	b = append(b, '-')
	b = appendDigits(b, int(month), 2)
	b = append(b, '-')
	b = appendDigits(b, day, 2)
	b = append(b, 'T')
	b = appendDigits(b, hour, 2)
	b = append(b, ':')
	b = appendDigits(b, minute, 2)
	b = append(b, ':')
	b = appendDigits(b, sec, 2)
	b = append(b, '.')
	b = appendDigits(b, t.Nanosecond()/1e6, 3)
	return append(b, 'Z')
}

// appendDigits appends v (>= 0) in decimal, zero-padded to width digits.
func appendDigits(b []byte, v, width int) []byte {
	var d [4]byte
	for i := width - 1; i >= 0; i-- {
		d[i] = byte('0' + v%10)
		v /= 10
	}
	return append(b, d[:width]...)
}

// appendJSONString appends s as encoding/json writes it: printable ASCII
// without '"', '\\', '<', '>' and '&' as is, anything else through
// encoding/json itself (escapes, HTML-safe forms, U+2028, invalid UTF-8).
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
