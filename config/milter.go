package config

import (
	"fmt"

	"go.yaml.in/yaml/v3"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/avstation/avstation/address"
	"github.com/avstation/avstation/notify"
	"github.com/avstation/avstation/policy"
)

// Milter is avmilter's whole configuration.
type Milter struct {
	Listen     string `yaml:"listen" doc:"milter socket, Postfix style: inet:127.0.0.1:7357, inet6:[::1]:7357 or unix:/run/avmilter/avmilter.sock"`
	SocketMode string `yaml:"socket_mode" doc:"file mode of a unix socket (octal), so that the MTA's user can connect"`

	Lists   []ListPattern `yaml:"lists" doc:"recipients that make a message list-bound (see below); at least one unless scan_all is set"`
	ScanAll bool          `yaml:"scan_all" doc:"scan every message, not only list-bound ones"`
	// Hold catches what the milter cannot see as a list: an alias the MTA
	// expands to a list after RCPT (virtual_alias_maps, aliases).
	Hold []string `yaml:"hold" doc:"more recipients whose mail is held and scanned under the global policy without being a list: addresses or *@domain, e.g. aliases that expand to a list (see Postfix)"`
	// RecipientDelimiter is Postfix's recipient_delimiter, so that dev+x@
	// is list dev wherever Postfix delivers it to dev.
	RecipientDelimiter string `yaml:"recipient_delimiter" doc:"set it to Postfix's recipient_delimiter (postconf -h recipient_delimiter), e.g. +: each character starts an address extension, and dev+x@ is list dev"`

	Stations            []string      `yaml:"stations" doc:"scan stations, one pool: a URL (https://scan1.example.org:7358) or an address (scan1.example.org:7358, 192.0.2.3, [2001:db8::3]:7358, [192.168.254.3]; port 7358 by default; https when a station TLS setting is set, else http); each job goes to the station up with the fewest jobs in flight and fails over to the next; empty: scan in-process with the scanner settings below"`
	SecretFile          string        `yaml:"secret_file" doc:"file with the secret word(s) shared with the stations, which also signs quarantine releases; mode 0600 (required with stations)"`
	StationProbe        time.Duration `yaml:"station_probe" doc:"how often each station's /readyz and signed info are asked: what brings a station marked down back, and learns its max_message_size"`
	StationCA           string        `yaml:"station_ca_file" doc:"PEM file of the CA(s) that sign https stations' certificates; empty: the system's roots"`
	StationPin          string        `yaml:"station_pin_sha256" doc:"SHA-256 of the stations' certificate (openssl x509 -noout -fingerprint -sha256), trusted instead of a CA; colons optional; several separated by commas, for a change of certificate"`
	StationCert         string        `yaml:"station_client_cert" doc:"client certificate (PEM) shown to stations that ask for one (their tls_client_ca): mutual TLS"`
	StationKey          string        `yaml:"station_client_key" doc:"private key (PEM) of station_client_cert"`
	StationConnect      time.Duration `yaml:"station_connect_timeout" doc:"how long connecting to one station may take before the job goes to the next: the most a dead station adds to one message"`
	StationProbeAfter   time.Duration `yaml:"station_probe_after" doc:"a job without the station's answer this long has that station's /livez asked (and again as often): any answer means busy, keep waiting; none within station_probe_timeout means hung, the station is marked down and the job goes to the next station"`
	StationProbeTimeout time.Duration `yaml:"station_probe_timeout" doc:"how long that /livez may take: station_probe_after plus this is the most a hung station (one that takes the connection and never answers) adds to one message"`
	AllowPlainHTTP      bool          `yaml:"allow_plain_http" doc:"allow http:// stations on other hosts than this one; the secret word still protects integrity and replay, but anyone on the path reads the mail; http to 127.0.0.1, ::1 or localhost is always allowed"`
	PrimaryID           string        `yaml:"primary_id" doc:"this milter's name in the stations' logs, records and metrics (1-64 of A-Z a-z 0-9 . _ -); empty: the host name"`
	ScanTimeout         time.Duration `yaml:"scan_timeout" doc:"how long one message may take to scan before the station-failure action; keep Postfix's milter_content_timeout longer"`
	ProgressInterval    time.Duration `yaml:"progress_interval" doc:"how often the MTA is told the scan is still going, so that it does not time the milter out"`

	SpoolDir     string   `yaml:"spool_dir" doc:"directory for message bodies larger than memory_buffer (files 0600, always removed)"`
	MemoryBuffer ByteSize `yaml:"memory_buffer" doc:"bytes of one message body held in memory before it spills to spool_dir"`
	MemoryTotal  ByteSize `yaml:"memory_buffer_total" doc:"most bytes of all message bodies held in memory at once; past it a body spills to spool_dir though under memory_buffer, so that many large messages at once cost disk, not memory; 0: no bound"`
	// The holding bounds: a message past them is tempfailed as it arrives
	// and what was held of it removed, so that nothing fills memory or disk.
	SpoolMaxMessage ByteSize      `yaml:"spool_max_message" doc:"most bytes one list-bound message may take while held (keep it above Postfix's message_size_limit); more is tempfailed 451 4.3.4 as it arrives (at the end of the message when the MTA reads no reply to each chunk and to the end of the headers, as avmilter asks); 0: no bound"`
	SpoolMaxTotal   ByteSize      `yaml:"spool_max_total" doc:"most bytes all messages held at once may take, memory and spool_dir together; past it new bytes are tempfailed 451 4.3.1; 0: no bound"`
	MaxSessions     int           `yaml:"max_sessions" doc:"most MTA connections served at once (above Postfix's default_process_limit of 100); more are tempfailed (at connect, or at DATA of each message when the MTA reads no reply to Connect) and counted"`
	MTAReadTimeout  time.Duration `yaml:"mta_read_timeout" doc:"how long the MTA may be silent within a connection before avmilter gives it up (scans have their own scan_timeout)"`
	MTAWriteTimeout time.Duration `yaml:"mta_write_timeout" doc:"how long one write to the MTA may take"`

	Scanner Scanner       `yaml:"scanner" doc:"engines and limits for in-process scanning (used when stations is empty)"`
	Policy  policy.Config `yaml:"policy" doc:"what to do with each outcome"`
	// ListPolicies override the policy for one list each: any policy
	// setting, the rest taken from policy.
	ListPolicies map[string]policy.Config `yaml:"list_policies" doc:"per list name, any policy setting that differs from policy (see below)"`

	BypassFile string `yaml:"bypass_file" doc:"file of senders, client IPs and ranges, and authenticated users whose mail is not scanned; sender entries count only for an authenticated client or one in policy.trusted_networks; reloaded on SIGHUP; empty: none"`
	// BypassTrustsEnvelope makes the bypass file's sender entries match on
	// MAIL FROM alone, as IceWarp's do: anyone who knows a listed address
	// can then post unscanned.
	BypassTrustsEnvelope bool       `yaml:"bypass_trusts_envelope" doc:"DANGEROUS: let the bypass file's sender entries match on the envelope sender alone, from any client; whoever can guess a listed address can then post unscanned"`
	Quarantine           Quarantine `yaml:"quarantine" doc:"where quarantined messages go"`
	Notify               Notify     `yaml:"notify" doc:"notifications"`

	// Policies is the global policy and each list's, compiled by LoadMilter
	// (or Prepare): the only form of the policy the milter can use.
	Policies *policy.Set `yaml:"-"`
	// Warnings are LoadMilter's: settings that work but are likely not
	// what was meant, each "FILE: line N: key: text".
	Warnings []string `yaml:"-"`

	// ActivityDir is empty after LoadMilter when it is off; a Milter made
	// in code has it off unless set.
	ActivityDir string `yaml:"activity_dir" default:"/var/lib/avmilter/activity" doc:"directory of the per-list activity logs (LIST.log, one line per virus and other event, as LISTSERV writes them), created 0700; rotate them with logrotate (deploy/logrotate); off: none kept"`

	MetricsListen string `yaml:"metrics_listen" doc:"address for /metrics and /healthz (host:port); empty: off"`
	PprofListen   string `yaml:"pprof_listen" doc:"loopback address (127.0.0.1:PORT) serving Go's profiler at /debug/pprof/, for measuring (make bench); empty: off"`
	Log           Log    `yaml:"log" doc:"logging"`
}

// Quarantine says where quarantined messages go: a directory (the message
// and a JSON record) or an address.
type Quarantine struct {
	Dir      string `yaml:"dir" doc:"directory for quarantined messages (files 0600)"`
	Address  string `yaml:"address" doc:"address quarantined messages are sent to instead, as attachments"`
	SMTP     string `yaml:"smtp" doc:"host:port of the MTA that takes quarantine mail and notifications (avmilter lets each of them, marked with a key only it holds, through once)"`
	Contents string `yaml:"contents" doc:"message (the whole message) or attachments (only the offending parts)"`
	// Timeout bounds one submission to SMTP: a slow MTA must not hold the
	// message being decided (it counts within scan_timeout).
	Timeout time.Duration `yaml:"timeout" doc:"how long one submission of quarantine mail or a notification to the smtp host may take"`
}

// Notify configures who is told about a message that was not delivered as
// sent.
type Notify struct {
	From      string              `yaml:"from" doc:"From address of notifications (the envelope sender is empty, <>)"`
	Admin     []string            `yaml:"admin" doc:"administrator addresses"`
	Owner     string              `yaml:"owner" doc:"list owner address, %%List%% replaced by the list name (owner-%%List%%@lists.example.org)"`
	Templates map[string]Template `yaml:"templates" doc:"subject and body per recipient kind (admin, owner, recipient, sender); placeholders %%VirusName%% %%FileName%% %%List%% %%Sender%% %%Recipients%% %%QueueID%% %%JobID%% %%Date%% %%Outcome%%"`
	Bypass    map[string][]string `yaml:"bypass" doc:"per recipient kind, addresses never notified (*@example.org)"`
}

// Template is a notification's subject and body.
type Template struct {
	Subject string `yaml:"subject" doc:"subject line"`
	Body    string `yaml:"body" doc:"text"`
}

// ListPattern makes recipients list-bound: an exact address
// (staff@example.org) or every address of a domain (*@lists.example.org).
type ListPattern struct {
	Match string `yaml:"match" doc:"an address, or *@domain for every address of the domain"`
	// Name is the list's name in replies, logs and metrics. Empty: the local
	// part of the recipient address.
	Name string `yaml:"name" doc:"the list's name in replies, logs and metrics; empty: the local part of the recipient"`
}

// Log configures the structured log.
type Log struct {
	Level  string `yaml:"level" doc:"debug, info, warn or error"`
	Format string `yaml:"format" doc:"text or json"`
}

// DefaultActivityDir is activity_dir's default, under avmilter's state
// directory (systemd's StateDirectory=avmilter).
const DefaultActivityDir = "/var/lib/avmilter/activity"

// DefaultMilter is the configuration an empty file gives, but for
// activity_dir: LoadMilter sets it to DefaultActivityDir unless it is off,
// so that a Milter made in code (a test) writes no activity log by
// accident.
func DefaultMilter() Milter {
	return Milter{
		Listen:              "inet:127.0.0.1:7357",
		SocketMode:          "0660",
		ScanTimeout:         120 * time.Second,
		ProgressInterval:    10 * time.Second,
		StationProbe:        10 * time.Second,
		StationConnect:      5 * time.Second,
		StationProbeAfter:   3 * time.Second,
		StationProbeTimeout: 2 * time.Second,
		Quarantine:          Quarantine{Timeout: 30 * time.Second},
		SpoolDir:            "/var/spool/avmilter",
		MemoryBuffer:        8 << 20,
		MemoryTotal:         32 << 20,
		SpoolMaxMessage:     512 << 20,
		SpoolMaxTotal:       8 << 30,
		MaxSessions:         500,
		MTAReadTimeout:      10 * time.Minute,
		MTAWriteTimeout:     30 * time.Second,
		Scanner:             DefaultScanner(),
		Policy:              policy.Defaults(),
		Log:                 Log{Level: "info", Format: "text"},
	}
}

// Prepare checks a configuration built in code, as LoadMilter checks a
// file, and compiles its policies; ListPolicies hold each list's whole
// policy. The error, when not nil, is a *Problems.
func (m *Milter) Prepare() error {
	c := &checker{file: "(config built in code)", lines: map[string]int{}}
	m.check(c)
	return c.err()
}

// LoadMilter reads and checks avmilter's config file. The error, when not
// nil, is a *Problems listing everything wrong.
func LoadMilter(path string) (*Milter, error) {
	cfg := DefaultMilter()
	warnings, err := loadChecked(path, &cfg)
	if err != nil {
		return nil, err
	}
	cfg.Warnings = warnings
	return &cfg, nil
}

func (m *Milter) check(c *checker) {
	checkPprof(c, m.PprofListen)
	if _, _, err := ParseListen(m.Listen); err != nil {
		c.addf("listen", "%v", err)
	}
	if _, err := parseMode(m.SocketMode); err != nil {
		c.addf("socket_mode", "%v", err)
	}
	if len(m.Lists) == 0 && !m.ScanAll {
		c.addf("lists", "no list patterns and scan_all is off: nothing would be scanned; add `lists: [{match: \"*@lists.example.org\"}]`")
	}
	for i, l := range m.Lists {
		if err := checkPattern(l.Match); err != nil {
			c.addf(fmt.Sprintf("lists[%d].match", i), "%v", err)
		}
	}
	for i, h := range m.Hold {
		if err := checkPattern(h); err != nil {
			c.addf(fmt.Sprintf("hold[%d]", i), "%s", strings.Replace(err.Error(), "list pattern", "hold pattern", 1))
		}
	}
	if strings.ContainsAny(m.RecipientDelimiter, "@\" \t\r\n<>()[],;:\\") {
		c.addf("recipient_delimiter", "%q: a delimiter cannot be @, a space, a quote or an address special; write the value of postconf -h recipient_delimiter (e.g. +)", m.RecipientDelimiter)
	}
	m.checkStations(c)
	if len(m.Stations) > 0 && m.SecretFile == "" {
		c.addf("secret_file", "stations are set but secret_file is not: the job protocol needs the shared secret word")
	}
	if m.ScanTimeout <= 0 {
		c.addf("scan_timeout", "must be positive (e.g. 120s)")
	}
	if m.StationProbe < time.Second {
		c.addf("station_probe", "must be at least 1s")
	}
	if m.Quarantine.Timeout <= 0 {
		c.addf("quarantine.timeout", "must be positive (e.g. 30s)")
	}
	if m.ProgressInterval <= 0 {
		c.addf("progress_interval", "must be positive (e.g. 10s)")
	}
	c.stateDir("activity_dir", &m.ActivityDir, DefaultActivityDir, "activity log")
	if m.SpoolMaxMessage < 0 || m.SpoolMaxTotal < 0 {
		c.addf("spool_max_total", "spool_max_message and spool_max_total must not be negative (0 means no bound)")
	}
	if m.SpoolMaxTotal > 0 && m.SpoolMaxMessage > m.SpoolMaxTotal {
		c.addf("spool_max_message", "is larger than spool_max_total, so such a message could never be held")
	}
	if m.MemoryTotal < 0 {
		c.addf("memory_buffer_total", "must not be negative (0 means no bound)")
	}
	if m.MaxSessions < 0 {
		c.addf("max_sessions", "must not be negative (0 means no bound)")
	}
	if m.MTAReadTimeout <= 0 || m.MTAWriteTimeout <= 0 {
		c.addf("mta_read_timeout", "mta_read_timeout and mta_write_timeout must be positive (e.g. 10m and 30s)")
	}
	if m.SpoolDir == "" || !filepath.IsAbs(m.SpoolDir) {
		c.addf("spool_dir", "must be an absolute directory path")
	}
	if len(m.Stations) == 0 {
		m.Scanner.check(c, "scanner")
		// In-process, the budget must end the archive walk and leave time
		// for the raw message before scan_timeout gives up on the message.
		if sc := m.Scanner; m.ScanTimeout > 0 && sc.MaxEngineTime >= time.Second && sc.MaxEngineTime+sc.EngineTimeout > m.ScanTimeout {
			c.warnf("scanner.max_engine_time", "%v plus engine_timeout %v is above scan_timeout %v: a message that spends its engine budget is given up (station-failure) before it ends limit-exceeded", sc.MaxEngineTime, sc.EngineTimeout, m.ScanTimeout)
		}
	}
	m.Policies = m.compilePolicies(c)
	m.checkSideEffects(c)
	m.Log.check(c)
}

// compilePolicies compiles the global policy and each list's into the set
// the milter decides with; nil when any has a problem (each reported with
// its key and line).
func (m *Milter) compilePolicies(c *checker) *policy.Set {
	global := compilePolicy(c, "policy", m.Policy)
	lists := map[string]*policy.Policy{}
	ok := global != nil
	lps := m.listPolicies(c)
	for _, name := range slices.Sorted(maps.Keys(lps)) {
		lp := lps[name]
		p := compilePolicy(c, "list_policies."+name, lp)
		ok = ok && p != nil
		lists[name] = p
		// These decide before a message is tied to one list's policy
		// (whether it is scanned at all): they are the whole message's.
		if lp.MaxScanSize != m.Policy.MaxScanSize || lp.ApplyToOutgoing != m.Policy.ApplyToOutgoing ||
			!slices.Equal(lp.LocalDomains, m.Policy.LocalDomains) || !slices.Equal(lp.TrustedNetworks, m.Policy.TrustedNetworks) {
			c.addf("list_policies."+name, "max_scan_size, apply_to_outgoing, trusted_networks and local_domains apply to the whole message; set them under policy, not per list")
		}
	}
	if !ok {
		return nil
	}
	return policy.NewSet(global, lists)
}

// listPolicies is each list's whole policy: the global one with what the
// list sets. From a file, decoding a list's node over a copy of the global
// policy changes only the keys present (unknown keys were refused when the
// whole file was decoded); a config built in code gives whole policies.
func (m *Milter) listPolicies(c *checker) map[string]policy.Config {
	node := c.node("list_policies")
	if node == nil || node.Kind != yaml.MappingNode {
		return m.ListPolicies
	}
	out := map[string]policy.Config{}
	for i := 0; i+1 < len(node.Content); i += 2 {
		name := node.Content[i].Value
		lp := m.Policy
		if err := node.Content[i+1].Decode(&lp); err != nil {
			c.addf("list_policies."+name, "%v", err)
			continue
		}
		out[name] = lp
	}
	return out
}

func compilePolicy(c *checker, prefix string, cfg policy.Config) *policy.Policy {
	p, probs := policy.Compile(cfg)
	for _, pr := range probs {
		c.addf(prefix+"."+pr.Key, "%s", pr.Message)
	}
	return p
}

// checkSideEffects checks that what the policies ask for is configured.
func (m *Milter) checkSideEffects(c *checker) {
	var quarantine, notify bool
	if m.Policies != nil {
		m.Policies.Each(func(_ string, p *policy.Policy) {
			for _, o := range policy.Outcomes {
				r := p.Rule(o)
				quarantine = quarantine || r.Quarantine
				notify = notify || len(r.Notify) > 0
			}
		})
	}
	q := m.Quarantine
	if quarantine && q.Dir == "" && q.Address == "" {
		c.addf("quarantine", "a rule quarantines but neither quarantine.dir nor quarantine.address is set")
	}
	if q.Dir != "" && q.Address != "" {
		// Refused rather than picking one: either way a message would go
		// where the admin did not expect (dir once won silently).
		c.addf("quarantine.address", "quarantine.dir and quarantine.address are both set; set one: dir keeps messages here for avmilter quarantine list/release/rescan, address mails them to a person")
	}
	if q.Dir != "" && !filepath.IsAbs(q.Dir) {
		c.addf("quarantine.dir", "must be an absolute directory path")
	}
	if q.Address != "" && !strings.Contains(q.Address, "@") {
		c.addf("quarantine.address", "%q is not an address", q.Address)
	}
	switch q.Contents {
	case "", "message", "attachments":
	default:
		c.addf("quarantine.contents", "%q: use message or attachments", q.Contents)
	}
	if (notify || q.Address != "") && m.Quarantine.SMTP == "" {
		c.addf("quarantine.smtp", "notifications or quarantine to an address need an MTA to submit to (e.g. 127.0.0.1:25)")
	}
	if notify && m.Notify.From == "" {
		c.addf("notify.from", "notifications need a From address (e.g. postmaster@example.org)")
	}
	m.Notify.check(c)
}

// notifyKinds are the recipient kinds of notify.templates and notify.bypass.
var notifyKinds = []string{"admin", "owner", "recipient", "sender"}

func (n Notify) check(c *checker) {
	for _, kind := range slices.Sorted(maps.Keys(n.Templates)) {
		key := "notify.templates." + kind
		if !slices.Contains(notifyKinds, kind) {
			c.addf(key, "%q is not a recipient kind; use admin, owner, recipient or sender", kind)
			continue
		}
		t := n.Templates[kind]
		for _, f := range [][2]string{{"subject", t.Subject}, {"body", t.Body}} {
			field, text := f[0], f[1]
			if bad := notify.UnknownPlaceholders(text); len(bad) > 0 {
				c.warnf(key+"."+field, "%%%%%s%%%% is not a placeholder and is sent as written; the README lists them (%%%%VirusName%%%%, %%%%List%%%%, ...)", strings.Join(bad, "%%, %%"))
			}
		}
	}
	for _, kind := range slices.Sorted(maps.Keys(n.Bypass)) {
		key := "notify.bypass." + kind
		if !slices.Contains(notifyKinds, kind) {
			c.addf(key, "%q is not a recipient kind; use admin, owner, recipient or sender", kind)
			continue
		}
		for i, p := range n.Bypass[kind] {
			if err := checkBypass(p); err != nil {
				c.addf(fmt.Sprintf("%s[%d]", key, i), "%v", err)
			}
		}
	}
}

// checkBypass refuses a notification bypass pattern that is malformed or
// can match no address: "example.org" matches only the address
// "example.org", never someone at that domain.
func checkBypass(p string) error {
	if err := notify.ValidPattern(p); err != nil {
		return fmt.Errorf("%q is not a pattern (%v); write an address or a glob such as *@example.org", p, err)
	}
	t := strings.TrimSpace(p)
	if strings.Contains(t, "@") || strings.ContainsAny(t, "*?[") {
		return nil
	}
	hint := t + "@*"
	if strings.Contains(t, ".") {
		hint = "*@" + t
	}
	return fmt.Errorf("%q has no @ and no wildcard, so it matches no address; did you mean %s?", p, hint)
}

// checkPattern accepts "local@domain" and "*@domain" whose parts
// canonicalise (package address): a UTF-8 or A-label domain, an address
// literal such as [192.0.2.1].
func checkPattern(p string) error {
	local, domain, ok := strings.Cut(p, "@")
	if !ok || local == "" || domain == "" || strings.ContainsAny(p, " <>") || strings.Contains(domain, "*") ||
		(strings.Contains(local, "*") && local != "*") {
		return fmt.Errorf("%q is not a list pattern; write an address (staff@example.org) or *@domain (*@lists.example.org)", p)
	}
	if _, err := address.Domain(domain); err != nil {
		return fmt.Errorf("%q: the domain is not one (%v); write it as in DNS, or [192.0.2.1]", p, err)
	}
	if local != "*" && !address.Valid(local) {
		return fmt.Errorf("%q: the local part %q needs no quotes, comments or specials; write it as the list server names it", p, local)
	}
	return nil
}

func (l Log) check(c *checker) {
	switch l.Level {
	case "debug", "info", "warn", "error":
	default:
		c.addf("log.level", "%q is not a level; use debug, info, warn or error", l.Level)
	}
	switch l.Format {
	case "text", "json":
	default:
		c.addf("log.format", "%q is not a format; use text or json", l.Format)
	}
}
