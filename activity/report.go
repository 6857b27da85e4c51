package activity

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ParseLine reads one line of a list's log.
func ParseLine(list, line string) (Event, error) {
	if len(line) < len(TimeLayout)+2 {
		return Event{}, errors.New("line too short")
	}
	t, err := time.ParseInLocation(TimeLayout, line[:len(TimeLayout)], time.Local)
	if err != nil {
		return Event{}, fmt.Errorf("time: %w", err)
	}
	fields, err := splitWords(line[len(TimeLayout)+1:])
	if err != nil {
		return Event{}, err
	}
	if len(fields) < 2 || !slices.Contains(Types, fields[0]) {
		return Event{}, fmt.Errorf("no event type in %q", line)
	}
	e := Event{Time: t, List: list, Type: fields[0], Threat: fields[1]}
	for _, f := range fields[2:] {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "job":
			e.JobID = v
		case "queue":
			e.QueueID = v
		case "file":
			e.File = v
		case "action":
			e.Action = v
		}
	}
	return e, nil
}

// splitWords splits on spaces, keeping "quoted values" (as word writes
// them, also after key=) whole.
func splitWords(s string) ([]string, error) {
	var out []string
	for s = strings.TrimLeft(s, " "); s != ""; s = strings.TrimLeft(s, " ") {
		prefix := ""
		if i := strings.IndexAny(s, `= "`); i >= 0 && s[i] == '=' && i+1 < len(s) && s[i+1] == '"' {
			prefix, s = s[:i+1], s[i+1:]
		}
		if s[0] == '"' {
			q, err := strconv.QuotedPrefix(s)
			if err != nil {
				return nil, fmt.Errorf("bad quoting in %q", s)
			}
			v, _ := strconv.Unquote(q)
			out = append(out, prefix+v)
			s = s[len(q):]
			continue
		}
		end := strings.IndexByte(s, ' ')
		if end < 0 {
			end = len(s)
		}
		out = append(out, prefix+s[:end])
		s = s[end:]
	}
	return out, nil
}

// Query selects events of one list.
type Query struct {
	List         string
	Type         string    // "" for all
	Since, Until time.Time // zero: open
}

// ErrNoList is returned for a list that has no log.
var ErrNoList = errors.New("no activity log for this list")

// Report reads the events of a list that match q, oldest first. Lines
// that cannot be read are counted in bad, not fatal: a report is still
// useful with one torn line in it.
func (l Log) Report(q Query) (events []Event, bad int, err error) {
	name, err := l.file(q.List)
	if err != nil {
		return nil, 0, err
	}
	f, err := os.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		known, _ := l.Lists()
		return nil, 0, fmt.Errorf("%w: %q (lists with a log in %s: %s)", ErrNoList, q.List, l.Dir, strings.Join(known, ", "))
	}
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	return scan(f, q)
}

func scan(r io.Reader, q Query) (events []Event, bad int, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		e, err := ParseLine(q.List, sc.Text())
		if err != nil {
			bad++
			continue
		}
		if q.Type != "" && e.Type != q.Type || !q.Since.IsZero() && e.Time.Before(q.Since) || !q.Until.IsZero() && !e.Time.Before(q.Until) {
			continue
		}
		events = append(events, e)
	}
	return events, bad, sc.Err()
}

// Lists names the lists that have a log.
func (l Log) Lists() ([]string, error) {
	names, err := filepath.Glob(filepath.Join(l.Dir, "*.log"))
	var out []string
	for _, n := range names {
		out = append(out, strings.TrimSuffix(filepath.Base(n), ".log"))
	}
	return out, err
}

// ParseTime reads a --since or --until value: 2026-11-21, 2026-11-21T14:00,
// 2026-11-21 14:00:05, 2026/11/21 14:25:10 or RFC 3339, local time unless
// a zone is given.
func ParseTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02", TimeLayout, "2006/01/02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a time; write it like 2026-11-21, 2026-11-21T14:00 or 2026-11-21T14:00:00+01:00", s)
}
