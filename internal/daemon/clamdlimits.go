package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/avstation/avstation/config"
	"github.com/avstation/avstation/internal/panics"
	"github.com/avstation/avstation/scanner/clamd"
)

// clamdProbeTimeout bounds the limits probe of one clamd.
const clamdProbeTimeout = 20 * time.Second

// ClamdLimits is the limits probe's answer for one clamd.
type ClamdLimits struct {
	Addr    string
	Reports bool  // clamd alerts on content past its limits (AlertExceedsMax yes)
	Err     error // the probe got no answer that says
}

// Warning says what an admin must fix; "" when clamd reports its limits.
func (c ClamdLimits) Warning() string {
	switch {
	case c.Err != nil:
		return fmt.Sprintf("clamd %s: could not check that it reports content past its limits: %v", c.Addr, c.Err)
	case !c.Reports:
		return fmt.Sprintf("clamd %s answered OK for a zip nested %d deep: AlertExceedsMax is off (or MaxRecursion above %d), "+
			"so content past its MaxFileSize, MaxScanSize, MaxRecursion or MaxFiles is reported clean; "+
			"set AlertExceedsMax yes in clamd.conf (deploy/clamav/clamd.conf)", c.Addr, clamd.ProbeDepth, clamd.ProbeDepth)
	}
	return ""
}

// CheckClamdLimits probes every configured clamd at once, each on its own
// connection (not through the pool, which would stop at the first that
// answers), and returns their answers in the configured order.
func CheckClamdLimits(ctx context.Context, cfg config.Scanner) []ClamdLimits {
	out := make([]ClamdLimits, len(cfg.Clamd))
	var wg sync.WaitGroup
	for i, addr := range cfg.Clamd {
		out[i].Addr = addr
		wg.Go(func() {
			c, err := clamd.New(addr, clamd.WithDialTimeout(cfg.ClamdConnect))
			if err != nil {
				out[i].Err = err
				return
			}
			pctx, cancel := context.WithTimeout(ctx, clamdProbeTimeout)
			defer cancel()
			// In a goroutine of its own: a panic reading clamd's answer is
			// this check's error, not the daemon's end.
			out[i].Reports, out[i].Err = panics.Call(func() (bool, error) { return clamd.ProbeLimits(pctx, c) })
		})
	}
	wg.Wait()
	return out
}

// LogClamdLimits probes every clamd and logs a warning for each one that
// does not report content past its limits. For a daemon's start: run it in
// its own goroutine, since a clamd still loading its database answers late.
func LogClamdLimits(ctx context.Context, cfg config.Scanner, log *slog.Logger) {
	for _, c := range CheckClamdLimits(ctx, cfg) {
		switch {
		case ctx.Err() != nil:
			return
		case c.Warning() != "":
			log.Warn(c.Warning(), slog.String("clamd", c.Addr), slog.String("check", "clamd AlertExceedsMax"))
		default:
			log.Info("clamd reports content past its limits", slog.String("clamd", c.Addr))
		}
	}
}

// unpackRetry is how long CheckClamdUnpacks waits before asking a clamd
// that did not answer (still loading its database) again.
var unpackRetry = 2 * time.Second

// CheckClamdUnpacks asks every configured clamd whether it parses mail and
// opens archives (clamd.ProbeUnpacks), again while one does not answer,
// and calls confirm(true) once all do: until then the scanner sends clamd
// every part, not only what its scan of the raw message cannot reach. A
// clamd that answers OK (ScanMail or ScanArchive off) is logged and
// confirm(false) keeps it that way.
func CheckClamdUnpacks(ctx context.Context, cfg config.Scanner, log *slog.Logger, confirm func(bool)) {
	for _, addr := range cfg.Clamd {
		for {
			unpacks, err := probeUnpacks(ctx, cfg, addr)
			if ctx.Err() != nil {
				return
			}
			if err == nil && !unpacks {
				log.Warn("clamd found nothing in a mail with EICAR in a base64 zip: ScanMail or ScanArchive is off (or its database lacks EICAR); "+
					"it is sent every part and member, which costs it CPU; turn both on in clamd.conf",
					slog.String("clamd", addr), slog.String("check", "clamd unpacks mail"))
				confirm(false)
				return
			}
			if err == nil {
				break
			}
			log.Info("clamd unpack probe: no answer yet; trying again", slog.String("clamd", addr), slog.Duration("in", unpackRetry), slog.String("err", err.Error()))
			select {
			case <-ctx.Done():
				return
			case <-time.After(unpackRetry):
			}
		}
	}
	log.Info("clamd parses mail and opens archives: it is sent the raw message, and parts only where that cannot reach", slog.Any("clamd", cfg.Clamd))
	confirm(true)
}

func probeUnpacks(ctx context.Context, cfg config.Scanner, addr string) (bool, error) {
	c, err := clamd.New(addr, clamd.WithDialTimeout(cfg.ClamdConnect))
	if err != nil {
		return false, err
	}
	pctx, cancel := context.WithTimeout(ctx, clamdProbeTimeout)
	defer cancel()
	return clamd.ProbeUnpacks(pctx, c)
}
