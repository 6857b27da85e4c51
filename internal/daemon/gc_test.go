package daemon

import (
	"log/slog"
	"math"
	"runtime/debug"
	"testing"
)

// TestTuneGC: GOGC 400 and a memory limit of the bounds plus headroom,
// unless the environment says otherwise or no bound is configured.
func TestTuneGC(t *testing.T) {
	restore := func() {
		debug.SetGCPercent(100)
		debug.SetMemoryLimit(math.MaxInt64)
	}
	defer restore()
	log := slog.New(slog.DiscardHandler)
	tests := []struct {
		name      string
		gogc, lim string
		bounded   int64
		percent   int
		limit     int64
	}{
		{"bounds", "", "", 96 << 20, gcPercent, 96<<20 + gcHeadroom},
		{"no bound", "", "", 0, 100, math.MaxInt64},
		{"GOGC set", "150", "", 96 << 20, 100, 96<<20 + gcHeadroom},
		{"GOMEMLIMIT set", "", "1GiB", 96 << 20, gcPercent, math.MaxInt64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			restore()
			t.Setenv("GOGC", tt.gogc)
			t.Setenv("GOMEMLIMIT", tt.lim)
			TuneGC(log, tt.bounded)
			// (The runtime read GOGC and GOMEMLIMIT at start; set here
			// they only tell TuneGC to leave what is in force.)
			if p := debug.SetGCPercent(100); p != tt.percent {
				t.Errorf("GOGC %d, want %d", p, tt.percent)
			}
			if l := debug.SetMemoryLimit(-1); l != tt.limit {
				t.Errorf("memory limit %d, want %d", l, tt.limit)
			}
		})
	}
}
