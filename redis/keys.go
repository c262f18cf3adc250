package redis

import (
	"strings"

	"github.com/sessiond/sessiond"
)

// Keys (see the package documentation for the layout). User ids, session
// ids and limiter keys are percent-encoded by encodeID: every byte outside
// the RFC 3986 unreserved set A-Z a-z 0-9 - . _ ~ becomes %XX (upper-case
// hex). So `{`, `}`, `:`, `%`, spaces, control characters and non-ASCII can
// neither end the hash tag early nor make two ids share a key, and the
// base64url ids sessiond generates are kept as they are (short keys, no
// allocation).

const keyPrefix = "sd:{u:"

// SessionKey returns the Redis key of session id of userID. It is built
// on every Get; ids that need no escaping (all that sessiond makes) cost
// one allocation, the key itself.
func SessionKey(userID, id string) string {
	return keyPrefix + encodeID(userID) + "}:s:" + encodeID(id)
}

// IndexKey returns the Redis key of userID's session index.
func IndexKey(userID string) string {
	return keyPrefix + encodeID(userID) + "}:idx"
}

// EventsChannel returns the sharded pub/sub channel of userID's events.
func EventsChannel(userID string) string {
	return keyPrefix + encodeID(userID) + "}:events"
}

// LimiterKey returns the Redis key of the throttle counter key. The hash
// tag is the key's group (its part before sessiond.GroupSep), so that the counters a Take
// checks together share a Cluster slot and one script sees them all.
func LimiterKey(key string) string {
	group, rest, ok := strings.Cut(key, sessiond.GroupSep)
	if !ok {
		return "sd:rl:{" + encodeID(key) + "}"
	}
	return "sd:rl:{" + encodeID(group) + "}:" + encodeID(rest)
}

// userKeys returns the index key and the prefix of session keys of userID,
// which the scripts complete with encoded session ids.
func userKeys(userID string) (idx, sessionPrefix string) {
	tag := keyPrefix + encodeID(userID) + "}:"
	return tag + "idx", tag + "s:"
}

// isUnreserved[c] reports whether byte c is kept as it is.
var isUnreserved = func() (t [256]bool) {
	for c := range t {
		t[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '_' || c == '.' || c == '~'
	}
	return t
}()

// escapes returns how many bytes of s encodeID escapes.
func escapes(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		if !isUnreserved[s[i]] {
			n++
		}
	}
	return n
}

// encodeID percent-encodes every byte of s outside the unreserved set.
func encodeID(s string) string {
	n := escapes(s)
	if n == 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 2*n)
	writeID(&b, s)
	return b.String()
}

// writeID writes s to b, percent-encoded.
func writeID(b *strings.Builder, s string) {
	const hexDigits = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isUnreserved[c] {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
}

// decodeID reverses encodeID. Malformed escapes are kept as they are (they
// cannot come from encodeID).
func decodeID(s string) string {
	if strings.IndexByte(s, '%') < 0 {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if ok1 && ok2 {
				b = append(b, hi<<4|lo)
				i += 2
				continue
			}
		}
		b = append(b, s[i])
	}
	return string(b)
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// HandoffKey returns the Redis key of the handoff record of a code's hash.
// Its hash tag is the code hash itself: the one who redeems a code knows
// nothing else, not even the user, so the record cannot live in the
// user's slot.
func HandoffKey(codeHash string) string {
	return "sd:ho:{" + encodeID(codeHash) + "}"
}

// userTag returns the start of every key of userID: the prefix and the
// user's hash tag.
func userTag(userID string) string {
	return keyPrefix + encodeID(userID) + "}:"
}

// ActivityKey returns the Redis key of userID's security history.
func ActivityKey(userID string) string { return userTag(userID) + "act" }

// SeenKey returns the Redis key of the devices and countries userID signed
// in from.
func SeenKey(userID string) string { return userTag(userID) + "seen" }

// QueueKey returns the Redis key of the order of userID's messages in
// queue.
func QueueKey(userID, queue string) string { return userTag(userID) + "q:" + encodeID(queue) }

// MessagesKey returns the Redis key of userID's messages in queue.
func MessagesKey(userID, queue string) string { return userTag(userID) + "qm:" + encodeID(queue) }

// LeaseKey returns the Redis key of the lease of userID's queue.
func LeaseKey(userID, queue string) string { return userTag(userID) + "ql:" + encodeID(queue) }

// DueKey returns the Redis key of the users due in queue. It has a slot of
// its own: every user of the queue is in it.
func DueKey(queue string) string { return "sd:due:{" + encodeID(queue) + "}" }

// UnmarkKey returns the Redis key of the users of queue whose due mark a
// Pending that found their queue empty is about to remove, in the slot of
// DueKey(queue).
func UnmarkKey(queue string) string { return DueKey(queue) + ":unmark" }
