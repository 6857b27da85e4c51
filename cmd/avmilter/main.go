// Command avmilter is the anti-virus milter for Postfix and Sendmail: it
// holds list-bound mail at end of body, has it scanned by an avstation (or
// in-process) and applies the verdict.
//
//	avmilter [-config FILE]                 run the milter
//	avmilter check-config [-config FILE]    print every config problem, exit 1 if any
//	avmilter report --list NAME [...]       the list activity report
//	avmilter eicar-test --smtp H:P --to A   post the EICAR test file through the MTA
//	avmilter version [-config FILE]         the version, and the engines that scan
//	avmilter quarantine ...                 list, show, release, rescan, delete, purge
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/avstation/avstation/bypass"
	"github.com/avstation/avstation/config"
	"github.com/avstation/avstation/internal/daemon"
	"github.com/avstation/avstation/jobproto"
	"github.com/avstation/avstation/milter"
	"github.com/avstation/avstation/spool"
)

const defaultConfig = "/etc/avstation/avmilter.yaml"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	// Commands with flags of their own.
	if len(args) > 0 {
		switch args[0] {
		case "report":
			return reportCmd(args[1:], stdout, stderr)
		case "eicar-test":
			return eicarTestCmd(args[1:], stdout, stderr)
		case "quarantine":
			return quarantineCmd(args[1:], stdout, stderr)
		}
	}
	cmd, path, _, ok := daemon.Args("avmilter", defaultConfig, args, stderr)
	if !ok {
		return 2
	}
	switch cmd {
	case "version":
		return versionCmd(path, stdout)
	case "check-config":
		cfg, err := load(path)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		return daemon.CheckedOK(path, cfg.Warnings, stdout, stderr)
	case "run":
		cfg, err := load(path)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		log := cfg.Log.Logger(stderr)
		daemon.Warnings(log, cfg.Warnings)
		daemon.TuneGC(log, milterMemory(cfg))
		if err := serve(cfg, log); err != nil {
			log.Error("avmilter stopped", slog.Any("err", err))
			return 1
		}
		return 0
	}
	fmt.Fprintf(stderr, "avmilter: unknown command %q; use run, check-config, report, eicar-test, quarantine or version\n", cmd)
	return 2
}

// load reads the config and, with stations, the secret file, so that
// check-config finds a bad secret file too.
func load(path string) (*config.Milter, error) {
	cfg, err := config.LoadMilter(path)
	if err != nil {
		return nil, err
	}
	if len(cfg.Stations) > 0 || cfg.SecretFile != "" {
		if _, err := jobproto.LoadSecretFile(cfg.SecretFile); err != nil {
			return nil, fmt.Errorf("%s: secret_file: %w", path, err)
		}
	}
	if cfg.BypassFile != "" {
		if _, err := bypass.Load(cfg.BypassFile); err != nil {
			return nil, fmt.Errorf("%s: bypass_file: %w", path, err)
		}
	}
	return cfg, nil
}

func serve(cfg *config.Milter, log *slog.Logger) error {
	if err := daemon.SpoolDir(cfg.SpoolDir); err != nil {
		return err
	}
	// Held bodies, rewritten bodies and in-process part spills a crash left.
	var external config.Scanner
	if len(cfg.Stations) == 0 {
		external = cfg.Scanner
	}
	daemon.Sweep(log, time.Now(), cfg.SpoolDir, []string{spool.FilePattern}, external)
	if cfg.ActivityDir != "" {
		if err := daemon.Dir("activity_dir", cfg.ActivityDir); err != nil {
			return fmt.Errorf("%w (set activity_dir to a directory this user may write, or off)", err)
		}
	}
	log.Info("activity log", slog.String("activity_dir", or(cfg.ActivityDir, config.Off)))
	ctx, stop := daemon.Signals()
	defer stop()
	var keys *jobproto.KeyRing
	if cfg.SecretFile != "" {
		var err error
		if keys, err = jobproto.LoadSecretFile(cfg.SecretFile); err != nil {
			return fmt.Errorf("secret_file: %w", err)
		}
	}
	var sc milter.Scanner
	var pool *milter.Pool
	reg := daemon.Registry("avmilter")
	if len(cfg.Stations) > 0 {
		hc, err := stationHTTP(cfg)
		if err != nil {
			return err
		}
		pool = milter.NewPool(&jobproto.Client{Stations: cfg.Stations, Keys: keys, HTTP: hc},
			milter.PoolOptions{ProbeAfter: cfg.StationProbeAfter, ProbeTimeout: cfg.StationProbeTimeout}, log, reg)
		go pool.Watch(ctx, cfg.StationProbe)
		sc = pool
	} else {
		local, _, err := daemon.Scanner(ctx, cfg.Scanner, cfg.SpoolDir, log)
		if err != nil {
			return err
		}
		sc = milter.LocalScanner{Scanner: local}
		go daemon.LogClamdLimits(ctx, cfg.Scanner, log)
	}
	bp, err := bypass.NewHolder(cfg.BypassFile)
	if err != nil {
		return fmt.Errorf("bypass_file: %w", err)
	}
	go reloadOnHUP(ctx, bp, pool, cfg.SecretFile, log)
	srv, err := milter.New(cfg, sc, bp, log, reg)
	if err != nil {
		return err
	}
	srv.ReleaseKeys = keys
	ln, err := milter.Listen(cfg)
	if err != nil {
		return err
	}
	daemon.ServePprof(ctx, log, cfg.PprofListen)
	if cfg.MetricsListen != "" {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
		hs := &http.Server{Addr: cfg.MetricsListen, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := daemon.Serve(ctx, log, hs, hs.ListenAndServe); err != nil {
				log.Error("metrics server", slog.Any("err", err))
			}
		}()
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down; waiting for sessions in progress")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ScanTimeout+5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// stationHTTP is the HTTP client for the stations, with the TLS settings
// and connect timeout of cfg.
func stationHTTP(cfg *config.Milter) (*http.Client, error) {
	pins, err := config.ParsePins(cfg.StationPin)
	if err != nil {
		return nil, fmt.Errorf("station_pin_sha256: %w", err)
	}
	tc, err := jobproto.ClientTLS{CAFile: cfg.StationCA, Pins: pins, CertFile: cfg.StationCert, KeyFile: cfg.StationKey}.Config()
	if err != nil {
		return nil, err
	}
	return jobproto.NewStationHTTPClient(tc, cfg.StationConnect), nil
}

// reloadOnHUP reloads the bypass file and, with stations, the secret file
// on SIGHUP (key rotation: the new key first, the old one after it, until
// every station has the new one); a file with errors leaves the old one in
// force and says why.
func reloadOnHUP(ctx context.Context, bp *bypass.Holder, pool *milter.Pool, secretFile string, log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			if pool != nil {
				if keys, err := jobproto.LoadSecretFile(secretFile); err != nil {
					log.Error("secret file not reloaded; the old keys stay in force", slog.Any("err", err))
				} else {
					pool.SetKeys(keys)
					log.Info("secret file reloaded", slog.Any("keys", keys), slog.String("signing_key", keys.Signer().ID))
				}
			}
			if err := bp.Reload(); err != nil {
				log.Error("bypass file not reloaded; the old list stays in force", slog.Any("err", err))
				continue
			}
			log.Info("bypass file reloaded", slog.String("path", bp.Path()), slog.Int("entries", bp.List().Len()))
		}
	}
}

// milterMemory is what avmilter's memory bounds add up to, for the
// collector (daemon.TuneGC): held bodies, and decoded parts when it scans
// in-process; 0 when a bound is off.
func milterMemory(cfg *config.Milter) int64 {
	if cfg.MemoryTotal <= 0 {
		return 0
	}
	total := int64(cfg.MemoryTotal)
	if len(cfg.Stations) == 0 {
		if cfg.Scanner.PartMemoryTotal <= 0 {
			return 0
		}
		total += int64(cfg.Scanner.PartMemoryTotal)
	}
	return total
}
