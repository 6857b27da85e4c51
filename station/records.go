package station

import (
	"encoding/json"
	"errors"
	"fmt"
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

// Records keeps job records as DIR/YYYY-MM-DD/JOBID.json, 0600.
type Records struct{ Dir string }

// Put writes a record; the file appears whole (written to a temporary name
// and renamed).
func (r Records) Put(rec Record) error {
	if r.Dir == "" {
		return nil
	}
	if !jobproto.ValidJobID(rec.JobID) {
		return fmt.Errorf("job record: job id %q cannot be a file name", rec.JobID)
	}
	day := filepath.Join(r.Dir, rec.Time.Format("2006-01-02"))
	if err := os.MkdirAll(day, 0o700); err != nil {
		return fmt.Errorf("job record: %w", err)
	}
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(day, ".rec-*")
	if err != nil {
		return fmt.Errorf("job record: %w", err)
	}
	_, werr := tmp.Write(append(data, '\n'))
	if err := errors.Join(werr, tmp.Close()); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("job record: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(day, rec.JobID+".json")); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("job record: %w", err)
	}
	return nil
}

// Get finds the record of a job.
func (r Records) Get(jobID string) (Record, error) {
	if !jobproto.ValidJobID(jobID) {
		return Record{}, fmt.Errorf("%q is not a job id", jobID)
	}
	matches, _ := filepath.Glob(filepath.Join(r.Dir, "*", jobID+".json"))
	if len(matches) == 0 {
		return Record{}, fmt.Errorf("no record of job %s in %s (kept for records_max_age, then removed): %w", jobID, r.Dir, fs.ErrNotExist)
	}
	data, err := os.ReadFile(matches[0])
	if err != nil {
		return Record{}, err
	}
	var rec Record
	if err := json.Unmarshal(data, &rec); err != nil {
		return Record{}, fmt.Errorf("%s: %w", matches[0], err)
	}
	return rec, nil
}

// Prune removes the days older than keep: a day's directory goes once
// all of it, to its midnight, is older than now-keep.
func (r Records) Prune(now time.Time, keep time.Duration) (int, error) {
	days, err := os.ReadDir(r.Dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, nil
		}
		return 0, err
	}
	cutoff := now.Add(-keep)
	n := 0
	for _, d := range days {
		t, err := time.ParseInLocation("2006-01-02", d.Name(), time.Local)
		if err != nil || !d.IsDir() || !t.AddDate(0, 0, 1).Before(cutoff) {
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
