package station

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/avstation/avstation/config"
	"github.com/avstation/avstation/jobproto"
	"github.com/avstation/avstation/scanner"
	"github.com/avstation/avstation/verdict"
)

// TestPruneRecords: the hourly pass (and the one at start) removes the
// days older than records_max_age, on the clock it is given.
func TestPruneRecords(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.Local)
	tests := []struct {
		name   string
		maxAge time.Duration
		kept   []string
	}{
		{"30 days", 30 * 24 * time.Hour, []string{"2026-11-01", "2026-11-30", "2026-12-01"}},
		{"1 day", 24 * time.Hour, []string{"2026-11-30", "2026-12-01"}},
		{"1 hour", time.Hour, []string{"2026-12-01"}},
	}
	days := []time.Time{
		now.AddDate(0, 0, -40), now.AddDate(0, 0, -32), now.AddDate(0, 0, -31),
		now.AddDate(0, 0, -30), now.AddDate(0, 0, -1), now,
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			r := Records{Dir: dir}
			for i, d := range days {
				if err := r.Put(Record{JobID: "job" + string(rune('a'+i)), Time: d, Verdict: &verdict.Verdict{}}); err != nil {
					t.Fatal(err)
				}
			}
			os.WriteFile(filepath.Join(dir, "README"), []byte("not a day"), 0o600) // left alone
			cfg := config.DefaultStation()
			cfg.RecordsDir, cfg.RecordsMaxAge = dir, tt.maxAge
			var logs bytes.Buffer
			st := &Station{cfg: &cfg, log: slog.New(slog.NewTextHandler(&logs, nil))}
			ctx, cancel := context.WithCancel(context.Background())
			cancel() // one pass, the one at start, then return
			st.PruneRecords(ctx, func() time.Time { return now })

			entries, _ := os.ReadDir(dir)
			var got []string
			for _, e := range entries {
				if name, ok := strings.CutSuffix(e.Name(), ".jsonl"); ok {
					got = append(got, name)
				}
			}
			if strings.Join(got, " ") != strings.Join(tt.kept, " ") {
				t.Errorf("days kept %v, want %v", got, tt.kept)
			}
			if _, err := os.Stat(filepath.Join(dir, "README")); err != nil {
				t.Errorf("a file that is no day was removed: %v", err)
			}
			if !strings.Contains(logs.String(), "job records pruned") {
				t.Errorf("log: %s", logs.String())
			}
			if _, err := r.Get("joba"); err == nil || !strings.Contains(err.Error(), "kept for records_max_age") {
				t.Errorf("Get of a pruned job: %v", err)
			}
		})
	}
	if PruneInterval != time.Hour {
		t.Errorf("PruneInterval = %s, want hourly", PruneInterval)
	}
}

// TestScanKeepsRecord: each job leaves its record in records_dir, private
// to the station's user.
func TestScanKeepsRecord(t *testing.T) {
	cfg := config.DefaultStation()
	cfg.SpoolDir = t.TempDir()
	cfg.RecordsDir = filepath.Join(t.TempDir(), "records")
	keys, _ := jobproto.NewKeyRing(jobproto.Key{ID: "default", Secret: []byte("station-test-secret")})
	sc := scanner.New(scanner.Options{Name: "test"}, evilEngine{})
	st := New(&cfg, sc, nil, keys, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	f, err := os.CreateTemp(t.TempDir(), "body")
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("Subject: t\r\n\r\nEVIL\r\n")
	f.Seek(0, 0)
	if _, err := st.scan(context.Background(), jobproto.Meta{JobID: "job7", QueueID: "Q7"}, f, 18); err != nil {
		t.Fatal(err)
	}
	rec, err := Records{Dir: cfg.RecordsDir}.Get("job7")
	if err != nil || rec.QueueID != "Q7" || rec.Verdict.Status != verdict.Infected {
		t.Fatalf("record %+v, %v", rec, err)
	}
	day := filepath.Join(cfg.RecordsDir, rec.Time.Format("2006-01-02")+".jsonl")
	for path, want := range map[string]os.FileMode{cfg.RecordsDir: 0o700, day: 0o600} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, %v; want %v", path, fi.Mode().Perm(), err, want)
		}
	}
}

// TestRecordsLines: records are lines of a day's file, each whole however
// many jobs write at once; Get finds a job's last record, passes over a
// line cut short (a full disk) and still reads days kept as a file per
// job by earlier versions.
func TestRecordsLines(t *testing.T) {
	dir := t.TempDir()
	r := Records{Dir: dir}
	day := time.Date(2026, 12, 1, 9, 0, 0, 0, time.Local)
	// Big records (a long manifest) written at once must not interleave.
	manifest := make([]verdict.Part, 2000)
	for i := range manifest {
		manifest[i] = verdict.Part{Path: fmt.Sprintf("2/big.zip/member%04d.txt", i), ContentType: "text/plain"}
	}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			v := &verdict.Verdict{Status: verdict.Clean, Manifest: manifest}
			if err := r.Put(Record{JobID: fmt.Sprintf("job%02d", i), Time: day.Add(time.Duration(i) * time.Second), QueueID: "Q", Verdict: v}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	data, err := os.ReadFile(filepath.Join(dir, "2026-12-01.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != 20 {
		t.Fatalf("%d lines, want 20", len(lines))
	}
	for _, l := range lines {
		var rec Record
		if err := json.Unmarshal([]byte(l), &rec); err != nil || len(rec.Verdict.Manifest) != 2000 {
			t.Fatalf("a line is not one whole record: %v", err)
		}
	}

	// A retry of job05, then a line cut short by a full disk.
	if err := r.Put(Record{JobID: "job05", Time: day.Add(time.Hour), QueueID: "RETRY", Verdict: &verdict.Verdict{Status: verdict.Infected}}); err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(filepath.Join(dir, "2026-12-01.jsonl"), os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"job_id":"job99","time":"2026-12-01T`)
	f.Close()
	if rec, err := r.Get("job05"); err != nil || rec.QueueID != "RETRY" {
		t.Errorf("Get(job05) = %+v, %v; want the retry's record", rec, err)
	}
	if rec, err := r.Get("job19"); err != nil || rec.Verdict.Status != verdict.Clean {
		t.Errorf("Get(job19) = %+v, %v", rec, err)
	}
	if _, err := r.Get("job99"); err == nil {
		t.Error("Get of a line cut short: no error")
	}
	if err := r.Put(Record{JobID: "job20", Time: day.Add(2 * time.Hour), Verdict: &verdict.Verdict{Status: verdict.Clean}}); err != nil {
		t.Fatal(err)
	}
	if rec, err := r.Get("job20"); err != nil || rec.JobID != "job20" {
		t.Errorf("Get of the record after a line cut short: %+v, %v", rec, err)
	}
	if _, err := r.Get("job0"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Get(job0), a prefix of other ids: %v, want not found", err)
	}

	// A day from before records were lines.
	old := filepath.Join(dir, "2026-11-20")
	os.Mkdir(old, 0o700)
	os.WriteFile(filepath.Join(old, "oldjob.json"), []byte(`{"job_id":"oldjob","queue_id":"OLD","verdict":{"status":"clean"}}`), 0o600)
	if rec, err := r.Get("oldjob"); err != nil || rec.QueueID != "OLD" {
		t.Errorf("Get of a job in an old-style day: %+v, %v", rec, err)
	}
	if n, err := r.Prune(day, 5*24*time.Hour); err != nil || n != 1 {
		t.Errorf("Prune: %d, %v; want the old-style day removed", n, err)
	}
	if _, err := os.Stat(old); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("old-style day still there: %v", err)
	}
}

// BenchmarkRecordsPut: the cost of a job's record, a clean 1 KB job's.
func BenchmarkRecordsPut(b *testing.B) {
	r := Records{Dir: b.TempDir()}
	now := time.Now()
	v := &verdict.Verdict{Status: verdict.Clean, Scanner: "station", Manifest: []verdict.Part{{Path: "1", ContentType: "text/plain", Size: 1024}}}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := r.Put(Record{JobID: fmt.Sprintf("job%d", i), Time: now, QueueID: "4XyZ", Lists: []string{"dev@lists.example.org"}, Size: 1024, Verdict: v}); err != nil {
			b.Fatal(err)
		}
	}
}
