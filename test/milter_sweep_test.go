package test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/avstation/avstation/test/harness"
)

// TestMilterStartupSweep: avmilter removes the held bodies a crash left in
// spool_dir at start, logs how many, and leaves every other file alone.
func TestMilterStartupSweep(t *testing.T) {
	clamd := harness.StartClamd(t)
	m := harness.StartMilter(t, bin.Milter, harness.MilterOptions{Clamd: clamd.Addr})
	m.Stop()
	for _, name := range []string{"avspool-123", "avspool-456", "keep.txt"} {
		if err := os.WriteFile(filepath.Join(m.Spool, name), []byte("held mail"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	m.Restart()
	m.WaitLog(t, 5*time.Second, "start-up sweep", "setting=spool_dir", "removed=2")
	left, _ := os.ReadDir(m.Spool)
	if len(left) != 1 || left[0].Name() != "keep.txt" {
		t.Errorf("spool after the sweep: %v, want keep.txt alone", left)
	}
}
