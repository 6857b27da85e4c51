// Package milter is avmilter's front end to the MTA: it speaks the milter
// protocol (Postfix smtpd_milters, Sendmail INPUT_MAIL_FILTER), decides which
// messages are bound for mailing lists, holds their bodies, has them scanned
// and applies the policy's decision to the MTA.
package milter

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/d--j/go-milter"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/avstation/avstation/activity"
	"github.com/avstation/avstation/bypass"
	"github.com/avstation/avstation/config"
	"github.com/avstation/avstation/jobproto"
	"github.com/avstation/avstation/notice"
	"github.com/avstation/avstation/policy"
	"github.com/avstation/avstation/scanner"
	"github.com/avstation/avstation/spool"
	"github.com/avstation/avstation/verdict"
)

// Scanner scans one held message: a station over the job protocol, or the
// scanner package in-process. An error means there is no verdict.
type Scanner interface {
	Scan(ctx context.Context, meta jobproto.Meta, body io.ReaderAt, size int64) (*verdict.Verdict, error)
}

// LocalScanner scans in-process, for a single host with no station.
type LocalScanner struct{ *scanner.Scanner }

// Scan ignores the envelope: the scanner needs only the bytes, and their
// SHA-256 for its cache when the body hashed itself as it arrived.
func (l LocalScanner) Scan(ctx context.Context, meta jobproto.Meta, body io.ReaderAt, size int64) (*verdict.Verdict, error) {
	if d, ok := jobproto.KnownDigest(body, size); ok {
		ctx = scanner.WithDigest(ctx, d)
	}
	v, err := l.Scanner.Scan(ctx, body, size)
	if v != nil {
		v.JobID = meta.JobID
	}
	return v, err
}

// Server is the milter server.
type Server struct {
	cfg      *config.Milter
	lists    *Lists
	scanner  Scanner
	log      *slog.Logger
	metrics  *metrics
	conns    sessions      // MTA connections open, for max_sessions
	held     budget        // bytes of messages held, for spool_max_total
	memory   *spool.Memory // bytes of bodies in memory, for memory_buffer_total
	hostname string
	primary  string // this milter's id at the stations: primary_id, else hostname
	mode     string // "station" or "in-process", for the log
	// hashBodies: held bodies hash themselves as they arrive (hashesBodies).
	hashBodies bool
	ms         *milter.Server
	bypass     *bypass.Holder // nil: no bypass file

	// notices signs the mark of the notices this process submits and lets
	// each through once when it comes back (see package notice); the key
	// is this process's alone.
	notices *notice.Guard

	// ReleaseKeys verify the release header of a message let out of the
	// quarantine (avmilter quarantine release); nil: releases are scanned
	// like any other message.
	ReleaseKeys *jobproto.KeyRing
}

// New builds a server from a checked configuration (config.LoadMilter, or
// Prepare for one built in code): its compiled policies are the only ones
// the milter decides with, so that a policy whose filters were never
// compiled cannot enforce nothing. reg receives the milter's metrics; bp
// holds the bypass list (nil for none).
func New(cfg *config.Milter, sc Scanner, bp *bypass.Holder, log *slog.Logger, reg prometheus.Registerer) (*Server, error) {
	host, _ := os.Hostname()
	if cfg.Policies == nil {
		return nil, errors.New("milter: the configuration's policy is not compiled: load it with config.LoadMilter, or call its Prepare method")
	}
	s := &Server{cfg: cfg, lists: ListsFor(cfg), scanner: sc, bypass: bp, log: log, metrics: newMetrics(reg), hostname: host, mode: "in-process"}
	s.conns.max, s.held.max = cfg.MaxSessions, int64(cfg.SpoolMaxTotal)
	s.memory = spool.NewMemory(int64(cfg.MemoryTotal))
	s.primary = cfg.PrimaryID
	if s.primary == "" {
		s.primary = host
	}
	if len(cfg.Stations) > 0 {
		s.mode = "station"
	}
	s.hashBodies = hashesBodies(sc)
	s.notices = notice.NewGuard(notice.NewKey())
	s.ms = milter.NewServer(
		milter.WithDynamicMilter(func(uint32, milter.OptAction, milter.OptProtocol, milter.DataSize) milter.Milter {
			return s.newSession()
		}),
		milter.WithNegotiationCallback(s.negotiate),
		milter.WithMacroRequest(milter.StageEOM, []milter.MacroName{milter.MacroQueueId}),
		milter.WithMacroRequest(milter.StageMail, []milter.MacroName{milter.MacroAuthAuthen}),
		milter.WithMacroRequest(milter.StageRcpt, []milter.MacroName{milter.MacroRcptAddr}), // as the MTA resolved it
		// A silent MTA for this long is gone; scans have their own timeout.
		milter.WithReadTimeout(cfg.MTAReadTimeout),
		milter.WithWriteTimeout(cfg.MTAWriteTimeout),
	)
	return s, nil
}

// hashesBodies reports whether sc uses a message's SHA-256, which the
// held body then takes as it arrives (spool.Buffer.HashSHA256) instead of
// being read again for it: a station job's digest, the verdict cache of
// the in-process scanner.
func hashesBodies(sc Scanner) bool {
	switch sc := sc.(type) {
	case *Pool:
		return true
	case LocalScanner:
		return sc.Caches()
	}
	return false
}

// newBuffer holds a message body: in memory up to memory_buffer and while
// all bodies together stay under memory_buffer_total, else in spool_dir.
func (s *Server) newBuffer() *spool.Buffer {
	return spool.NewShared(s.cfg.SpoolDir, int64(s.cfg.MemoryBuffer), s.memory)
}

// newSession is the milter of one MTA connection, counted against
// max_sessions until its Cleanup.
func (s *Server) newSession() milter.Milter {
	sess := &session{srv: s, busy: !s.conns.enter()}
	sess.reset()
	return guarded{s: sess, inner: sess}
}

// negotiate takes what this milter uses of what the MTA offers. Data is kept
// to 64 KB packets even where Sendmail offers more: go-milter's ReplaceBody
// breaks above that size.
// The MTA's offer is logged (debug) since what Sendmail offers depends on
// how it was built.
func (s *Server) negotiate(mtaVersion, milterVersion uint32, mtaActions, _ milter.OptAction, mtaProtocol, _ milter.OptProtocol, offered milter.DataSize) (uint32, milter.OptAction, milter.OptProtocol, milter.DataSize, error) {
	version := min(mtaVersion, milterVersion)
	if version < 2 {
		return 0, 0, 0, 0, fmt.Errorf("MTA speaks milter protocol version %d; at least 2 is needed", mtaVersion)
	}
	actions := (milter.OptAddHeader | milter.OptChangeHeader | milter.OptChangeBody) & mtaActions
	// No reply to Connect, MAIL, each recipient and header, the end of the
	// headers and each body chunk: the MTA sends them without waiting, a
	// round trip saved for each (a 1 KB posting on its own connection has
	// about ten; it is left with two: DATA and the end of the message). A
	// decision made there is deferred to the next reply the MTA reads
	// (session.unheard). DATA keeps its reply: mail for no list is let go
	// there, before its body is sent.
	protocol := (milter.OptNoHelo | milter.OptNoUnknown | milter.OptHeaderLeadingSpace |
		milter.OptNoConnReply | milter.OptNoMailReply | milter.OptNoRcptReply |
		milter.OptNoHeaderReply | milter.OptNoEOHReply | milter.OptNoBodyReply) & mtaProtocol
	s.log.Debug("milter negotiated", slog.Uint64("mta_version", uint64(mtaVersion)), slog.Uint64("version", uint64(version)),
		slog.Uint64("offered_data_size", uint64(offered)), slog.Uint64("data_size", uint64(milter.DataSize64K)))
	return version, actions, protocol, milter.DataSize64K, nil
}

// Listen opens the configured socket. A unix socket left behind by a
// previous run is removed first, but only when nothing answers on it.
func Listen(cfg *config.Milter) (net.Listener, error) {
	network, addr, err := config.ParseListen(cfg.Listen)
	if err != nil {
		return nil, err
	}
	if network == "unix" {
		if err := removeStaleSocket(addr); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	if network == "unix" {
		if err := os.Chmod(addr, cfg.SocketFileMode()); err != nil {
			ln.Close()
			return nil, fmt.Errorf("listen %s: %w", cfg.Listen, err)
		}
	}
	return ln, nil
}

func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("socket %s: %w", path, err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("socket %s: a file that is not a socket is in the way; remove it or choose another path", path)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("socket %s: another process is listening on it (is avmilter already running?)", path)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("socket %s: removing stale socket: %w", path, err)
	}
	return nil
}

// Serve handles MTA connections on ln until Shutdown. Every connection is
// handed to go-milter as a wireConn, which saves it a syscall or two per
// packet.
func (s *Server) Serve(ln net.Listener) error {
	s.log.Info("avmilter listening", slog.String("listen", ln.Addr().String()), slog.String("mode", s.mode))
	err := s.ms.Serve(wireListener{ln})
	if errors.Is(err, milter.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting and waits for sessions in progress until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error { return s.ms.Shutdown(ctx) }

// record writes the one log line of a decision and counts it.
func (s *Server) record(meta jobproto.Meta, d policy.Decision, v *verdict.Verdict, scanErr error, a applied, took time.Duration, size int64) {
	attrs := []any{
		slog.String("queue_id", meta.QueueID),
		slog.String("job_id", meta.JobID),
		slog.String("outcome", string(d.Outcome)),
		slog.String("action", string(a.verb)),
		slog.Any("lists", meta.Lists),
		slog.String("from", meta.Sender),
		slog.Int("rcpts", len(meta.Recipients)),
		slog.Int64("size", size),
		slog.Duration("took", took),
	}
	if d.Threat != "" || d.Outcome == policy.OutcomeInfected {
		attrs = append(attrs, slog.String("threat", policy.ThreatName(d.Threat)))
	}
	if d.FileName != "" {
		attrs = append(attrs, slog.String("file", d.FileName))
	}
	if d.DryRun {
		attrs = append(attrs, slog.Bool("dry_run", true), slog.String("would", string(d.Verb)))
	}
	if a.reply != nil {
		attrs = append(attrs, slog.String("reply", a.reply.String()))
	}
	for _, r := range a.stripped {
		attrs = append(attrs, slog.String("stripped", r.Path+" "+r.FileName))
	}
	if a.rescanJob != "" {
		attrs = append(attrs, slog.String("rescan_job_id", a.rescanJob))
	}
	if a.quarantined != "" {
		attrs = append(attrs, slog.String("quarantine", a.quarantined))
	}
	if len(a.notified) > 0 {
		attrs = append(attrs, slog.Any("notified", a.notified))
	}
	if v != nil && v.Scanner != "" {
		attrs = append(attrs, slog.String("scanner", v.Scanner))
	}
	level := slog.LevelInfo
	if scanErr != nil {
		attrs = append(attrs, slog.String("err", scanErr.Error()))
		level = slog.LevelWarn
	}
	if len(a.problems) > 0 {
		attrs = append(attrs, slog.Any("problems", a.problems))
		level = slog.LevelWarn
	}
	if a.reply != nil && a.reply.Cause != nil {
		attrs = append(attrs, slog.String("apply_err", a.reply.Cause.Error()))
		level = slog.LevelWarn
		var mtaErr *mtaError
		if errors.As(a.reply.Cause, &mtaErr) {
			level = slog.LevelError
		}
	}
	s.log.Log(context.Background(), level, "message scanned", attrs...)
	s.metrics.observe(meta.Lists, d.Outcome, a.verb, took)
	s.activity(meta, d, a)
}

// activity writes the event to the activity log of each list, as LISTSERV
// does: VIRUS with the threat name or ???, and a word for each other
// outcome that is not a clean delivery.
func (s *Server) activity(meta jobproto.Meta, d policy.Decision, a applied) {
	typ := eventType(d, a)
	if typ == "" || s.cfg.ActivityDir == "" {
		return
	}
	detail := d.Threat
	if typ != activity.Virus && typ != activity.Stripped {
		detail = d.Finding.Detail
	}
	for _, list := range meta.Lists {
		e := activity.Event{Time: time.Now(), List: list, Type: typ, Threat: detail, JobID: meta.JobID,
			QueueID: meta.QueueID, File: d.FileName, Action: string(a.verb)}
		if err := (activity.Log{Dir: s.cfg.ActivityDir}).Write(e); err != nil {
			s.log.Error("activity log", slog.Any("err", err), slog.String("job_id", meta.JobID))
		}
	}
}

func eventType(d policy.Decision, a applied) string {
	switch {
	case d.Outcome == policy.OutcomeClean:
		return ""
	case len(a.stripped) > 0:
		return activity.Stripped
	case d.Outcome == policy.OutcomeInfected:
		return activity.Virus
	case a.verb == policy.TempfailMsg:
		return activity.Tempfail
	case d.Outcome == policy.OutcomeEncrypted:
		return activity.Encrypted
	case d.Outcome == policy.OutcomeBannedName:
		return activity.Banned
	case d.Outcome == policy.OutcomeLimitExceeded:
		return activity.Limit
	}
	return activity.Unscanned // unscannable, oversize, a tagged station failure
}
