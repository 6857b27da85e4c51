// Package quarantine keeps stopped messages for an administrator, as
// IceWarp's "Quarantine infected messages to email/directory": in a
// directory (Dir), one message file and one JSON record per message, or by
// mail to an address (SMTPDest), the message attached to a short report.
// With attachments-only quarantine, ExtractParts cuts the offending parts
// out of the message, unchanged, into a new message that is kept instead.
package quarantine

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/avstation/avstation/verdict"
)

// Record describes one quarantined message. In a Dir it is the JSON file
// next to the message.
type Record struct {
	// ID names the record: IDLen characters of [0-9a-v], which sort in the
	// order the records were made. It is never taken from the message.
	ID         string           `json:"id"`
	Time       time.Time        `json:"time"`
	QueueID    string           `json:"queue_id,omitempty"`
	JobID      string           `json:"job_id,omitempty"`
	Sender     string           `json:"sender"`
	Recipients []string         `json:"recipients"`
	Lists      []string         `json:"lists,omitempty"`
	Outcome    string           `json:"outcome"` // a verdict.Status: "infected", "encrypted", …
	Verdict    *verdict.Verdict `json:"verdict,omitempty"`
	// Parts are the MIME paths kept when only attachments were
	// quarantined (see ExtractParts); empty when the message is whole.
	Parts []string `json:"parts,omitempty"`
	Size  int64    `json:"size"` // bytes of the kept message
}

// IDLen is the length of a record ID.
const IDLen = 20

// idEncoding is base32hex in lower case: its alphabet is in ASCII order, so
// IDs sort as the times they encode.
var idEncoding = base32.NewEncoding("0123456789abcdefghijklmnopqrstuv").WithPadding(base32.NoPadding)

var idState struct {
	sync.Mutex
	last int64
}

// newID makes an ID from the time in nanoseconds, forced to grow within the
// process so that IDs made in the same nanosecond still differ and sort in
// order, and 32 random bits so that two processes sharing a directory do not
// collide: 96 bits, 20 characters.
func newID(now time.Time) (string, error) {
	ns := now.UnixNano()
	idState.Lock()
	if ns <= idState.last {
		ns = idState.last + 1
	}
	idState.last = ns
	idState.Unlock()
	var b [12]byte
	binary.BigEndian.PutUint64(b[:8], uint64(ns))
	if _, err := rand.Read(b[8:]); err != nil {
		return "", fmt.Errorf("quarantine: new id: %w", err)
	}
	return idEncoding.EncodeToString(b[:]), nil
}

// ValidID reports whether id could be a record ID: 1 to 64 characters of
// [a-z0-9]. Anything else (a path, "..", upper case) is refused before it
// comes near the file system.
func ValidID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
