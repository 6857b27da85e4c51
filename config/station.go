package config

import (
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/avstation/avstation/scanner"
	"github.com/avstation/avstation/scanner/clamd"
	"github.com/avstation/avstation/scanner/external"
)

// Station is avstation's whole configuration.
type Station struct {
	Listen  string `yaml:"listen" doc:"host:port for the job protocol, /healthz and /metrics"`
	TLSCert string `yaml:"tls_cert" doc:"certificate file (PEM) to serve HTTPS; empty: plain HTTP (use TLS across hosts)"`
	TLSKey  string `yaml:"tls_key" doc:"private key file (PEM) for tls_cert"`
	// TLSClientCA turns on mutual TLS: a milter must show a certificate
	// this CA signed before it can say anything.
	TLSClientCA    string   `yaml:"tls_client_ca" doc:"PEM file of the CA(s) that sign the milters' client certificates; set: a client certificate is required (mutual TLS); empty: none asked for"`
	AllowPlainHTTP bool     `yaml:"allow_plain_http" doc:"serve plain HTTP (no tls_cert) on an address other than loopback; the secret word still protects integrity and replay, but anyone on the path reads the mail"`
	SecretFile     string   `yaml:"secret_file" doc:"file with the secret word(s) the milters sign with; mode 0600"`
	SpoolDir       string   `yaml:"spool_dir" doc:"directory where job bodies larger than memory_buffer are spooled while scanned (files 0600, always removed)"`
	MemoryBuffer   ByteSize `yaml:"memory_buffer" doc:"bytes of one job body held in memory while scanned; larger bodies are spooled to spool_dir"`
	MemoryTotal    ByteSize `yaml:"memory_buffer_total" doc:"most bytes of all job bodies held in memory at once; past it a body is spooled though under memory_buffer; 0: no bound"`
	// RecordsDir is empty after LoadStation when it is off; a Station
	// made in code has it off unless set.
	RecordsDir    string        `yaml:"records_dir" default:"/var/lib/avstation/records" doc:"directory of the per-job records (engines, versions, findings, raw engine replies) that avstation show prints, created 0700; off: none kept"`
	RecordsMaxAge time.Duration `yaml:"records_max_age" doc:"how long job records are kept: older days are removed at start and every hour (was records_keep)"`
	MaxMessage    ByteSize      `yaml:"max_message_size" doc:"largest job body accepted; larger ones get 413"`
	MaxConcurrent int           `yaml:"max_concurrent" doc:"scans at once; when full a job waits up to queue_wait for its turn, then the station answers 503 and the milter tries the next station"`
	QueueWait     time.Duration `yaml:"queue_wait" doc:"how long a job may wait for one of the max_concurrent scans, first come first served, before the station answers 503; 0: 503 at once"`
	ClockSkew     time.Duration `yaml:"clock_skew" doc:"how far a job's timestamp may be from the station's clock (replay window)"`
	// The HTTP server's bounds: what one peer, signed or not, can hold.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout" doc:"how long a request's header may take to arrive; a request that has not authenticated gets no more time than this for anything else either: a slow or stalled client is cut off"`
	BodyTimeout       time.Duration `yaml:"body_timeout" doc:"how long reading one job's body may take, counted from when its signature verified (64MiB at 256KiB/s), and then again writing its answer; a stalled milter connection is closed"`
	IdleTimeout       time.Duration `yaml:"idle_timeout" doc:"how long a keep-alive connection may wait for its next request; above the milter's 90s so that the milter closes an idle connection first and never sends a job on one the station is closing"`
	MaxRequestHeader  ByteSize      `yaml:"max_request_header_bytes" doc:"largest request header (Avs-Meta lists every recipient: 1000 of them fit); larger is refused with 431 before any authentication"`
	MaxConnections    int           `yaml:"max_connections" doc:"open connections at once; beyond them a new one gets 503 (Retry-After: 1) and is closed, and the milter tries the next station or waits. Each costs a few KiB: idle milter connections are at most 16 per milter"`
	Scanner           Scanner       `yaml:"scanner" doc:"engines and limits"`
	PprofListen       string        `yaml:"pprof_listen" doc:"loopback address (127.0.0.1:PORT) serving Go's profiler at /debug/pprof/, for measuring (make bench); empty: off"`
	Log               Log           `yaml:"log" doc:"logging"`

	// Warnings are LoadStation's, as Milter's.
	Warnings []string `yaml:"-"`
}

// Scanner configures engines and limits, for the station and for
// avmilter's in-process mode.
type Scanner struct {
	Clamd           []string          `yaml:"clamd" doc:"clamd addresses (tcp:127.0.0.1:3310, unix:/run/clamav/clamd.ctl): one pool, a scan goes to a healthy one and moves on when one fails"`
	ClamdStreamMax  ByteSize          `yaml:"clamd_stream_max" doc:"clamd's StreamMaxLength: larger content is limit-exceeded without being sent; 0: learned from clamd's refusals"`
	ClamdConnect    time.Duration     `yaml:"clamd_connect_timeout" doc:"how long connecting to one clamd may take before the scan moves to the next"`
	ClamdProbeAfter time.Duration     `yaml:"clamd_probe_after" doc:"a scan without clamd's reply this long has that clamd PINGed (and again as often): a PONG means busy, keep waiting; none within clamd_ping_timeout means hung, and the scan moves to the next clamd"`
	ClamdPing       time.Duration     `yaml:"clamd_ping_timeout" doc:"how long clamd may take to answer PING or VERSION (it answers them at once, even busy), in that probe and when a clamd marked down is tried again"`
	External        []external.Config `yaml:"external" doc:"command-line scanners, each one more engine asked about every part and member (see below)"`
	EngineTimeout   time.Duration     `yaml:"engine_timeout" doc:"how long one engine call on one part may take"`
	MaxDepth        int               `yaml:"max_depth" doc:"deepest nesting of multiparts and attached messages walked (each level costs the same, however deep); deeper is limit-exceeded, the parts above still scanned"`
	MaxParts        int               `yaml:"max_parts" doc:"most MIME parts walked in one message; more is limit-exceeded"`
	MaxHeaderBytes  ByteSize          `yaml:"max_header_bytes" doc:"largest header block of one part; larger is limit-exceeded"`
	PartMemory      ByteSize          `yaml:"part_memory" doc:"bytes of one decoded part held in memory before it spills to disk"`
	PartMemoryTotal ByteSize          `yaml:"part_memory_total" doc:"most decoded bytes all scans at once hold in memory; past it parts spill to disk though under part_memory (an in-process milter has a scan per SMTP session)"`
	MaxArchiveDepth int               `yaml:"max_archive_depth" doc:"deepest nesting of archives in archives opened (a zip in a zip is 2); deeper is limit-exceeded"`
	MaxMembers      int               `yaml:"max_members" doc:"most archive members (and files encoded in the text) with content in one message, all its archives together; empty files, directories and links do not count. More: the archive stops expanding, limit-exceeded, the rest still scanned"`
	MaxRatio        float64           `yaml:"max_ratio" doc:"largest expansion of one archive member (expanded bytes per compressed byte, checked past 1MiB), and of the whole message: all its archives together expand to at most this times its size (at least 64MiB), since nested archives multiply. More is limit-exceeded: decompression bombs stop early"`
	MaxMemberSize   ByteSize          `yaml:"max_member_size" doc:"largest expanded archive member; larger is limit-exceeded"`
	MaxExpanded     ByteSize          `yaml:"max_expanded_bytes" doc:"most bytes all archives of one message expand to together; more: the archive stops expanding, limit-exceeded, the rest still scanned"`
	MaxEngineTime   time.Duration     `yaml:"max_engine_time" doc:"most time all engine calls for one message may take together; past it archives stop expanding (limit-exceeded) and the MIME parts not yet scanned and the raw message still go to the engines. Keep the milters' scan_timeout above it plus engine_timeout"`
	MaxEngineCalls  int               `yaml:"max_engine_calls" doc:"engine calls in progress at once over all scans (clamd and external scanners); more wait their turn. Up to as many connections to each clamd are kept open between scans (clamd's IDSESSION), closed after 10s unused"`
	TryPasswords    bool              `yaml:"try_passwords" doc:"try the words after \"password\" (and its translations) in the message's text on its encrypted archives, and scan what they open"`
	ClamdWhole      bool              `yaml:"clamd_whole_message" doc:"send clamd the whole raw message, as clamav-milter does, instead of the message without the base64 bodies of its attachments of 8KiB or more, each sent decoded: clamd then reads every message's structure its own way, at about twice its CPU on mail with attachments"`
	Mode            string            `yaml:"mode" doc:"what the engines see: all (the raw message, every part and archive member), attachments (attachments and their members only) or message (the raw message only)"`
	CacheEntries    int               `yaml:"cache_entries" doc:"verdicts remembered by message SHA-256, and engine answers by part SHA-256, each with the signature versions, so that retries and cross-posts are not scanned twice; 0: off"`

	// What the station assumes of clamd's limits (scanner.ClamdLimits).
	ClamdMaxRecursion int      `yaml:"clamd_max_recursion" doc:"clamd.conf's MaxRecursion as the station assumes it: a part or member this deep less one (MIME and archive levels) is sent to clamd on its own, since clamd's scan of the raw message stopped above it; set it to your clamd.conf's value"`
	ClamdMaxFiles     int      `yaml:"clamd_max_files" doc:"clamd.conf's MaxFiles as assumed: parts and members past this many in one message are sent to clamd on their own"`
	ClamdMaxFileSize  ByteSize `yaml:"clamd_max_file_size" doc:"clamd.conf's MaxFileSize as assumed: a larger part or member (and everything in it) is sent to clamd on its own, as is every part of a larger message"`
	ClamdMaxScanSize  ByteSize `yaml:"clamd_max_scan_size" doc:"clamd.conf's MaxScanSize as assumed: parts and members past this many bytes scanned in one message are sent to clamd on their own"`
}

// DefaultScanner mirrors scanner.DefaultOptions.
func DefaultScanner() Scanner {
	d := scanner.DefaultOptions()
	return Scanner{
		Clamd:           []string{"unix:/run/clamav/clamd.ctl"},
		ClamdConnect:    clamd.DefaultDialTimeout,
		ClamdProbeAfter: clamd.DefaultProbeAfter,
		ClamdPing:       clamd.DefaultPingTimeout,
		EngineTimeout:   d.EngineTimeout,
		MaxDepth:        d.MaxDepth,
		MaxParts:        d.MaxParts,
		MaxHeaderBytes:  ByteSize(d.MaxHeaderBytes),
		PartMemory:      ByteSize(d.PartMemory),
		PartMemoryTotal: ByteSize(d.PartMemoryTotal),
		MaxArchiveDepth: d.MaxArchiveDepth,
		MaxMembers:      d.MaxMembers,
		MaxRatio:        d.MaxRatio,
		MaxMemberSize:   ByteSize(d.MaxMemberSize),
		MaxExpanded:     ByteSize(d.MaxExpanded),
		MaxEngineTime:   d.MaxEngineTime,
		MaxEngineCalls:  d.MaxEngineCalls,
		TryPasswords:    d.TryPasswords,
		Mode:            string(d.Mode),
		CacheEntries:    d.CacheEntries,

		ClamdMaxRecursion: d.Clamd.MaxRecursion,
		ClamdMaxFiles:     d.Clamd.MaxFiles,
		ClamdMaxFileSize:  ByteSize(d.Clamd.MaxFileSize),
		ClamdMaxScanSize:  ByteSize(d.Clamd.MaxScanSize),
	}
}

// Options turns the settings into the scanner's options.
func (s Scanner) Options(name, spoolDir string) scanner.Options {
	return scanner.Options{
		Name:            name,
		EngineTimeout:   s.EngineTimeout,
		MaxDepth:        s.MaxDepth,
		MaxParts:        s.MaxParts,
		MaxHeaderBytes:  int64(s.MaxHeaderBytes),
		PartMemory:      int64(s.PartMemory),
		PartMemoryTotal: int64(s.PartMemoryTotal),
		SpoolDir:        spoolDir,
		MaxArchiveDepth: s.MaxArchiveDepth,
		MaxMembers:      s.MaxMembers,
		MaxRatio:        s.MaxRatio,
		MaxMemberSize:   int64(s.MaxMemberSize),
		MaxExpanded:     int64(s.MaxExpanded),
		MaxEngineTime:   s.MaxEngineTime,
		MaxEngineCalls:  s.MaxEngineCalls,
		TryPasswords:    s.TryPasswords,
		ClamdWhole:      s.ClamdWhole,
		Mode:            scanner.Mode(s.Mode),
		CacheEntries:    s.CacheEntries,

		Clamd: scanner.ClamdLimits{MaxRecursion: s.ClamdMaxRecursion, MaxFiles: s.ClamdMaxFiles,
			MaxFileSize: int64(s.ClamdMaxFileSize), MaxScanSize: int64(s.ClamdMaxScanSize)},
	}
}

func (s Scanner) check(c *checker, prefix string) {
	if len(s.Clamd) == 0 && len(s.External) == 0 {
		c.addf(prefix+".clamd", "no engine: add a clamd address (unix:/run/clamav/clamd.ctl or tcp:127.0.0.1:3310) or an external scanner")
	}
	names := map[string]bool{"clamd": len(s.Clamd) > 0}
	for i, e := range s.External {
		key := fmt.Sprintf("%s.external[%d]", prefix, i)
		for _, p := range e.Check() {
			field, msg, _ := strings.Cut(p, ": ")
			c.addf(key+"."+field, "%s", msg)
		}
		if names[e.Name] {
			c.addf(key+".name", "%q is used by another engine; give each its own name", e.Name)
		}
		names[e.Name] = true
	}
	for i, a := range s.Clamd {
		if err := checkClamdAddr(a); err != nil {
			c.addf(fmt.Sprintf("%s.clamd[%d]", prefix, i), "%v", err)
		}
	}
	if s.EngineTimeout <= 0 {
		c.addf(prefix+".engine_timeout", "must be positive (e.g. 60s)")
	}
	for _, d := range []struct {
		key    string
		v, def time.Duration
	}{{"clamd_connect_timeout", s.ClamdConnect, clamd.DefaultDialTimeout},
		{"clamd_probe_after", s.ClamdProbeAfter, clamd.DefaultProbeAfter},
		{"clamd_ping_timeout", s.ClamdPing, clamd.DefaultPingTimeout}} {
		if d.v <= 0 {
			c.addf(prefix+"."+d.key, "must be positive (default %v)", d.def)
		}
	}
	if len(s.Clamd) > 1 && s.EngineTimeout > 0 && s.ClamdProbeAfter+s.ClamdPing >= s.EngineTimeout {
		c.addf(prefix+".clamd_probe_after", "%v plus clamd_ping_timeout %v is not below engine_timeout %v: a hung clamd would hold each scan to the end instead of passing it to the next", s.ClamdProbeAfter, s.ClamdPing, s.EngineTimeout)
	}
	if s.MaxDepth < 1 {
		c.addf(prefix+".max_depth", "must be at least 1")
	}
	if s.MaxParts < 1 {
		c.addf(prefix+".max_parts", "must be at least 1")
	}
	if s.MaxHeaderBytes < 1024 {
		c.addf(prefix+".max_header_bytes", "must be at least 1KiB")
	}
	if s.PartMemory < 0 {
		c.addf(prefix+".part_memory", "must not be negative")
	}
	if s.PartMemoryTotal < 0 {
		c.addf(prefix+".part_memory_total", "must not be negative (0 takes the default)")
	}
	for _, l := range []struct {
		key string
		n   int64
	}{{"max_archive_depth", int64(s.MaxArchiveDepth)}, {"max_members", int64(s.MaxMembers)},
		{"clamd_max_recursion", int64(s.ClamdMaxRecursion)}, {"clamd_max_files", int64(s.ClamdMaxFiles)},
		{"clamd_max_file_size", int64(s.ClamdMaxFileSize)}, {"clamd_max_scan_size", int64(s.ClamdMaxScanSize)},
		{"max_member_size", int64(s.MaxMemberSize)}, {"max_expanded_bytes", int64(s.MaxExpanded)}} {
		if l.n < 1 {
			c.addf(prefix+"."+l.key, "must be at least 1")
		}
	}
	s.checkEngineTime(c, prefix)
	if s.MaxEngineCalls < 1 {
		c.addf(prefix+".max_engine_calls", "must be at least 1")
	}
	if s.MaxRatio < 2 {
		c.addf(prefix+".max_ratio", "must be at least 2 (plain text compresses about 5:1)")
	}
	if !slices.Contains(scanner.Modes, scanner.Mode(s.Mode)) {
		c.addf(prefix+".mode", "%q is not a scan mode; use all, attachments or message", s.Mode)
	}
	if s.CacheEntries < 0 {
		c.addf(prefix+".cache_entries", "must not be negative (0 turns the cache off)")
	}
}

// checkEngineTime checks max_engine_time against engine_timeout: a
// budget below one call's timeout is spent by one slow part.
func (s Scanner) checkEngineTime(c *checker, prefix string) {
	if s.MaxEngineTime < time.Second {
		c.addf(prefix+".max_engine_time", "must be at least 1s (default %v)", scanner.DefaultOptions().MaxEngineTime)
		return
	}
	if s.EngineTimeout > 0 && s.MaxEngineTime < s.EngineTimeout {
		c.warnf(prefix+".max_engine_time", "%v is below engine_timeout %v: one slow archive member can spend the whole budget", s.MaxEngineTime, s.EngineTimeout)
	}
}

// DefaultRecordsDir is records_dir's default, under avstation's state
// directory (systemd's StateDirectory=avstation).
const DefaultRecordsDir = "/var/lib/avstation/records"

// DefaultStation is the configuration an empty file gives, but for
// records_dir: LoadStation sets it to DefaultRecordsDir unless it is off.
func DefaultStation() Station {
	return Station{
		Listen:            "127.0.0.1:7358",
		SpoolDir:          "/var/spool/avstation",
		MemoryBuffer:      8 << 20,
		MemoryTotal:       32 << 20,
		RecordsMaxAge:     30 * 24 * time.Hour,
		MaxMessage:        64 << 20,
		MaxConcurrent:     8,
		QueueWait:         500 * time.Millisecond,
		ClockSkew:         5 * time.Minute,
		ReadHeaderTimeout: 10 * time.Second,
		BodyTimeout:       5 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxRequestHeader:  64 << 10,
		MaxConnections:    1024,
		Scanner:           DefaultScanner(),
		Log:               Log{Level: "info", Format: "text"},
	}
}

// LoadStation reads and checks avstation's config file.
func LoadStation(path string) (*Station, error) {
	cfg := DefaultStation()
	warnings, err := loadChecked(path, &cfg)
	if err != nil {
		return nil, err
	}
	cfg.Warnings = warnings
	return &cfg, nil
}

func (s *Station) check(c *checker) {
	if _, _, err := net.SplitHostPort(s.Listen); err != nil {
		c.addf("listen", "%q is not host:port (e.g. 0.0.0.0:7358)", s.Listen)
	}
	s.checkTLS(c)
	if s.SecretFile == "" {
		c.addf("secret_file", "required: the job protocol needs the shared secret word (a file of mode 0600)")
	}
	if s.SpoolDir == "" || !filepath.IsAbs(s.SpoolDir) {
		c.addf("spool_dir", "must be an absolute directory path")
	}
	if s.MemoryBuffer < 0 {
		c.addf("memory_buffer", "must not be negative (0: every job body is spooled to spool_dir)")
	}
	if s.MemoryTotal < 0 {
		c.addf("memory_buffer_total", "must not be negative (0 means no bound)")
	}
	c.stateDir("records_dir", &s.RecordsDir, DefaultRecordsDir, "job records")
	if s.RecordsMaxAge < time.Hour {
		c.addf("records_max_age", "must be at least 1h (records are pruned hourly; 720h is 30 days)")
	}
	if s.MaxMessage < 1024 {
		c.addf("max_message_size", "must be at least 1KiB")
	}
	if s.QueueWait < 0 || s.QueueWait > time.Minute {
		c.addf("queue_wait", "must be between 0 (503 at once) and 1m (default 500ms)")
	}
	if s.MaxConcurrent < 1 {
		c.addf("max_concurrent", "must be at least 1")
	}
	if s.ClockSkew < time.Second {
		c.addf("clock_skew", "must be at least 1s")
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"read_header_timeout", s.ReadHeaderTimeout}, {"body_timeout", s.BodyTimeout}, {"idle_timeout", s.IdleTimeout}} {
		if d.v < 100*time.Millisecond {
			c.addf(d.key, "must be at least 100ms (defaults: read_header_timeout 10s, body_timeout 5m, idle_timeout 2m)")
		}
	}
	if s.IdleTimeout >= 100*time.Millisecond && s.IdleTimeout < 90*time.Second {
		c.warnf("idle_timeout", "%v is below the milter's 90s for idle connections: a job may be sent on a connection the station is closing, and milters reconnect more often", s.IdleTimeout)
	}
	if s.MaxRequestHeader < 4<<10 {
		c.addf("max_request_header_bytes", "must be at least 4KiB (a signed job's header is about 1KiB plus 40 bytes a recipient)")
	}
	if s.MaxConnections < 1 {
		c.addf("max_connections", "must be at least 1 (default 1024)")
	} else if s.MaxConnections < s.MaxConcurrent {
		c.addf("max_connections", "%d is below max_concurrent %d: scans at once each need a connection", s.MaxConnections, s.MaxConcurrent)
	}
	checkPprof(c, s.PprofListen)
	s.Scanner.check(c, "scanner")
	s.Log.check(c)
}

// checkPprof accepts an empty pprof_listen or a loopback host:port: the
// profiler shows memory and command lines, so it never faces a network.
func checkPprof(c *checker, addr string) {
	if addr == "" {
		return
	}
	host, _, err := net.SplitHostPort(addr)
	ip := net.ParseIP(host)
	if err != nil || ip == nil || !ip.IsLoopback() {
		c.addf("pprof_listen", "%q is not a loopback host:port (e.g. 127.0.0.1:6060): the profiler must not be reachable from the network", addr)
	}
}
