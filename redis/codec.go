package redis

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/netip"
	"strconv"
	"time"

	"github.com/redis/rueidis"

	"github.com/sessiond/sessiond"
)

// A session hash has one-letter field names and keeps every value as
// compact as it can be without losing it, so that small hashes stay
// listpack-encoded and Redis stores numbers as integers:
//
//	d  DeviceID as bytes, when it is lower-case hex
//	e  DeviceID as bytes, when it is canonical unpadded base64url
//	D  DeviceID as text otherwise
//	v  Device
//	c  DeviceClass as a small integer (classCodes)
//	C  DeviceClass as text when it is not a known class
//	n  Name
//	i  IPAddress as 4 or 16 bytes, when it is a canonical address
//	I  IPAddress as text otherwise
//	l  Location
//	t  CreatedAt, unix ms
//	a  LastActive, unix ms
//	x  ExpiresAt, unix ms (the key also expires then)
//	g  Generation
//	r  RotatedAt, unix ms
//
// Empty strings are not stored. The user id and session id are in the key.
const (
	fDevHex = iota
	fDevB64
	fDevRaw
	fDevice
	fClass
	fClassRaw
	fName
	fIP
	fIPRaw
	fLocation
	fCreated
	fLastActive
	fExpires
	fGeneration
	fRotated
	nFields
)

// fieldNames lists the hash fields in the order in which every read
// (HMGET, and the scripts) returns them.
var fieldNames = [nFields]string{"d", "e", "D", "v", "c", "C", "n", "i", "I", "l", "t", "a", "x", "g", "r"}

// classCodes numbers the known device classes; the codes are stored, so
// they never change.
var classCodes = map[string]string{
	sessiond.ClassUnknown: "0",
	sessiond.ClassDesktop: "1",
	sessiond.ClassMobile:  "2",
	sessiond.ClassTablet:  "3",
	sessiond.ClassCLI:     "4",
	sessiond.ClassBot:     "5",
}

var classNames = map[string]string{
	"0": sessiond.ClassUnknown,
	"1": sessiond.ClassDesktop,
	"2": sessiond.ClassMobile,
	"3": sessiond.ClassTablet,
	"4": sessiond.ClassCLI,
	"5": sessiond.ClassBot,
}

func ms(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

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

// encodeIP returns the field and value that store ip.
func encodeIP(ip string) (field, value string) {
	if ip == "" {
		return "", ""
	}
	if a, err := netip.ParseAddr(ip); err == nil && a.Zone() == "" && a.String() == ip {
		return fieldNames[fIP], string(a.AsSlice())
	}
	return fieldNames[fIPRaw], ip
}

// encodeSession returns the field, value pairs of the hash of s.
func encodeSession(s *sessiond.Session) []string {
	kv := make([]string, 0, 2*11)
	add := func(f, v string) {
		if f != "" && v != "" {
			kv = append(kv, f, v)
		}
	}
	add(encodeDeviceID(s.DeviceID))
	add(fieldNames[fDevice], s.Device)
	if code, ok := classCodes[s.DeviceClass]; ok {
		add(fieldNames[fClass], code)
	} else {
		add(fieldNames[fClassRaw], s.DeviceClass)
	}
	add(fieldNames[fName], s.Name)
	add(encodeIP(s.IPAddress))
	add(fieldNames[fLocation], s.Location)
	add(fieldNames[fCreated], ms(s.CreatedAt))
	add(fieldNames[fLastActive], ms(s.LastActive))
	add(fieldNames[fExpires], ms(s.ExpiresAt))
	add(fieldNames[fGeneration], strconv.FormatUint(s.Generation, 10))
	add(fieldNames[fRotated], ms(s.RotatedAt))
	return kv
}

var errCorrupt = errors.New("malformed session hash")

// decodeSession builds the session from vals, the nFields values in
// fieldNames order as HMGET returns them. It returns ok false when the
// hash does not exist (no CreatedAt field).
func decodeSession(userID, id string, vals []rueidis.RedisMessage) (*sessiond.Session, bool, error) {
	if len(vals) != nFields {
		return nil, false, errCorrupt
	}
	return decodeFields(userID, id, func(i int) (string, bool) {
		v, err := vals[i].ToString()
		return v, err == nil
	})
}

// decodeFields builds the session from get, which returns field i (in
// fieldNames order) and whether it is present.
func decodeFields(userID, id string, get func(i int) (string, bool)) (s *sessiond.Session, ok bool, err error) {
	str := func(i int) string {
		v, _ := get(i)
		return v
	}
	has := func(i int) bool {
		_, ok := get(i)
		return ok
	}
	num := func(i int) (int64, error) {
		v, ok := get(i)
		if !ok {
			return 0, errCorrupt
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, errCorrupt
		}
		return n, nil
	}
	if !has(fCreated) {
		return nil, false, nil
	}
	s = &sessiond.Session{
		ID:       id,
		UserID:   userID,
		Device:   str(fDevice),
		Name:     str(fName),
		Location: str(fLocation),
	}
	switch {
	case has(fDevHex):
		s.DeviceID = hexString(str(fDevHex))
	case has(fDevB64):
		s.DeviceID = base64.RawURLEncoding.EncodeToString([]byte(str(fDevB64)))
	default:
		s.DeviceID = str(fDevRaw)
	}
	if c := str(fClass); c != "" {
		s.DeviceClass = classNames[c]
	} else {
		s.DeviceClass = str(fClassRaw)
	}
	if b := str(fIP); b != "" {
		a, ok := netip.AddrFromSlice([]byte(b))
		if !ok {
			return nil, false, errCorrupt
		}
		s.IPAddress = a.String()
	} else {
		s.IPAddress = str(fIPRaw)
	}
	var t [4]int64
	for i, f := range [4]int{fCreated, fLastActive, fExpires, fRotated} {
		if t[i], err = num(f); err != nil {
			return nil, false, err
		}
	}
	s.CreatedAt = time.UnixMilli(t[0]).UTC()
	s.LastActive = time.UnixMilli(t[1]).UTC()
	s.ExpiresAt = time.UnixMilli(t[2]).UTC()
	s.RotatedAt = time.UnixMilli(t[3]).UTC()
	g, _ := get(fGeneration)
	if s.Generation, err = strconv.ParseUint(g, 10, 64); err != nil {
		return nil, false, errCorrupt
	}
	return s, true, nil
}

// hexString is hex.EncodeToString without the intermediate copies.
func hexString(b string) string {
	var buf [64]byte
	if 2*len(b) > len(buf) {
		return hex.EncodeToString([]byte(b))
	}
	for i := 0; i < len(b); i++ {
		buf[2*i] = "0123456789abcdef"[b[i]>>4]
		buf[2*i+1] = "0123456789abcdef"[b[i]&15]
	}
	return string(buf[:2*len(b)])
}
