// Package activity is the per-list activity log, one line per event in the
// form LISTSERV writes it, and the report an admin reads from it:
//
//	2026/11/21 14:25:10 VIRUS Trojan:Win32/Phonzy.A!ml job=01m7z… queue=4XyZ file=invoice.zip action=reject
//
// "???" stands where the engine gave no name. The job id leads to the
// station's record of the scan (avstation show JOB-ID).
package activity

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Event types, one per outcome that is not a clean delivery.
const (
	Virus     = "VIRUS"
	Stripped  = "STRIPPED"
	Encrypted = "ENCRYPTED"
	Banned    = "BANNED"
	Limit     = "LIMIT"
	Unscanned = "UNSCANNED"
	Tempfail  = "TEMPFAIL"
)

// Types lists the event types.
var Types = []string{Virus, Stripped, Encrypted, Banned, Limit, Unscanned, Tempfail}

// TimeLayout is LISTSERV's.
const TimeLayout = "2006/01/02 15:04:05"

// Event is one line of a list's log.
type Event struct {
	Time    time.Time `json:"time"`
	List    string    `json:"list"`
	Type    string    `json:"type"`
	Threat  string    `json:"threat"` // "???" when unnamed, for VIRUS and STRIPPED; the detail otherwise
	JobID   string    `json:"job_id,omitempty"`
	QueueID string    `json:"queue_id,omitempty"`
	File    string    `json:"file,omitempty"`
	Action  string    `json:"action,omitempty"`
}

// Log writes events to one file per list in Dir.
type Log struct{ Dir string }

// Write appends the event to its list's file. Each line goes out in one
// write(2) on a file opened O_APPEND, so concurrent writers (several
// avmilter processes) never interleave within a line, and the file is
// opened anew for each line, so rotation needs no signal.
func (l Log) Write(e Event) error {
	if l.Dir == "" {
		return nil
	}
	name, err := l.file(e.List)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if errors.Is(err, fs.ErrNotExist) { // the first event: make the directory
		if err := os.MkdirAll(l.Dir, 0o700); err != nil {
			return fmt.Errorf("activity log: %w", err)
		}
		f, err = os.OpenFile(name, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	}
	if err != nil {
		return fmt.Errorf("activity log: %w", err)
	}
	_, werr := f.Write([]byte(e.Line() + "\n"))
	if err := errors.Join(werr, f.Close()); err != nil {
		return fmt.Errorf("activity log %s: %w", name, err)
	}
	return nil
}

// file is the path of a list's log. A list name is a mail local part or a
// configured name: anything else than letters, digits, '.', '-' and '_'
// is refused, so no name can reach outside Dir.
func (l Log) file(list string) (string, error) {
	if !validList(list) {
		return "", fmt.Errorf("activity log: list name %q cannot be a file name", list)
	}
	return filepath.Join(l.Dir, strings.ToLower(list)+".log"), nil
}

func validList(s string) bool {
	if s == "" || len(s) > 128 || s[0] == '.' {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_' || r == '+') {
			return false
		}
	}
	return true
}

// Line is the event as written.
func (e Event) Line() string {
	var b strings.Builder
	b.WriteString(e.Time.Format(TimeLayout))
	b.WriteString(" " + e.Type + " " + word(e.Threat, "???"))
	for _, kv := range [][2]string{{"job", e.JobID}, {"queue", e.QueueID}, {"file", e.File}, {"action", e.Action}} {
		if kv[1] != "" {
			b.WriteString(" " + kv[0] + "=" + word(kv[1], ""))
		}
	}
	return b.String()
}

// word keeps a value on one line and in one field: quoted when it holds
// spaces, quotes or anything unprintable.
func word(s, empty string) string {
	if s == "" {
		return empty
	}
	for _, r := range s {
		if r <= ' ' || r == '"' || r == 0x7f {
			return strconv.Quote(s)
		}
	}
	return s
}
