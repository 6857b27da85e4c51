// Package notice marks the mail avmilter sends itself (quarantine reports
// and notifications) so that the milter can tell it from any other mail and
// let it through unscanned, once, without a bearer secret in the mail.
//
// The mark is the value of the X-Avstation-Notice header:
//
//	KIND v1 UNIXTIME MAC
//
// KIND is what the notice is ("notification", "quarantine"), and MAC the
// HMAC-SHA256, under a key that never leaves the avmilter process, of the
// kind, the time, the message's own Message-ID, its envelope recipients and
// the SHA-256 of its body (see BodyHash). A copy of the mark proves nothing
// about other content, other recipients or another Message-ID; the Guard
// accepts each Message-ID once and only for a short while after it was
// signed, so the notice itself cannot be replayed either. Anyone who
// receives a notice learns only a MAC that is good for nothing else.
//
// The key is made at random when the process starts and kept in memory: a
// notice comes back through the MTA while the milter that sent it is still
// deciding the message it is about, so no other process needs it. A notice
// marked by another avmilter process (another host, or before a restart)
// is scanned like any other mail.
package notice

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

const version = "v1"

// Errors of Verify and Guard.Accept, wrapped with a detail that never holds
// the key or a MAC.
var (
	ErrMalformed = errors.New("malformed notice mark")
	ErrSignature = errors.New("notice mark does not match this message")
	ErrExpired   = errors.New("notice mark expired")
	ErrReplayed  = errors.New("notice already let through once")
	ErrFull      = errors.New("too many notices in flight")
)

// Key signs and checks marks. The zero Key is not usable: call NewKey.
type Key struct{ secret []byte }

// NewKey makes a random key, for the life of the process.
func NewKey() *Key {
	k := &Key{secret: make([]byte, 32)}
	rand.Read(k.secret) // never fails (crypto/rand since Go 1.24)
	return k
}

// Message is what a mark is bound to.
type Message struct {
	MessageID  string   // the Message-ID header's value, as written
	Recipients []string // envelope recipients (RCPT TO), in any order
	Body       [32]byte // BodyHash of the body
}

// Mark returns the header value that marks msg as a notice of kind, made
// at t. kind must be a lower-case word.
func (k *Key) Mark(kind string, msg Message, t time.Time) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return strings.Join([]string{kind, version, ts, hex.EncodeToString(k.mac(kind, ts, msg))}, " ")
}

// Stamp is a verified mark.
type Stamp struct {
	Kind      string
	Time      time.Time
	MessageID string // canonical: without whitespace
}

// Verify checks a mark against the message that carries it. Whitespace
// between the fields may be any, so that a value the MTA folded verifies.
// The time is not checked here (see Guard).
func (k *Key) Verify(value string, msg Message) (Stamp, error) {
	f := strings.Fields(value)
	if len(f) != 4 || f[1] != version || !isWord(f[0]) {
		return Stamp{}, fmt.Errorf("%w: want \"KIND %s TIME MAC\"", ErrMalformed, version)
	}
	kind, ts, sig := f[0], f[2], f[3]
	unix, ok := parseUnix(ts)
	if !ok {
		return Stamp{}, fmt.Errorf("%w: bad time", ErrMalformed)
	}
	mac, err := hex.DecodeString(sig)
	if err != nil || len(mac) != sha256.Size || sig != strings.ToLower(sig) {
		return Stamp{}, fmt.Errorf("%w: MAC is not %d hex digits", ErrMalformed, 2*sha256.Size)
	}
	id := canonicalID(msg.MessageID)
	if id == "" {
		return Stamp{}, fmt.Errorf("%w: the message has no Message-ID", ErrMalformed)
	}
	if !hmac.Equal(mac, k.mac(kind, ts, msg)) {
		return Stamp{}, fmt.Errorf("%w: another Message-ID, recipients or body, or not our key", ErrSignature)
	}
	return Stamp{Kind: kind, Time: time.Unix(unix, 0), MessageID: id}, nil
}

// canonical is what a MAC signs. Every field is free of newlines: the kind
// is a word, the time digits, the Message-ID has its whitespace removed and
// the recipients and body are hex digests.
func canonical(kind, ts string, msg Message) string {
	return "avstation-notice\n" + version + "\n" + kind + "\n" + ts + "\n" + canonicalID(msg.MessageID) + "\n" +
		hex.EncodeToString(recipientsSum(msg.Recipients)) + "\n" + hex.EncodeToString(msg.Body[:])
}

func (k *Key) mac(kind, ts string, msg Message) []byte {
	m := hmac.New(sha256.New, k.secret)
	m.Write([]byte(canonical(kind, ts, msg)))
	return m.Sum(nil)
}

// canonicalID drops whitespace, which folding may add or remove.
func canonicalID(id string) string { return strings.Join(strings.Fields(id), "") }

// recipientsSum digests the recipients as a set: without <> and spaces, in
// lower case, sorted, each once. The MTA passes RCPT TO to the milter as the
// submitter wrote it.
func recipientsSum(rcpts []string) []byte {
	set := make([]string, 0, len(rcpts))
	for _, r := range rcpts {
		set = append(set, strings.ToLower(strings.Trim(strings.TrimSpace(r), "<>")))
	}
	slices.Sort(set)
	set = slices.Compact(set)
	s := sha256.Sum256([]byte(strings.Join(set, "\n")))
	return s[:]
}

func isWord(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 'a' || s[i] > 'z' {
			return false
		}
	}
	return true
}

// parseUnix accepts plain decimal digits only: one value, one spelling.
func parseUnix(v string) (int64, bool) {
	if v == "" || len(v) > 18 {
		return 0, false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil
}
