package policy

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/avstation/avstation/bytesize"
)

// Rule is what to do with one outcome: an action, and optionally a copy to
// quarantine and notifications.
type Rule struct {
	Action     Action   `yaml:"action" doc:"reject, tempfail, discard, strip, tag or accept"`
	Quarantine bool     `yaml:"quarantine" doc:"also keep a copy in the quarantine"`
	Notify     []string `yaml:"notify" doc:"who is told: admin, owner, recipient, sender"`
	// Reply is the text of the SMTP reply when the rule refuses the
	// message (reject, tempfail, or a strip that cannot be done).
	Reply string `yaml:"reply" doc:"text of the SMTP reply when the message is refused; placeholders %%List%% %%VirusName%% %%FileName%% %%Reason%%; printable ASCII, one paragraph (long replies are sent as several lines); empty: the standard text (LISTSERV's for a virus)"`
}

// Rules maps every outcome to its rule.
type Rules struct {
	Infected       Rule `yaml:"infected" doc:"an engine named a threat"`
	Encrypted      Rule `yaml:"encrypted" doc:"password-protected archives, encrypted Office or PDF documents (IceWarp's reject password-protected files: action reject)"`
	BannedName     Rule `yaml:"banned-name" doc:"an attachment or archive member blocked by an extension filter"`
	LimitExceeded  Rule `yaml:"limit-exceeded" doc:"a scan limit stopped the scan (depth, parts, archive size or ratio)"`
	Unscannable    Rule `yaml:"unscannable" doc:"malformed MIME or archive structure (the raw message was still scanned)"`
	Oversize       Rule `yaml:"oversize" doc:"larger than max_scan_size: not scanned"`
	StationFailure Rule `yaml:"station-failure" doc:"no verdict: station down, timeout, engine error"`
}

// Config is the policy part of avmilter's configuration. Every list may
// override any of it (config's list_policies).
type Config struct {
	Actions Rules `yaml:"actions" doc:"one rule per outcome"`
	DryRun  bool  `yaml:"dry_run" doc:"log what would have been done and accept, for trial deployments"`
	Headers bool  `yaml:"headers" doc:"add X-Virus-Status and X-Virus-Scanned to list mail that is accepted"`
	// ScannedBy is the X-Virus-Scanned value; empty means the name the
	// scanner gave ("avstation 0.1.0 on host").
	ScannedBy string `yaml:"scanned_by" doc:"value of X-Virus-Scanned; empty: the scanner's own name and host"`
	// MaxScanSize: larger messages are not scanned but take the oversize
	// rule. 0 is off.
	MaxScanSize bytesize.Size `yaml:"max_scan_size" doc:"bytes above which a message is not scanned and takes the oversize rule; 0: off"`
	// ApplyToOutgoing scans outgoing mail too: from an authenticated
	// client or a trusted network (see Policy.Outgoing), never judged by
	// the envelope sender.
	ApplyToOutgoing bool         `yaml:"apply_to_outgoing" doc:"also scan outgoing mail: from SMTP-authenticated clients and clients in trusted_networks (the envelope sender does not count: anyone can write a local address in MAIL FROM)"`
	TrustedNetworks []string     `yaml:"trusted_networks" doc:"client addresses and CIDR ranges whose mail is outgoing, for apply_to_outgoing and the bypass file's sender entries; empty: only authenticated clients (local sendmail(1) submissions arrive as 127.0.0.1: list it only if every local user may post unscanned)"`
	LocalDomains    []string     `yaml:"local_domains" doc:"domains that are local, for extension filter scopes"`
	Filters         FilterConfig `yaml:"extension_filters" doc:"attachment name rules"`
	StripText       string       `yaml:"strip_text" doc:"text that replaces a stripped attachment; %%FileName%% and %%VirusName%% are filled in; empty: a standard sentence"`
}

// Defaults are safe: infected mail is refused, failures are retried, and
// nothing is accepted without a header that says what happened.
func Defaults() Config {
	return Config{
		Actions: Rules{
			Infected:       Rule{Action: Reject},
			Encrypted:      Rule{Action: Tag},
			BannedName:     Rule{Action: Reject},
			LimitExceeded:  Rule{Action: Reject},
			Unscannable:    Rule{Action: Tag},
			Oversize:       Rule{Action: Tag},
			StationFailure: Rule{Action: Tempfail},
		},
		Headers:         true,
		ApplyToOutgoing: true,
		Filters:         FilterConfig{BlockDoubleExtensions: true},
	}
}

// Rule is the rule of an outcome.
func (c *Config) Rule(o Outcome) Rule {
	switch o {
	case OutcomeInfected:
		return c.Actions.Infected
	case OutcomeEncrypted:
		return c.Actions.Encrypted
	case OutcomeBannedName:
		return c.Actions.BannedName
	case OutcomeLimitExceeded:
		return c.Actions.LimitExceeded
	case OutcomeUnscannable:
		return c.Actions.Unscannable
	case OutcomeOversize:
		return c.Actions.Oversize
	}
	return c.Actions.StationFailure
}

// allowed lists the actions each outcome takes. Strip needs parts to strip;
// station-failure has no verdict, so only refusing or tagging make sense.
var allowed = map[Outcome][]Action{
	OutcomeInfected:       {Reject, Tempfail, Discard, Strip, Tag},
	OutcomeEncrypted:      {Tag, Reject, Tempfail, Discard, Strip, Accept},
	OutcomeBannedName:     {Reject, Tempfail, Discard, Strip, Tag, Accept},
	OutcomeLimitExceeded:  {Tag, Reject, Tempfail, Discard, Accept},
	OutcomeUnscannable:    {Tag, Reject, Tempfail, Discard, Accept},
	OutcomeOversize:       {Tag, Reject, Tempfail, Accept},
	OutcomeStationFailure: {Tempfail, Tag, Reject},
}

var recipients = []string{"admin", "owner", "recipient", "sender"}

// Problem is one thing wrong with a policy: the setting's path under
// policy ("actions.infected.action") and what is wrong, with a hint.
type Problem struct{ Key, Message string }

// Policy is a Config checked and compiled, the only type that decides: a
// Config that was never compiled cannot enforce its filters, so it cannot
// reach the milter either. The Config is its settings, read-only.
type Policy struct {
	Config
	filters  []compiledRule
	trusted  []netip.Prefix // trusted_networks
	compiled bool           // made by Compile; a Policy{} written by hand is not
}

// Compile checks c and compiles its filters. With problems it returns no
// Policy: every problem, sorted by key, so that check-config lists them all.
func Compile(c Config) (*Policy, []Problem) {
	var probs []Problem
	add := func(key, format string, args ...any) {
		probs = append(probs, Problem{Key: key, Message: fmt.Sprintf(format, args...)})
	}
	for _, o := range Outcomes {
		if o == OutcomeClean {
			continue
		}
		r := c.Rule(o)
		key := "actions." + string(o)
		if !slices.Contains(allowed[o], r.Action) {
			var names []string
			for _, a := range allowed[o] {
				names = append(names, string(a))
			}
			add(key+".action", "%q is not an action for %s; use one of: %s", r.Action, o, strings.Join(names, ", "))
		}
		if r.Reply != "" {
			if p := checkReply(r.Reply); p != "" {
				add(key+".reply", "%s", p)
			}
		}
		for i, n := range r.Notify {
			if !slices.Contains(recipients, n) {
				add(fmt.Sprintf("%s.notify[%d]", key, i), "%q is not someone to notify; use admin, owner, recipient or sender", n)
			}
		}
	}
	if c.MaxScanSize < 0 {
		add("max_scan_size", "must not be negative (0 turns it off)")
	}
	for i, d := range c.LocalDomains {
		if d == "" || strings.ContainsAny(d, "@ *") {
			add(fmt.Sprintf("local_domains[%d]", i), "%q is not a domain; write it like example.org", d)
		}
	}
	trusted, nprobs := parseNetworks(c.TrustedNetworks)
	probs = append(probs, nprobs...)
	filters, fprobs := c.Filters.compile()
	for _, k := range slices.Sorted(maps.Keys(fprobs)) {
		add("extension_filters."+k, "%s", fprobs[k])
	}
	if len(probs) > 0 {
		slices.SortStableFunc(probs, func(a, b Problem) int { return strings.Compare(a.Key, b.Key) })
		return nil, probs
	}
	return &Policy{Config: c, filters: filters, trusted: trusted, compiled: true}, nil
}
