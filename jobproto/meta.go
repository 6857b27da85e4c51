package jobproto

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"
)

// Meta is what the station knows of a job besides the message: the
// envelope and where it comes from. It travels in the Avs-Meta header, so
// it is kept small.
type Meta struct {
	JobID      string   `json:"job_id"`
	QueueID    string   `json:"queue_id,omitempty"`
	Sender     string   `json:"sender,omitempty"`
	Recipients []string `json:"recipients,omitempty"`
	Lists      []string `json:"lists,omitempty"`
	Client     string   `json:"client,omitempty"`  // SMTP client IP
	Primary    string   `json:"primary,omitempty"` // host name of the sending milter
}

// jobIDAlphabet is Crockford's base32 in lower case: digits first, so that
// ids sort as their time prefix does, and no i, l, o, u to misread.
const jobIDAlphabet = "0123456789abcdefghjkmnpqrstvwxyz"

// NewJobID returns a 20-character id: 10 characters of the time in
// milliseconds, so ids sort by creation time, then 50 random bits.
func NewJobID() string {
	var b [20]byte
	ms := uint64(time.Now().UnixMilli())
	for i := 9; i >= 0; i-- {
		b[i] = jobIDAlphabet[ms&31]
		ms >>= 5
	}
	var r [10]byte
	rand.Read(r[:])
	for i := range r {
		b[10+i] = jobIDAlphabet[r[i]&31]
	}
	return string(b[:])
}

// validJobID: 1-64 of [A-Za-z0-9._-]. Job ids end up in log lines, headers
// and file names on both hosts.
// ValidJobID reports whether id is a job id: 1-64 of [A-Za-z0-9._-], safe as
// a file name.
func ValidJobID(id string) bool { return ValidKeyID(id) }

// LogJobID is the job id a request's Avs-Meta header names, for a log
// line about a request that went wrong before its meta was used; "" when
// there is none or it is not a valid id. It is not authenticated.
func LogJobID(h http.Header) string {
	m, err := decodeMeta(h.Get(HeaderMeta))
	if err != nil {
		return ""
	}
	return m.JobID
}

// encodeMeta is the Avs-Meta value: JSON with every non-ASCII character
// escaped, so the header is plain ASCII whatever proxy carries it.
func encodeMeta(m Meta) (string, error) {
	if !ValidJobID(m.JobID) {
		return "", errors.New("meta: job id must be 1-64 of A-Z a-z 0-9 . _ -")
	}
	b, err := json.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("meta: %w", err)
	}
	return asciiJSON(b), nil
}

// decodeMeta parses an Avs-Meta value. Unknown fields are ignored: a newer
// milter may send more.
func decodeMeta(v string) (Meta, error) {
	var m Meta
	if err := json.Unmarshal([]byte(v), &m); err != nil {
		return Meta{}, fmt.Errorf("meta: %w", err)
	}
	if !ValidJobID(m.JobID) {
		return Meta{}, errors.New("meta: job id must be 1-64 of A-Z a-z 0-9 . _ -")
	}
	return m, nil
}

// asciiJSON rewrites the non-ASCII characters of json.Marshal output as
// \uXXXX escapes. They can only occur inside strings, where the escape
// means the same; json.Marshal has already replaced invalid UTF-8.
func asciiJSON(b []byte) string {
	out := make([]byte, 0, len(b))
	for len(b) > 0 {
		if b[0] < utf8.RuneSelf {
			out = append(out, b[0])
			b = b[1:]
			continue
		}
		r, n := utf8.DecodeRune(b)
		b = b[n:]
		if r > 0xFFFF {
			r -= 0x10000
			out = appendU(out, 0xD800+(r>>10))
			out = appendU(out, 0xDC00+(r&0x3FF))
			continue
		}
		out = appendU(out, r)
	}
	return string(out)
}

func appendU(b []byte, r rune) []byte {
	s := strconv.FormatInt(int64(r), 16)
	b = append(b, `\u`...)
	for i := len(s); i < 4; i++ {
		b = append(b, '0')
	}
	return append(b, s...)
}
