package daemon

import (
	"log/slog"
	"os"
	"runtime/debug"
)

// gcPercent is the garbage collector's target (GOGC) of a daemon: with a
// live heap of a few MB and garbage made per message, Go's default of 100
// collects every few MB allocated, which cost 15-25% of avmilter's and
// avstation's CPU per 1 KB message (go run ./test/benchcmp, GOGC=100
// against 400). The memory limit below keeps the heap within bounds when
// messages are large.
const gcPercent = 400

// gcHeadroom is what the heap may hold above the configured memory bounds
// (message bodies and decoded parts in memory) before the collector works
// harder: the daemon's own state, buffers in flight, the garbage between
// two collections.
const gcHeadroom = 16 << 20

// TuneGC sets the collector for a daemon whose configured in-memory bounds
// add up to bounded bytes: GOGC 400, and a soft memory limit of bounded
// plus gcHeadroom (GOMEMLIMIT), so that a busy daemon collects less often
// and a full one no more than needed to stay near its bounds. GOGC or
// GOMEMLIMIT set in the environment win; a bound of 0 (no bound
// configured) leaves Go's defaults, with nothing to size the limit by.
func TuneGC(log *slog.Logger, bounded int64) {
	if bounded <= 0 {
		return
	}
	limit := bounded + gcHeadroom
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(limit)
	} else {
		limit = debug.SetMemoryLimit(-1)
	}
	percent := gcPercent
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	} else {
		percent = debug.SetGCPercent(-1)
		debug.SetGCPercent(percent)
	}
	log.Debug("garbage collector", slog.Int("gogc", percent), slog.Int64("memory_limit", limit))
}
