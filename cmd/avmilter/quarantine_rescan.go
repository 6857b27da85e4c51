package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/avstation/avstation/internal/daemon"
	"github.com/avstation/avstation/jobproto"
	"github.com/avstation/avstation/milter"
	"github.com/avstation/avstation/policy"
	"github.com/avstation/avstation/verdict"
)

func (q *quarantineCLI) rescan(args []string) error {
	all := q.flags.Bool("all", false, "rescan every quarantined message")
	releaseClean := q.flags.Bool("release-clean", false, "release each message that is now clean")
	smtpAddr := q.flags.String("smtp", "", "host:port of the MTA releases go to (default quarantine.smtp, else "+defaultReleaseSMTP+")")
	ids, err := q.parse(args)
	if err != nil {
		return err
	}
	switch {
	case *all && len(ids) > 0:
		return usagef("give IDs or --all, not both")
	case !*all && len(ids) == 0:
		return usagef("rescan takes IDs or --all")
	}
	if err := checkIDs(ids); err != nil {
		return err
	}
	if err := q.open(); err != nil {
		return err
	}
	var keys *jobproto.KeyRing
	var addr string
	if *releaseClean {
		// Refuse before scanning, not after.
		if addr, err = q.smtpAddr(*smtpAddr); err != nil {
			return err
		}
		if keys, err = q.releaseKeys(); err != nil {
			return err
		}
	}
	var errs []error
	if *all {
		recs, err := q.dir.List()
		if err != nil {
			// The readable records are rescanned all the same.
			fmt.Fprintf(q.stderr, "avmilter quarantine rescan: %v\n", err)
			errs = append(errs, err)
		}
		for _, r := range recs {
			ids = append(ids, r.ID)
		}
	}
	ctx, stop := daemon.Signals()
	defer stop()
	sc, err := q.scanner(ctx)
	if err != nil {
		return err
	}
	for _, id := range ids {
		accepted, err := q.rescanOne(ctx, sc, id)
		if err == nil && accepted && *releaseClean {
			err = q.releaseOne(ctx, id, keys, addr)
		}
		if err != nil {
			fmt.Fprintf(q.stderr, "avmilter quarantine rescan: %v\n", err)
			errs = append(errs, err)
		}
		if ctx.Err() != nil {
			break
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%d errors for %d messages (see above)", len(errs), len(ids))
	}
	return nil
}

// scanner is the scanner the milter uses: its stations, or in-process
// engines when it has none.
func (q *quarantineCLI) scanner(ctx context.Context) (milter.Scanner, error) {
	cfg := q.cfg
	if len(cfg.Stations) > 0 {
		if cfg.SecretFile == "" {
			return nil, fmt.Errorf("secret_file is not set in %s: the stations need the secret word", q.configPath)
		}
		keys, err := jobproto.LoadSecretFile(cfg.SecretFile)
		if err != nil {
			return nil, fmt.Errorf("%s: secret_file: %w", q.configPath, err)
		}
		hc, err := stationHTTP(cfg)
		if err != nil {
			return nil, err
		}
		return &jobproto.Client{Stations: cfg.Stations, Keys: keys, HTTP: hc}, nil
	}
	log := slog.New(slog.NewTextHandler(q.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	local, _, err := daemon.Scanner(ctx, cfg.Scanner, rescanSpool(cfg.SpoolDir), log)
	if err != nil {
		return nil, err
	}
	return milter.LocalScanner{Scanner: local}, nil
}

// rescanSpool is where an in-process rescan spools large parts: the
// milter's spool_dir when this user may write there, else the temporary
// directory.
func rescanSpool(spoolDir string) string {
	if f, err := os.CreateTemp(spoolDir, ".rescan-*"); err == nil {
		f.Close()
		os.Remove(f.Name())
		return spoolDir
	}
	return os.TempDir()
}

// rescanOne scans one kept message again, says what changed, and asks the
// whole policy what it would do with the message now, with its envelope
// as recorded. accepted is true only when the engines call it clean and
// the policy would accept it as it is: an engine's "clean" says nothing of
// a banned file name or an encrypted archive.
func (q *quarantineCLI) rescanOne(ctx context.Context, sc milter.Scanner, id string) (accepted bool, err error) {
	rec, msg, err := q.dir.Get(id)
	if err != nil {
		return false, q.notFound(id, err)
	}
	defer msg.Close()
	f, ok := msg.(*os.File)
	if !ok {
		return false, fmt.Errorf("%s: message is not a file", id)
	}
	st, err := f.Stat()
	if err != nil {
		return false, fmt.Errorf("%s: %w", id, err)
	}
	sctx, cancel := context.WithTimeout(ctx, q.cfg.ScanTimeout)
	defer cancel()
	meta := jobproto.Meta{QueueID: rec.QueueID, Sender: rec.Sender, Recipients: rec.Recipients, Lists: rec.Lists}
	v, err := sc.Scan(sctx, meta, f, st.Size())
	if err == nil && v == nil {
		err = errors.New("scanner returned no verdict")
	}
	if err != nil {
		return false, fmt.Errorf("%s: rescan: %w", id, err)
	}
	was := fmt.Sprintf("%s (%s)", cell(rec.Outcome), describe(rec.Verdict, verdict.Status(rec.Outcome)))
	now := fmt.Sprintf("%s (%s)", cell(string(v.Status)), describe(v, v.Status))
	switch {
	case v.Status == verdict.Clean:
		d := q.cfg.Policies.Decide(policy.Input{Lists: rec.Lists, Sender: rec.Sender, Recipients: rec.Recipients, Verdict: v})
		if d.Outcome != policy.OutcomeClean || d.Verb != policy.AcceptMsg || len(d.Strip) > 0 || d.DryRun {
			fmt.Fprintf(q.stdout, "%s: was %s, now clean to the engines, but the policy says %s (%s %s): not released\n",
				id, was, d.Outcome, d.Verb, cell(d.FileName))
			return false, nil
		}
		fmt.Fprintf(q.stdout, "%s: was %s, now clean\n", id, was)
		return true, nil
	case string(v.Status) == rec.Outcome:
		fmt.Fprintf(q.stdout, "%s: still %s\n", id, now)
	default:
		fmt.Fprintf(q.stdout, "%s: was %s, now %s\n", id, was, now)
	}
	return false, nil
}

// describe names what a verdict found for a status: the threat, or why
// (encrypted, limit exceeded), "???" when it does not say.
func describe(v *verdict.Verdict, s verdict.Status) string {
	if v == nil {
		return "???"
	}
	f, ok := v.First(s)
	switch {
	case !ok:
		return "???"
	case f.Threat != "":
		return cell(f.Threat)
	case f.Detail != "":
		return cell(f.Detail)
	}
	return "???"
}
