package spool

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestSweep(t *testing.T) {
	dir := t.TempDir()
	outside := t.TempDir()
	write := func(name string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte("mail"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("avspool-123")
	write("avs-job-9.eml")
	write("avs-job-9.txt")  // another pattern's name
	write("notes")          // someone else's
	write("avspool-recent") // touched after the cut-off below
	os.MkdirAll(filepath.Join(dir, "avstation-external-1", "locked", "deep"), 0o700)
	os.WriteFile(filepath.Join(dir, "avstation-external-1", "locked", "deep", "part"), []byte("x"), 0o600)
	os.Chmod(filepath.Join(dir, "avstation-external-1", "locked"), 0o500) // as a scanner may leave it
	os.Mkdir(filepath.Join(dir, "avspool-dir"), 0o700)                    // a directory, but the pattern is for files
	os.WriteFile(filepath.Join(outside, "target"), []byte("keep"), 0o600)
	os.Symlink(filepath.Join(outside, "target"), filepath.Join(dir, "avspool-link"))
	os.Symlink(outside, filepath.Join(dir, "avstation-external-link"))

	cut := time.Now().Add(time.Minute)
	later := cut.Add(time.Hour)
	os.Chtimes(filepath.Join(dir, "avspool-recent"), later, later)

	n, err := Sweep(dir, []string{FilePattern, "avs-job-*.eml", "avstation-external-*/"}, cut)
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Errorf("removed %d, want 3", n)
	}
	entries, _ := os.ReadDir(dir)
	var left []string
	for _, e := range entries {
		left = append(left, e.Name())
	}
	want := []string{"avs-job-9.txt", "avspool-dir", "avspool-link", "avspool-recent", "avstation-external-link", "notes"}
	if !slices.Equal(left, want) {
		t.Errorf("left %q, want %q", left, want)
	}
	if b, err := os.ReadFile(filepath.Join(outside, "target")); err != nil || string(b) != "keep" {
		t.Errorf("symlink target: %q, %v", b, err)
	}

	t.Run("missing dir is nothing to sweep", func(t *testing.T) {
		if n, err := Sweep(filepath.Join(dir, "nope"), []string{FilePattern}, cut); n != 0 || err != nil {
			t.Errorf("%d, %v", n, err)
		}
	})
	t.Run("bad patterns refused", func(t *testing.T) {
		for _, p := range []string{"", "[", "../avspool-*", "a/b"} {
			if _, err := Sweep(dir, []string{p}, cut); err == nil {
				t.Errorf("pattern %q accepted", p)
			}
		}
	})
}
