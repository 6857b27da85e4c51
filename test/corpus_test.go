package test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/avstation/avstation/config"
	"github.com/avstation/avstation/internal/daemon"
	"github.com/avstation/avstation/test/corpus"
	"github.com/avstation/avstation/test/harness"
	"github.com/avstation/avstation/verdict"
)

// TestCorpus scans every message of the corpus with the scanner and a real
// clamd, and checks each verdict against the one the corpus expects; then
// scans them all again with `avstation scan` as an admin would.
func TestCorpus(t *testing.T) {
	dir := t.TempDir()
	cases, err := corpus.Write(dir)
	if err != nil {
		t.Fatal(err)
	}
	clamd := harness.StartClamd(t)
	cfg := config.DefaultScanner()
	cfg.Clamd = []string{clamd.Addr}
	cfg.CacheEntries = 0
	sc, _, err := daemon.Scanner(t.Context(), cfg, t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			f, err := os.Open(filepath.Join(dir, c.Name))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			fi, _ := f.Stat()
			v, err := sc.Scan(context.Background(), f, fi.Size())
			if err != nil {
				t.Fatal(err)
			}
			checkCase(t, c, v)
		})
	}

	t.Run("avstation scan", func(t *testing.T) {
		conf := filepath.Join(t.TempDir(), "avstation.yaml")
		os.WriteFile(conf, []byte("secret_file: /nonexistent\nspool_dir: "+t.TempDir()+"\nscanner:\n  clamd: [\""+clamd.Addr+"\"]\n"), 0o600)
		args := []string{"scan", "-config", conf}
		for _, c := range cases {
			args = append(args, filepath.Join(dir, c.Name))
		}
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(bin.Station, args...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if code := cmd.ProcessState.ExitCode(); code != 1 {
			t.Fatalf("exit %d (%v), want 1 (some not clean): %s", code, err, stderr.String())
		}
		sc := bufio.NewScanner(&stdout)
		sc.Buffer(nil, 16<<20)
		i := 0
		for ; sc.Scan(); i++ {
			var got struct {
				File string `json:"file"`
				verdict.Verdict
			}
			if err := json.Unmarshal(sc.Bytes(), &got); err != nil {
				t.Fatalf("line %d: %v", i+1, err)
			}
			if i < len(cases) && (filepath.Base(got.File) != cases[i].Name || got.Status != cases[i].Want) {
				t.Errorf("%s: status %q, want %q", got.File, got.Status, cases[i].Want)
			}
		}
		if i != len(cases) {
			t.Errorf("%d verdicts for %d files", i, len(cases))
		}
	})
}

func checkCase(t *testing.T, c corpus.Case, v *verdict.Verdict) {
	t.Helper()
	if v.Status != c.Want {
		t.Fatalf("%s: status %q, want %q\nfindings: %s", c.Note, v.Status, c.Want, findings(v))
	}
	if c.Want == verdict.Clean {
		return
	}
	f, _ := v.First(c.Want)
	if c.Where != "" && !strings.Contains(f.Path+" "+f.FileName, c.Where) {
		t.Errorf("%s: first %s finding at %q (%q), want %q\nfindings: %s", c.Note, c.Want, f.Path, f.FileName, c.Where, findings(v))
	}
	if c.Detail != "" && !strings.Contains(f.Threat+" "+f.Detail, c.Detail) {
		t.Errorf("%s: first %s finding says %q %q, want %q\nfindings: %s", c.Note, c.Want, f.Threat, f.Detail, c.Detail, findings(v))
	}
}

func findings(v *verdict.Verdict) string {
	b, _ := json.MarshalIndent(v.Findings, "", "  ")
	return string(b)
}
