package station

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/avstation/avstation/jobproto"
	"github.com/avstation/avstation/verdict"
)

// Record is the station's detailed record of one job: what an admin needs
// when the list's activity log says "???" (engine and signature versions,
// where the finding is, the engine's raw reply, who sent the job).
type Record struct {
	JobID    string           `json:"job_id"`
	Time     time.Time        `json:"time"`
	Primary  string           `json:"primary,omitempty"` // the milter's primary_id (its host name by default)
	KeyID    string           `json:"key_id,omitempty"`  // the key the job was signed with
	Client   string           `json:"client,omitempty"`  // the SMTP client the posting came from
	QueueID  string           `json:"queue_id,omitempty"`
	Lists    []string         `json:"lists,omitempty"`
	Sender   string           `json:"sender,omitempty"`
	Size     int64            `json:"size"`
	Duration time.Duration    `json:"duration_ns"`
	Verdict  *verdict.Verdict `json:"verdict"`
}

// Records keeps job records as JSON lines, a file a day:
// DIR/YYYY-MM-DD.jsonl, created 0600 in a directory created 0700. A record
// is one line appended in one write(2) on a file opened O_APPEND, so
// concurrent jobs never interleave within a line. Appending costs a
// fraction of what creating a file per job did (two inodes a job, one of
// them renamed: a third of the station's CPU on 1 KB messages), and rotation
// needs no signal: each record opens its day's file by name.
//
// Days written by earlier versions, DIR/YYYY-MM-DD/JOBID.json, are still
// found by Get and removed by Prune.
type Records struct{ Dir string }

const (
	dayLayout  = "2006-01-02"
	recordsExt = ".jsonl"
)

// Put appends a record to its day's file.
func (r Records) Put(rec Record) error {
	if r.Dir == "" {
		return nil
	}
	// Get finds a record by the job id at the start of its line, and old
	// days by file name: only ids that are plain tokens.
	if !jobproto.ValidJobID(rec.JobID) {
		return fmt.Errorf("job record: job id %q cannot be looked up", rec.JobID)
	}
	line, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("job record %s: %w", rec.JobID, err)
	}
	name := filepath.Join(r.Dir, rec.Time.Format(dayLayout)+recordsExt)
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if errors.Is(err, fs.ErrNotExist) { // the first record: make the directory
		if err := os.MkdirAll(r.Dir, 0o700); err != nil {
			return fmt.Errorf("job record: %w", err)
		}
		f, err = os.OpenFile(name, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	}
	if err != nil {
		return fmt.Errorf("job record: %w", err)
	}
	_, werr := f.Write(append(line, '\n'))
	if err := errors.Join(werr, f.Close()); err != nil {
		return fmt.Errorf("job record %s in %s: %w", rec.JobID, name, err)
	}
	return nil
}

// Get finds the record of a job, newest day first; a job scanned twice
// (a milter's retry) gives its last record.
func (r Records) Get(jobID string) (Record, error) {
	if !jobproto.ValidJobID(jobID) {
		return Record{}, fmt.Errorf("%q is not a job id", jobID)
	}
	days, err := r.days()
	if err != nil {
		return Record{}, err
	}
	for i := len(days) - 1; i >= 0; i-- {
		d := days[i]
		var rec Record
		var found bool
		if d.IsDir() {
			rec, found, err = getOld(filepath.Join(r.Dir, d.Name()), jobID)
		} else {
			rec, found, err = getLine(filepath.Join(r.Dir, d.Name()), jobID)
		}
		if err != nil || found {
			return rec, err
		}
	}
	return Record{}, fmt.Errorf("no record of job %s in %s (kept for records_max_age, then removed): %w", jobID, r.Dir, fs.ErrNotExist)
}

// getLine looks for the job's last line in a day's file.
func getLine(path, jobID string) (Record, bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return Record{}, false, err
	}
	defer f.Close()
	// json.Marshal writes job_id first: a record starts with it. Not
	// only at the start of a line: a record appended after one cut short
	// (a full disk) shares its line.
	id, _ := json.Marshal(jobID)
	start := append(append([]byte(`{"job_id":`), id...), ',')
	var last []byte
	br := bufio.NewReader(f)
	for {
		line, err := br.ReadBytes('\n')
		if i := bytes.LastIndex(line, start); i >= 0 {
			last = line[i:]
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return Record{}, false, fmt.Errorf("%s: %w", path, err)
		}
	}
	if last == nil {
		return Record{}, false, nil
	}
	var rec Record
	if err := json.Unmarshal(last, &rec); err != nil {
		return Record{}, false, fmt.Errorf("%s: the record of job %s: %w", path, jobID, err)
	}
	return rec, true, nil
}

// getOld reads a record from a day written as one file per job.
func getOld(dir, jobID string) (Record, bool, error) {
	path := filepath.Join(dir, jobID+".json")
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Record{}, false, nil
	}
	if err != nil {
		return Record{}, false, err
	}
	var rec Record
	if err := json.Unmarshal(data, &rec); err != nil {
		return Record{}, false, fmt.Errorf("%s: %w", path, err)
	}
	return rec, true, nil
}

// days lists the days of records in Dir, oldest first: YYYY-MM-DD.jsonl
// files and the YYYY-MM-DD directories of earlier versions. Anything else
// there is not the station's and is left alone.
func (r Records) days() ([]fs.DirEntry, error) {
	entries, err := os.ReadDir(r.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	days := entries[:0]
	for _, e := range entries {
		if _, ok := dayOf(e); ok {
			days = append(days, e)
		}
	}
	// Names sort by day (ReadDir sorts them); a day's directory and
	// file side by side (an upgrade that day) sort the directory first.
	return days, nil
}

// dayOf is the day an entry of Dir holds records of.
func dayOf(e fs.DirEntry) (time.Time, bool) {
	name := e.Name()
	if e.IsDir() == strings.HasSuffix(name, recordsExt) || !(e.IsDir() || e.Type().IsRegular()) {
		return time.Time{}, false
	}
	t, err := time.ParseInLocation(dayLayout, strings.TrimSuffix(name, recordsExt), time.Local)
	return t, err == nil
}

// Prune removes the days older than keep: a day goes once all of it, to
// its midnight, is older than now-keep.
func (r Records) Prune(now time.Time, keep time.Duration) (int, error) {
	days, err := r.days()
	if err != nil {
		return 0, err
	}
	cutoff := now.Add(-keep)
	n := 0
	for _, d := range days {
		if t, _ := dayOf(d); !t.AddDate(0, 0, 1).Before(cutoff) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(r.Dir, d.Name())); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// Describe writes a record for a person to read.
func (rec Record) Describe() string {
	var b strings.Builder
	v := rec.Verdict
	if v == nil {
		// A record file edited or cut short by hand: say so, do not crash
		// the admin's command.
		v = &verdict.Verdict{Status: "no verdict in the record"}
	}
	fmt.Fprintf(&b, "job %s at %s from %s (SMTP client %s), queue id %s, lists %s\n", rec.JobID, rec.Time.Format(time.RFC3339),
		or(rec.Primary, "?"), or(rec.Client, "?"), or(rec.QueueID, "?"), or(strings.Join(rec.Lists, ", "), "none"))
	fmt.Fprintf(&b, "%d bytes, scanned in %s by %s: %s\n", rec.Size, rec.Duration.Round(time.Millisecond), or(v.Scanner, "?"), strings.ToUpper(string(v.Status)))
	for _, e := range v.Engines {
		fmt.Fprintf(&b, "engine %s %s, signatures %s", e.Name, or(e.Version, "?"), or(e.SignatureVersion, "?"))
		if !e.SignatureTime.IsZero() {
			fmt.Fprintf(&b, " of %s", e.SignatureTime.Format("2006-01-02 15:04"))
		}
		b.WriteString("\n")
	}
	for _, f := range v.Findings {
		where := f.Path
		if where == "" {
			where = "the whole message"
		}
		fmt.Fprintf(&b, "  %s at %s", f.Kind, where)
		if f.FileName != "" {
			fmt.Fprintf(&b, " (%s)", f.FileName)
		}
		if f.Threat != "" {
			fmt.Fprintf(&b, ": %s", f.Threat)
		} else if f.Kind == verdict.KindVirus {
			b.WriteString(": ??? (the engine gave no name)")
		}
		if f.Detail != "" {
			fmt.Fprintf(&b, ": %s", f.Detail)
		}
		if f.Engine != "" {
			fmt.Fprintf(&b, " [%s]", f.Engine)
		}
		if f.Raw != "" {
			fmt.Fprintf(&b, "\n    engine said: %q", f.Raw)
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "%d part(s) and member(s) examined\n", len(v.Manifest))
	return b.String()
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
