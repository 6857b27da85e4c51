package station

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
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
				if e.IsDir() {
					got = append(got, e.Name())
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
	day := filepath.Join(cfg.RecordsDir, rec.Time.Format("2006-01-02"))
	for path, want := range map[string]os.FileMode{day: 0o700, filepath.Join(day, "job7.json"): 0o600} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, %v; want %v", path, fi.Mode().Perm(), err, want)
		}
	}
}
