// Command avstation is the scan station: it takes signed scan jobs from
// avmilters over HTTP, walks each message and asks the engines.
//
//	avstation [-config FILE]                 run the station
//	avstation check-config [-config FILE]    print every config problem, exit 1 if any
//	avstation scan [-config FILE] FILE...    scan message files, print one JSON verdict per line
//	avstation show [-config FILE] JOB-ID     print the station's record of a job
//	avstation version                        print the version
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/avstation/avstation/config"
	"github.com/avstation/avstation/internal/daemon"
	"github.com/avstation/avstation/jobproto"
	"github.com/avstation/avstation/scanner"
	"github.com/avstation/avstation/spool"
	"github.com/avstation/avstation/station"
	"github.com/avstation/avstation/verdict"
	"github.com/avstation/avstation/version"
)

const defaultConfig = "/etc/avstation/avstation.yaml"

// oldJobPattern names the job bodies earlier versions spooled to their
// own files; a station that crashed under one of them left these behind.
const oldJobPattern = "avs-job-*.eml"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cmd, path, rest, ok := daemon.Args("avstation", defaultConfig, args, stderr)
	if !ok {
		return 2
	}
	switch cmd {
	case "version":
		return versionCmd(path, stdout, stderr)
	case "check-config":
		cfg, _, err := load(path)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		return daemon.CheckedOK(path, cfg.Warnings, stdout, stderr)
	case "scan":
		return scanFiles(path, rest, stdout, stderr)
	case "show":
		return showJob(path, rest, stdout, stderr)
	case "run":
		cfg, keys, err := load(path)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		log := cfg.Log.Logger(stderr)
		daemon.Warnings(log, cfg.Warnings)
		if cfg.MemoryTotal > 0 && cfg.Scanner.PartMemoryTotal > 0 {
			daemon.TuneGC(log, int64(cfg.MemoryTotal+cfg.Scanner.PartMemoryTotal))
		}
		if err := serve(cfg, keys, log); err != nil {
			log.Error("avstation stopped", slog.Any("err", err))
			return 1
		}
		return 0
	}
	fmt.Fprintf(stderr, "avstation: unknown command %q; use run, check-config, scan, show or version\n", cmd)
	return 2
}

func load(path string) (*config.Station, *jobproto.KeyRing, error) {
	cfg, err := config.LoadStation(path)
	if err != nil {
		return nil, nil, err
	}
	keys, err := jobproto.LoadSecretFile(cfg.SecretFile)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: secret_file: %w", path, err)
	}
	return cfg, keys, nil
}

func serve(cfg *config.Station, keys *jobproto.KeyRing, log *slog.Logger) error {
	if err := daemon.SpoolDir(cfg.SpoolDir); err != nil {
		return err
	}
	if cfg.RecordsDir != "" {
		if err := daemon.Dir("records_dir", cfg.RecordsDir); err != nil {
			return fmt.Errorf("%w (set records_dir to a directory this user may write, or off)", err)
		}
	}
	daemon.Sweep(log, time.Now(), cfg.SpoolDir, []string{spool.FilePattern, oldJobPattern}, cfg.Scanner)
	ctx, stop := daemon.Signals()
	defer stop()
	hup, stopHUP := notifyHUP()
	defer stopHUP()
	sc, pool, err := daemon.Scanner(ctx, cfg.Scanner, cfg.SpoolDir, log)
	if err != nil {
		return err
	}
	go daemon.LogClamdLimits(ctx, cfg.Scanner, log)
	st := station.New(cfg, sc, pool, keys, log, daemon.Registry("avstation"))
	go reloadOnHUP(ctx, hup, st, cfg.SecretFile, log)
	go st.PruneRecords(ctx, time.Now)
	daemon.ServePprof(ctx, log, cfg.PprofListen)
	hs := st.Server(log)
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	ln = st.Listener(ln, cfg.TLSCert == "")
	records := cfg.RecordsDir
	if records == "" {
		records = config.Off
	}
	log.Info("avstation listening", slog.String("listen", cfg.Listen), slog.Bool("tls", cfg.TLSCert != ""), slog.Bool("mutual_tls", cfg.TLSClientCA != ""),
		slog.String("records_dir", records), slog.Duration("records_max_age", cfg.RecordsMaxAge),
		slog.Any("clamd", cfg.Scanner.Clamd), slog.Any("keys", keys), slog.Int("max_connections", cfg.MaxConnections))
	listen := func() error { return hs.Serve(ln) }
	if cfg.TLSCert != "" {
		tc, err := jobproto.ServerTLS(cfg.TLSCert, cfg.TLSKey, cfg.TLSClientCA)
		if err != nil {
			return err
		}
		hs.TLSConfig = tc
		listen = func() error { return hs.ServeTLS(ln, "", "") }
	}
	return daemon.Serve(ctx, log, hs, listen)
}

// versionCmd prints the version and, when the config can be read, each
// engine's version and a warning for each clamd that does not report
// content past its limits. Exit status 0 unless an engine gave no version.
func versionCmd(path string, stdout, stderr io.Writer) int {
	fmt.Fprintf(stdout, "avstation %s\n", version.Version)
	cfg, err := config.LoadStation(path)
	if err != nil {
		return 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opts := cfg.Scanner
	opts.CacheEntries = 0
	sc, _, err := daemon.Scanner(ctx, opts, os.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	code := 0
	for _, e := range sc.Versions(ctx) {
		if e.Version == "" {
			fmt.Fprintf(stdout, "  %s: version unknown (unreachable)\n", e.Name)
			code = 1
			continue
		}
		fmt.Fprintf(stdout, "  %s: %s", e.Name, e.Version)
		if e.SignatureVersion != "" {
			fmt.Fprintf(stdout, ", signatures %s", e.SignatureVersion)
		}
		fmt.Fprintln(stdout)
	}
	for _, c := range daemon.CheckClamdLimits(ctx, cfg.Scanner) {
		if w := c.Warning(); w != "" {
			fmt.Fprintf(stderr, "warning: %s\n", w)
		} else {
			fmt.Fprintf(stdout, "  clamd %s reports content past its limits (AlertExceedsMax yes)\n", c.Addr)
		}
	}
	return code
}

// scanFiles scans each file as a raw message with the configured engines
// and prints one JSON verdict a line. Exit status: 0 every file clean, 1 any
// not clean, 2 a usage, config or file error.
func scanFiles(path string, files []string, stdout, stderr io.Writer) int {
	if len(files) == 0 {
		fmt.Fprintln(stderr, "avstation scan: name at least one message file")
		return 2
	}
	cfg, err := config.LoadStation(path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	opts := cfg.Scanner
	opts.CacheEntries = 0
	ctx, stop := daemon.Signals()
	defer stop()
	sc, _, err := daemon.Scanner(ctx, opts, os.TempDir(), cfg.Log.Logger(stderr))
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	code := 0
	enc := json.NewEncoder(stdout)
	for _, name := range files {
		v, err := scanFile(ctx, sc, name)
		if err != nil {
			fmt.Fprintf(stderr, "avstation scan: %v\n", err)
			return 2
		}
		enc.Encode(struct {
			File string `json:"file"`
			*verdict.Verdict
		}{name, v})
		if v.Status != verdict.Clean {
			code = 1
		}
	}
	return code
}

func scanFile(ctx context.Context, sc *scanner.Scanner, name string) (*verdict.Verdict, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", name)
	}
	return sc.Scan(ctx, f, fi.Size())
}

// showJob prints the record of a job: what the milter's log line and the
// list's activity log point at with the job id.
func showJob(path string, args []string, stdout, stderr io.Writer) int {
	asJSON := len(args) > 0 && args[0] == "--json"
	if asJSON {
		args = args[1:]
	}
	if len(args) != 1 {
		fmt.Fprintln(stderr, "avstation show: name one job id (avstation show [-config FILE] [--json] JOB-ID)")
		return 2
	}
	cfg, err := config.LoadStation(path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if cfg.RecordsDir == "" {
		fmt.Fprintf(stderr, "avstation show: records_dir is off in %s, so no job records are kept\n", path)
		return 1
	}
	rec, err := station.Records{Dir: cfg.RecordsDir}.Get(args[0])
	if err != nil {
		fmt.Fprintf(stderr, "avstation show: %v\n", err)
		return 1
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rec)
		return 0
	}
	fmt.Fprint(stdout, rec.Describe())
	return 0
}
