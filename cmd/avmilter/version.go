package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/avstation/avstation/config"
	"github.com/avstation/avstation/internal/daemon"
	"github.com/avstation/avstation/jobproto"
	"github.com/avstation/avstation/verdict"
	"github.com/avstation/avstation/version"
)

// versionCmd prints avmilter's version and, as LISTSERV's SHOW VERSION does,
// the engines and signature databases that scan its mail: each station's,
// or the local ones when it scans in-process. Without a readable config it
// prints its own version only.
func versionCmd(path string, stdout io.Writer) int {
	fmt.Fprintf(stdout, "avmilter %s\n", version.Version)
	cfg, err := config.LoadMilter(path)
	if err != nil {
		return 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if len(cfg.Stations) == 0 {
		sc, _, err := daemon.Scanner(ctx, cfg.Scanner, cfg.SpoolDir, slog.New(slog.DiscardHandler))
		if err != nil {
			fmt.Fprintf(stdout, "in-process scanner: %v\n", err)
			return 1
		}
		fmt.Fprintln(stdout, "in-process scanner:")
		printEngines(stdout, sc.Versions(ctx))
		for _, c := range daemon.CheckClamdLimits(ctx, cfg.Scanner) {
			if w := c.Warning(); w != "" {
				fmt.Fprintf(stdout, "warning: %s\n", w)
			}
		}
		return 0
	}
	keys, err := jobproto.LoadSecretFile(cfg.SecretFile)
	if err != nil {
		fmt.Fprintf(stdout, "secret_file: %v\n", err)
		return 1
	}
	hc, err := stationHTTP(cfg)
	if err != nil {
		fmt.Fprintln(stdout, err)
		return 1
	}
	client := &jobproto.Client{Stations: cfg.Stations, Keys: keys, HTTP: hc}
	code := 0
	for _, st := range cfg.Stations {
		info, err := client.Info(ctx, st)
		if err != nil {
			fmt.Fprintf(stdout, "station %s: unreachable: %v\n", st, err)
			code = 1
			continue
		}
		fmt.Fprintf(stdout, "station %s: avstation %s on %s\n", st, info.Version, info.Station)
		printEngines(stdout, info.Engines)
	}
	return code
}

func printEngines(w io.Writer, engines []verdict.Engine) {
	for _, e := range engines {
		v := e.Version
		if v == "" {
			v = "version unknown"
		}
		fmt.Fprintf(w, "  %s: %s\n", e.Name, v)
		switch {
		case !e.SignatureTime.IsZero():
			fmt.Fprintf(w, "  Virus database version: %s (%s)\n", e.SignatureTime.Format("2006-01-02 15:04:05"), e.SignatureVersion)
		case e.SignatureVersion != "":
			fmt.Fprintf(w, "  Virus database version: %s\n", e.SignatureVersion)
		default:
			fmt.Fprintln(w, "  Virus database version: unknown (the engine did not say)")
		}
	}
}
