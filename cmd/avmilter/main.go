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
	"crypto/tls"
	"crypto/x509"
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
	if len(cfg.Stations) > 0 {
		hc, err := stationHTTP(cfg.StationCA)
		if err != nil {
			return err
		}
		sc = &jobproto.Client{Stations: cfg.Stations, Keys: keys, HTTP: hc}
	} else {
		local, _, err := daemon.Scanner(ctx, cfg.Scanner, cfg.SpoolDir, log)
		if err != nil {
			return err
		}
		sc = milter.LocalScanner{Scanner: local}
	}
	bp, err := bypass.NewHolder(cfg.BypassFile)
	if err != nil {
		return fmt.Errorf("bypass_file: %w", err)
	}
	go reloadOnHUP(ctx, bp, log)
	reg := daemon.Registry("avmilter")
	if len(cfg.Stations) > 0 {
		hc, err := stationHTTP(cfg.StationCA)
		if err != nil {
			return err
		}
		go milter.WatchStations(ctx, hc, cfg.Stations, reg, cfg.StationProbe)
	}
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

// stationHTTP is the HTTP client for the stations, trusting the CAs in
// caFile when it is set.
func stationHTTP(caFile string) (*http.Client, error) {
	if caFile == "" {
		return jobproto.NewHTTPClient(nil), nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("station_ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("station_ca_file %s: no PEM certificate in it", caFile)
	}
	return jobproto.NewHTTPClient(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}), nil
}

// reloadOnHUP reloads the bypass file on SIGHUP; a file with errors leaves
// the old list in force and says why.
func reloadOnHUP(ctx context.Context, bp *bypass.Holder, log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			if err := bp.Reload(); err != nil {
				log.Error("bypass file not reloaded; the old list stays in force", slog.Any("err", err))
				continue
			}
			log.Info("bypass file reloaded", slog.String("path", bp.Path()), slog.Int("entries", bp.List().Len()))
		}
	}
}
