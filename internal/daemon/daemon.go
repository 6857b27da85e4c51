// Package daemon holds what both daemons do the same way at start: make
// their spool directory, open the engines, serve metrics, wait for a signal.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/avstation/avstation/config"
	"github.com/avstation/avstation/scanner"
	"github.com/avstation/avstation/scanner/clamd"
	"github.com/avstation/avstation/scanner/external"
	"github.com/avstation/avstation/spool"
	"github.com/avstation/avstation/version"
)

// SpoolDir makes sure dir exists and is private to this user.
func SpoolDir(dir string) error { return Dir("spool_dir", dir) }

// Dir makes sure the directory of setting key exists, creating it (and its
// parents) 0700, so that a missing or unwritable one stops the daemon at
// start rather than losing records later.
func Dir(key, dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("%s %s: %w", key, dir, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("%s %s: %w", key, dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s %s: not a directory", key, dir)
	}
	return nil
}

// Warnings logs the config's warnings at start, where an admin who did not
// run check-config still sees them.
func Warnings(log *slog.Logger, warnings []string) {
	for _, w := range warnings {
		log.Warn("config", slog.String("warning", w))
	}
}

// testEngines are engines only a test build has (build tag avtest, see
// engines_avtest.go); none in the daemons as shipped.
var testEngines []scanner.Engine

// Scanner builds the scanner with the configured engines. The clamd
// addresses form one pool, whose health loop runs until ctx ends; pool is
// nil when no clamd is configured.
func Scanner(ctx context.Context, cfg config.Scanner, spoolDir string, log *slog.Logger) (sc *scanner.Scanner, pool *clamd.Pool, err error) {
	host, _ := os.Hostname()
	var engines []scanner.Engine
	if len(cfg.Clamd) > 0 {
		pool, err = clamd.NewPool(cfg.Clamd, clamd.WithLogger(log), clamd.WithStreamMax(int64(cfg.ClamdStreamMax)),
			clamd.WithClientOptions(clamd.WithDialTimeout(cfg.ClamdConnect), clamd.WithProbeAfter(cfg.ClamdProbeAfter),
				// Scans keep their connections (IDSESSION): no more idle
				// than can be in use at once.
				clamd.WithPingTimeout(cfg.ClamdPing), clamd.WithSessions(cfg.MaxEngineCalls)))
		if err != nil {
			return nil, nil, fmt.Errorf("scanner.clamd: %w", err)
		}
		go pool.Start(ctx)
		e, confirm := scanner.ClamdUnchecked(pool)
		go CheckClamdUnpacks(ctx, cfg, log, confirm)
		engines = append(engines, e)
	}
	engines = append(engines, testEngines...)
	for _, ec := range cfg.External {
		e, err := external.New(ec)
		if err != nil {
			return nil, nil, fmt.Errorf("scanner.external %s: %w", ec.Name, err)
		}
		engines = append(engines, e)
	}
	return scanner.New(cfg.Options(version.Scanner(host), spoolDir), engines...), pool, nil
}

// Registry is a metrics registry with the Go and process collectors and a
// build_info gauge named for the daemon.
func Registry(daemon string) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: daemon + "_build_info",
		Help: "Always 1; the labels name the build.",
	}, []string{"version", "goversion"})
	info.WithLabelValues(version.Version, runtime.Version()).Set(1)
	reg.MustRegister(info)
	return reg
}

// Signals returns a context cancelled on SIGINT or SIGTERM.
func Signals() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
}

// Serve runs srv until ctx is done, then shuts it down gracefully.
func Serve(ctx context.Context, log *slog.Logger, srv *http.Server, serve func() error) error {
	errc := make(chan error, 1)
	go func() { errc <- serve() }()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// Sweep removes what a crashed run of the daemon left: its own files in
// spool_dir (names matching spoolPatterns: this daemon's alone) and
// external scanners' directories in their temp_dir. A temp_dir may be
// shared (the system's, or between avmilter's in-process engines and a
// station), so there only directories older than any scan can last go.
// Failures are logged: they cost disk, not mail.
func Sweep(log *slog.Logger, now time.Time, spoolDir string, spoolPatterns []string, sc config.Scanner) {
	type place struct {
		key, dir string
		patterns []string
		before   time.Time
	}
	places := []place{{"spool_dir", spoolDir, spoolPatterns, now}}
	oldest := now.Add(-max(2*sc.EngineTimeout, 10*time.Minute))
	seen := map[string]bool{}
	for _, e := range sc.External {
		dir := e.TempDir
		if dir == "" {
			dir = os.TempDir()
		}
		if !seen[dir] {
			seen[dir] = true
			places = append(places, place{"scanner.external temp_dir", dir, []string{external.DirPattern + "/"}, oldest})
		}
	}
	for _, p := range places {
		n, err := spool.Sweep(p.dir, p.patterns, p.before)
		if err != nil {
			log.Error("start-up sweep", slog.String("setting", p.key), slog.String("dir", p.dir), slog.Int("removed", n), slog.Any("err", err))
			continue
		}
		log.Info("start-up sweep", slog.String("setting", p.key), slog.String("dir", p.dir), slog.Int("removed", n))
	}
}
