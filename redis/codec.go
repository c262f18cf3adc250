package redis

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/redis/rueidis"

	"github.com/sessiond/sessiond"
)

// A session hash has one-letter field names and keeps every value as
// compact as it can be without losing it, so that it stays a listpack
// (every value under hash-max-listpack-value, 64 bytes) and, for a typical
// session, fits a 112- or 128-byte allocation instead of a 160-byte one:
//
//	p  packed record, binary (see below)
//	d  DeviceID as bytes, when it is lower-case hex
//	e  DeviceID as bytes, when it is canonical unpadded base64url
//	D  DeviceID as text otherwise
//	v  Device
//	C  DeviceClass as text when it is not a known class
//	n  Name
//	I  IPAddress as text when it is not a canonical address
//	l  Location
//	g  Generation, decimal (Redis stores it as an integer)
//	c  Claims, compact JSON (up to sessiond.ClaimsLimit bytes: a session
//	   with claims over 64 bytes is a hashtable, not a listpack)
//
// The record p holds what has a fixed size, because one field costs 5
// bytes of listpack overhead besides its value and a unix ms integer costs
// 9 bytes where 6 suffice:
//
//	0-23  CreatedAt, LastActive, ExpiresAt, RotatedAt: unix ms, each a
//	      48-bit two's complement big-endian integer (about 4,400 years
//	      either side of 1970; ms clamps others). The scripts read and
//	      rewrite them with Lua's struct library ('>i6i6i6i6').
//	24    DeviceClass code (classes), or classText when field C has it
//	25-   IPAddress as 4 or 16 bytes, or nothing when field I has it
//
// Empty strings are not stored. The user id and session id are in the key.
const (
	fRecord = iota
	fDevHex
	fDevB64
	fDevRaw
	fDevice
	fClassRaw
	fName
	fIPRaw
	fLocation
	fGeneration
	fClaims
	nFields
)

// fieldNames lists the hash fields in the order in which every read
// (HMGET, and the scripts) returns them.
var fieldNames = [nFields]string{"p", "d", "e", "D", "v", "C", "n", "I", "l", "g", "c"}

// Offsets in the record.
const (
	recTimes = 24 // four 6-byte times
	recClass = recTimes
	recIP    = recClass + 1
)

// classes numbers the known device classes; the codes are stored, so
// they never change.
var classes = [...]string{
	sessiond.ClassUnknown,
	sessiond.ClassDesktop,
	sessiond.ClassMobile,
	sessiond.ClassTablet,
	sessiond.ClassCLI,
	sessiond.ClassBot,
}

// classText is the class byte of a record whose class is in field C.
const classText = 0xff

// Unix ms outside (-2^47, 2^47) do not fit a record's 48 bits.
const maxMS = 1<<47 - 1

// ms returns t in unix ms, clamped to what a record can hold; no session
// lives until the year 6000.
func ms(t time.Time) string { return strconv.FormatInt(unixMS(t), 10) }

func unixMS(t time.Time) int64 { return max(-maxMS, min(t.UnixMilli(), maxMS)) }

// indexScore returns the score of a session that expires at t in its
// user's index: unix seconds, rounded up. Whole seconds take 4 fewer bytes
// per member than ms, and the index needs no more: the session key itself
// expires at the exact ms, the index at most a second later, and the
// scripts skip members whose session is gone.
func indexScore(t time.Time) string {
	n := unixMS(t)
	s := n / 1000
	if n%1000 > 0 {
		s++
	}
	return strconv.FormatInt(s, 10)
}

func put48(b []byte, v int64) {
	for i := 5; i >= 0; i-- {
		b[i] = byte(v)
		v >>= 8
	}
}

func get48(b string) int64 {
	_ = b[5]
	v := int64(b[0])<<40 | int64(b[1])<<32 | int64(b[2])<<24 | int64(b[3])<<16 | int64(b[4])<<8 | int64(b[5])
	return v << 16 >> 16 // sign-extend
}

// encodeDeviceID returns the field and value that store id; equal ids
// always give equal pairs, so the create script can compare them.
func encodeDeviceID(id string) (field, value string) {
	if id == "" {
		return "", ""
	}
	if len(id)%2 == 0 && isLowerHex(id) {
		b, _ := hex.DecodeString(id)
		return fieldNames[fDevHex], string(b)
	}
	if b, err := base64.RawURLEncoding.DecodeString(id); err == nil && base64.RawURLEncoding.EncodeToString(b) == id {
		return fieldNames[fDevB64], string(b)
	}
	return fieldNames[fDevRaw], id
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// ipBytes returns ip as 4 or 16 bytes, or nil when that would not give
// back the same text.
func ipBytes(ip string) []byte {
	if a, err := netip.ParseAddr(ip); err == nil && a.Zone() == "" && a.String() == ip {
		return a.AsSlice()
	}
	return nil
}

// encodeSession returns the field, value pairs of the hash of s.
func encodeSession(s *sessiond.Session) []string {
	ip := ipBytes(s.IPAddress)
	rec := make([]byte, recIP, recIP+len(ip))
	for i, t := range [4]time.Time{s.CreatedAt, s.LastActive, s.ExpiresAt, s.RotatedAt} {
		put48(rec[6*i:], unixMS(t))
	}
	rec[recClass] = classText
	if code := slices.Index(classes[:], s.DeviceClass); code >= 0 {
		rec[recClass] = byte(code)
	}
	rec = append(rec, ip...)

	kv := make([]string, 0, 2*8)
	add := func(f, v string) {
		if f != "" && v != "" {
			kv = append(kv, f, v)
		}
	}
	add(fieldNames[fRecord], string(rec))
	add(encodeDeviceID(s.DeviceID))
	add(fieldNames[fDevice], s.Device)
	if rec[recClass] == classText {
		add(fieldNames[fClassRaw], s.DeviceClass)
	}
	add(fieldNames[fName], s.Name)
	if ip == nil {
		add(fieldNames[fIPRaw], s.IPAddress)
	}
	add(fieldNames[fLocation], s.Location)
	add(fieldNames[fGeneration], strconv.FormatUint(s.Generation, 10))
	add(fieldNames[fClaims], string(s.Claims))
	return kv
}

var errCorrupt = errors.New("malformed session hash")

// hashValues holds the values of a session hash in fieldNames order;
// bit i of has says whether field i exists.
type hashValues struct {
	v   [nFields]string
	has uint16
}

func (h *hashValues) set(i int, v string) {
	h.v[i] = v
	h.has |= 1 << i
}

func (h *hashValues) ok(i int) bool { return h.has&(1<<i) != 0 }

// decodeSession builds the session from vals, the nFields values in
// fieldNames order as HMGET returns them. It returns ok false when the
// hash does not exist.
func decodeSession(userID, id string, vals []rueidis.RedisMessage) (*sessiond.Session, bool, error) {
	if len(vals) != nFields {
		return nil, false, errCorrupt
	}
	var h hashValues
	for i := range vals {
		if vals[i].IsNil() {
			continue
		}
		if v, err := vals[i].ToString(); err == nil {
			h.set(i, v)
		}
	}
	return decodeFields(userID, id, &h)
}

// decodeFields builds the session from the values of its hash. It is on
// the path of every authenticated request (a cached Get), so it allocates
// the session and one string for the DeviceID and IPAddress it turns back
// into text, and nothing else.
func decodeFields(userID, id string, h *hashValues) (*sessiond.Session, bool, error) {
	if !h.ok(fRecord) {
		return nil, false, nil
	}
	rec := h.v[fRecord]
	if len(rec) < recIP {
		return nil, false, errCorrupt
	}
	gen, err := strconv.ParseUint(h.v[fGeneration], 10, 64)
	if err != nil {
		return nil, false, errCorrupt
	}
	class := h.v[fClassRaw]
	if c := rec[recClass]; c != classText {
		if int(c) >= len(classes) {
			return nil, false, errCorrupt
		}
		class = classes[c]
	}

	// text holds the DeviceID, then the IPAddress, when the hash has them
	// as bytes, so both cost one string; a SHA-256 device id (64 hex or 43
	// base64url digits) and an IPv6 address fit buf.
	var buf [128]byte
	text := buf[:0]
	devBytes := true
	switch {
	case h.ok(fDevHex):
		text = appendHex(text, h.v[fDevHex])
	case h.ok(fDevB64):
		text = base64.RawURLEncoding.AppendEncode(text, []byte(h.v[fDevB64]))
	default:
		devBytes = false
	}
	nDev := len(text)
	switch b := rec[recIP:]; len(b) {
	case 0:
	case 4:
		var a [4]byte
		copy(a[:], b)
		text = netip.AddrFrom4(a).AppendTo(text)
	case 16:
		var a [16]byte
		copy(a[:], b)
		text = netip.AddrFrom16(a).AppendTo(text)
	default:
		return nil, false, errCorrupt
	}
	str := string(text)
	devID, ip := h.v[fDevRaw], h.v[fIPRaw]
	if devBytes {
		devID = str[:nDev]
	}
	if len(str) > nDev {
		ip = str[nDev:]
	}

	var claims json.RawMessage
	if h.ok(fClaims) {
		claims = json.RawMessage(h.v[fClaims])
	}
	return &sessiond.Session{
		Claims:      claims,
		ID:          id,
		UserID:      userID,
		DeviceID:    devID,
		Device:      h.v[fDevice],
		DeviceClass: class,
		Name:        h.v[fName],
		IPAddress:   ip,
		Location:    h.v[fLocation],
		CreatedAt:   recTime(rec, 0),
		LastActive:  recTime(rec, 1),
		ExpiresAt:   recTime(rec, 2),
		RotatedAt:   recTime(rec, 3),
		Generation:  gen,
	}, true, nil
}

// recTime returns time i (0 CreatedAt, 1 LastActive, 2 ExpiresAt, 3
// RotatedAt) of record rec.
func recTime(rec string, i int) time.Time { return time.UnixMilli(get48(rec[6*i:])).UTC() }

// hexPairs[b] is the two lower-case hex digits of byte b, big-endian.
var hexPairs = func() (t [256]uint16) {
	const digits = "0123456789abcdef"
	for b := range t {
		t[b] = uint16(digits[b>>4])<<8 | uint16(digits[b&15])
	}
	return t
}()

// appendHex appends the lower-case hex digits of b to dst.
func appendHex(dst []byte, b string) []byte {
	n := len(dst)
	dst = slices.Grow(dst, 2*len(b))[:n+2*len(b)]
	out := dst[n:]
	for i := 0; i < len(b); i++ {
		binary.BigEndian.PutUint16(out[2*i:], hexPairs[b[i]])
	}
	return dst
}
