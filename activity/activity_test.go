package activity

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestWriteAndReport(t *testing.T) {
	l := Log{Dir: filepath.Join(t.TempDir(), "made", "on", "first", "event")}
	at := func(s string) time.Time { t, _ := ParseTime(s); return t }
	events := []Event{
		{Time: at("2026-11-21T14:25:10"), List: "dev", Type: Virus, Threat: "Trojan:Win32/Phonzy.A!ml", JobID: "j1", QueueID: "4ABC", File: "invoice.zip/doc.exe", Action: "reject"},
		{Time: at("2026-11-21T15:00:00"), List: "dev", Type: Virus, Threat: "", JobID: "j2", File: "my file.exe", Action: "reject"},
		{Time: at("2026-11-22T09:00:00"), List: "dev", Type: Encrypted, Threat: "zip member is encrypted", JobID: "j3", Action: "accept"},
		{Time: at("2026-11-22T09:00:00"), List: "other", Type: Tempfail, JobID: "j4"},
	}
	for _, e := range events {
		if err := l.Write(e); err != nil {
			t.Fatal(err)
		}
	}
	raw, _ := os.ReadFile(filepath.Join(l.Dir, "dev.log"))
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	if lines[0] != "2026/11/21 14:25:10 VIRUS Trojan:Win32/Phonzy.A!ml job=j1 queue=4ABC file=invoice.zip/doc.exe action=reject" {
		t.Errorf("line 1: %q", lines[0])
	}
	if lines[1] != `2026/11/21 15:00:00 VIRUS ??? job=j2 file="my file.exe" action=reject` {
		t.Errorf("line 2: %q", lines[1])
	}
	tests := []struct {
		q    Query
		jobs string
	}{
		{Query{List: "dev"}, "j1 j2 j3"},
		{Query{List: "dev", Type: Virus}, "j1 j2"},
		{Query{List: "dev", Since: at("2026-11-21T14:30")}, "j2 j3"},
		{Query{List: "dev", Until: at("2026-11-22")}, "j1 j2"},
		{Query{List: "DEV", Type: Encrypted}, "j3"},
		{Query{List: "other"}, "j4"},
	}
	for _, tt := range tests {
		got, bad, err := l.Report(tt.q)
		var jobs []string
		for _, e := range got {
			jobs = append(jobs, e.JobID)
		}
		if err != nil || bad != 0 || strings.Join(jobs, " ") != tt.jobs {
			t.Errorf("%+v: %v (bad %d, %v), want %s", tt.q, jobs, bad, err, tt.jobs)
		}
	}
	got, _, _ := l.Report(Query{List: "dev", Type: Virus})
	if got[1].Threat != "???" || got[1].File != "my file.exe" || !got[0].Time.Equal(events[0].Time) {
		t.Errorf("parsed back: %+v", got)
	}
	if _, _, err := l.Report(Query{List: "nolist"}); !errors.Is(err, ErrNoList) || !strings.Contains(err.Error(), "dev, other") {
		t.Errorf("unknown list: %v", err)
	}
	if err := l.Write(Event{List: "../etc/passwd", Type: Virus}); err == nil {
		t.Error("a list name with a path was written")
	}
}

func TestConcurrentWritersNeverInterleave(t *testing.T) {
	l := Log{Dir: t.TempDir()}
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				l.Write(Event{Time: time.Now(), List: "dev", Type: Virus, Threat: strings.Repeat("x", 300), JobID: "j"})
			}
		}()
	}
	wg.Wait()
	got, bad, err := l.Report(Query{List: "dev"})
	if err != nil || bad != 0 || len(got) != 1600 {
		t.Errorf("%d events, %d bad, %v", len(got), bad, err)
	}
}

func TestParseTimeErrors(t *testing.T) {
	if _, err := ParseTime("yesterday"); err == nil || !strings.Contains(err.Error(), "2026-11-21") {
		t.Errorf("err = %v", err)
	}
}

func FuzzParseLine(f *testing.F) {
	f.Add(`2026/11/21 15:00:00 VIRUS ??? job=j2 file="my file.exe" action=reject`)
	f.Fuzz(func(t *testing.T, line string) {
		e, err := ParseLine("dev", line)
		if err == nil && e.Type == "" {
			t.Fatal("event without a type")
		}
	})
}
