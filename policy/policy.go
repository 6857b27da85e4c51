// Package policy turns a scan verdict into what the mail system does with the
// message. It is pure: no I/O, no clock, no engines, no MTA. The milter feeds
// it the envelope and the verdict (or the reason there is none) and applies
// the Decision it gets back.
package policy

import (
	"errors"
	"slices"
	"strings"

	"github.com/avstation/avstation/mimepart"
	"github.com/avstation/avstation/smtpreply"
	"github.com/avstation/avstation/verdict"
)

// Action is what an admin can configure for an outcome.
type Action string

const (
	Reject   Action = "reject"   // refuse with a 5xx reply
	Tempfail Action = "tempfail" // refuse with a 4xx reply: the sender retries
	Discard  Action = "discard"  // accept and drop
	Strip    Action = "strip"    // accept with the offending attachments replaced by a note
	Tag      Action = "tag"      // accept with X-Virus-Status naming the outcome
	Accept   Action = "accept"   // accept as it is (still logged and counted)
)

// Outcome is what happened to a message, one name for every way a scan can
// end. It is the label of the metrics and the word of the log line.
type Outcome string

const (
	OutcomeClean          Outcome = "clean"
	OutcomeInfected       Outcome = "infected"
	OutcomeEncrypted      Outcome = "encrypted"
	OutcomeBannedName     Outcome = "banned-name"
	OutcomeLimitExceeded  Outcome = "limit-exceeded"
	OutcomeUnscannable    Outcome = "unscannable"
	OutcomeOversize       Outcome = "oversize"        // over max_scan_size: not scanned
	OutcomeStationFailure Outcome = "station-failure" // no verdict, or the engines failed
)

// Outcomes lists every outcome, for pre-setting metric labels.
var Outcomes = []Outcome{OutcomeClean, OutcomeInfected, OutcomeEncrypted, OutcomeBannedName, OutcomeLimitExceeded,
	OutcomeUnscannable, OutcomeOversize, OutcomeStationFailure}

// Input is what the policy decides from.
type Input struct {
	Lists         []string // list names the message is bound for (may be empty with scan_all)
	Sender        string
	Recipients    []string
	Authenticated bool
	// Verdict is the scan's answer; nil when there is none (see ScanError
	// and Oversize).
	Verdict *verdict.Verdict
	// ScanError says why there is no verdict: station down, timeout, bad
	// signature. It is used for the outcome only, never shown to the sender.
	ScanError error
	// Oversize: the message was over max_scan_size and not scanned.
	Oversize bool
}

// Header is a header field to add to the message.
type Header struct{ Name, Value string }

// Verb is what the MTA is told to do.
type Verb string

const (
	AcceptMsg   Verb = "accept"
	RejectMsg   Verb = "reject"
	TempfailMsg Verb = "tempfail"
	DiscardMsg  Verb = "discard"
)

// Verbs lists the verbs, for metric labels.
var Verbs = []Verb{AcceptMsg, RejectMsg, TempfailMsg, DiscardMsg}

// StripPart is an attachment to replace by a note. Kind is the finding's
// (virus, encrypted, banned-name), so the note says why in words that fit.
type StripPart struct {
	Path, FileName, Threat string
	Kind                   verdict.Kind
}

// Decision is the whole answer for one message. Detection has already
// happened; this says what to do about it, and the milter does exactly that.
type Decision struct {
	Outcome Outcome
	Action  Action // the configured action that led to Verb
	Verb    Verb
	Reply   *smtpreply.Reply // for RejectMsg and TempfailMsg; with Strip, the reply if stripping fails
	Headers []Header
	// Strip lists the parts to replace before accepting.
	Strip []StripPart
	// Offending lists the parts the outcome's findings are in, whatever
	// the action: what quarantine.contents: attachments keeps. Empty when
	// the findings are in the message as a whole.
	Offending []StripPart
	// Quarantine and Notify are the rule's side effects.
	Quarantine bool
	Notify     []string
	// DryRun: the decision above is what would have been done; the milter
	// logs it and accepts the message unchanged but for the headers.
	DryRun bool
	// Finding explains the outcome; Threat and FileName are its, for logs.
	Finding          verdict.Finding
	Threat, FileName string
}

// Decide maps the input to a decision. A Policy that Compile did not make
// (nil, or written by hand) decides nothing: it tempfails (fail closed).
func (c *Policy) Decide(in Input) Decision {
	if c == nil || !c.compiled {
		r := smtpreply.LocalError.Because(errors.New("policy: used without policy.Compile"))
		return Decision{Outcome: OutcomeStationFailure, Action: Tempfail, Verb: TempfailMsg, Reply: r}
	}
	outcome, f, related := c.outcomeOf(in)
	d := Decision{Outcome: outcome, Finding: f, Threat: f.Threat, FileName: displayName(f), Offending: inParts(related)}
	if outcome == OutcomeClean {
		d.Verb, d.Action = AcceptMsg, Accept
		c.addHeaders(&d, in, "Clean")
		return d
	}
	rule := c.Rule(outcome)
	d.Action, d.Quarantine, d.Notify = rule.Action, rule.Quarantine, rule.Notify
	switch rule.Action {
	case Reject:
		d.Verb = RejectMsg
		d.Reply = refusal(rule, Reject, in.Lists, outcome, f)
	case Tempfail:
		d.Verb = TempfailMsg
		d.Reply = refusal(rule, Tempfail, in.Lists, outcome, f)
	case Discard:
		d.Verb = DiscardMsg
	case Strip:
		parts := inParts(related)
		if len(parts) == 0 { // found in the message as a whole, in no part: nothing to strip
			d.Action, d.Verb = Reject, RejectMsg
			d.Reply = refusal(rule, Reject, in.Lists, outcome, f)
			break
		}
		d.Verb, d.Strip = AcceptMsg, parts
		d.Reply = refusal(rule, Reject, in.Lists, outcome, f)
		// What stays must pass on its own: a part the engines failed on,
		// an encrypted archive or a banned name elsewhere is decided as if
		// the stripped parts were not there, and the stricter wins. The
		// milter rescans the rewritten body before it accepts it
		// (Rescanned), which settles findings of the message as a whole.
		rest := c.remainder(in, parts, outcome)
		switch {
		case rest.Verb != AcceptMsg:
			rest.Quarantine = rest.Quarantine || d.Quarantine
			rest.Notify = union(rest.Notify, d.Notify)
			return rest
		case len(rest.Strip) > 0: // another outcome strips too: every part goes
			d.Strip, d.Offending = rest.Strip, rest.Strip
			c.addHeaders(&d, in, "Cleaned ("+statusValue(outcome, f)+" and "+statusValue(rest.Outcome, rest.Finding)+" removed)")
		case rest.Outcome != OutcomeClean:
			d.Headers = rest.Headers // tagged for what remains
		default:
			c.addHeaders(&d, in, "Cleaned ("+statusValue(outcome, f)+" removed)")
		}
	case Accept:
		d.Verb = AcceptMsg
	default: // Tag, and any value Check would have refused: never drop silently.
		d.Verb = AcceptMsg
		c.addHeaders(&d, in, statusValue(outcome, f))
	}
	if c.DryRun {
		d.DryRun = true
	}
	return d
}

// outcomeOf names what happened, picks the finding that explains it and
// gathers the findings of the same kind (what strip removes). An
// unsettled or unknown status is a failure, never clean (fail closed).
func (c *Policy) outcomeOf(in Input) (Outcome, verdict.Finding, []verdict.Finding) {
	v := in.Verdict
	switch {
	case in.Oversize:
		return OutcomeOversize, verdict.Finding{Detail: "max_scan_size"}, nil
	case v == nil || in.ScanError != nil || !verdict.Known(v.Status):
		return OutcomeStationFailure, verdict.Finding{}, nil
	case v.Status == verdict.Clean && len(v.Findings) > 0: // a "clean" verdict that found something
		return OutcomeStationFailure, verdict.Finding{}, nil
	case v.Status == verdict.Infected:
		return OutcomeInfected, first(v.Findings, verdict.KindVirus), only(v.Findings, verdict.KindVirus)
	case v.Status == verdict.Error:
		f, _ := v.First(verdict.Error)
		return OutcomeStationFailure, f, nil
	}
	if banned := c.banned(v.Manifest, c.scopesOf(in)); len(banned) > 0 {
		return OutcomeBannedName, banned[0], banned
	}
	switch v.Status {
	case verdict.Clean:
		return OutcomeClean, verdict.Finding{}, nil
	case verdict.Encrypted:
		return OutcomeEncrypted, first(v.Findings, verdict.KindEncrypted), only(v.Findings, verdict.KindEncrypted)
	case verdict.LimitExceeded:
		return OutcomeLimitExceeded, first(v.Findings, verdict.KindLimitExceeded), nil
	}
	return OutcomeUnscannable, first(v.Findings, verdict.KindUnscannable), nil
}

func first(fs []verdict.Finding, k verdict.Kind) verdict.Finding {
	for _, f := range fs {
		if f.Kind == k {
			return f
		}
	}
	return verdict.Finding{}
}

func only(fs []verdict.Finding, k verdict.Kind) []verdict.Finding {
	var out []verdict.Finding
	for _, f := range fs {
		if f.Kind == k {
			out = append(out, f)
		}
	}
	return out
}

// inParts lists the parts that findings are in (not the message as a
// whole).
func inParts(fs []verdict.Finding) []StripPart {
	var parts []StripPart
	seen := map[string]bool{}
	for _, f := range fs {
		if f.Path != "" && !seen[f.Path] {
			seen[f.Path] = true
			parts = append(parts, StripPart{Path: f.Path, FileName: displayName(f), Threat: f.Threat, Kind: f.Kind})
		}
	}
	return parts
}

// remainder decides the message as if the parts to strip were gone: their
// findings and manifest entries dropped, and the findings of the message
// as a whole of the outcome being stripped. Those are not matched to a
// part by name (a uuencoded virus in the text has the same name as the
// attachment): the rescan of the rewritten body decides them.
func (c *Policy) remainder(in Input, parts []StripPart, stripped Outcome) Decision {
	gone := map[string]bool{}
	for _, p := range parts {
		gone[mimepart.Part(p.Path)] = true
	}
	under := func(path string) bool {
		part := mimepart.Part(path)
		for g := range gone {
			if part == g || strings.HasPrefix(part, g+"/") {
				return true
			}
		}
		return false
	}
	kind := map[Outcome]verdict.Kind{OutcomeInfected: verdict.KindVirus, OutcomeEncrypted: verdict.KindEncrypted}[stripped]
	v := &verdict.Verdict{Scanner: in.Verdict.Scanner, Engines: in.Verdict.Engines}
	for _, f := range in.Verdict.Findings {
		if f.Path != "" && under(f.Path) || f.Path == "" && kind != "" && f.Kind == kind {
			continue
		}
		v.Add(f)
	}
	for _, p := range in.Verdict.Manifest {
		if !under(p.Path) {
			v.Manifest = append(v.Manifest, p)
		}
	}
	v.Settle()
	rest := in
	rest.Verdict = v
	d := c.Decide(rest)
	if d.Action == Strip && len(d.Strip) > 0 { // another outcome stripping too: strip both
		d.Strip = append(append([]StripPart(nil), parts...), d.Strip...)
	}
	return d
}

func union(a, b []string) []string {
	out := append([]string(nil), a...)
	for _, x := range b {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

// Set is the global policy and each list's own, all compiled.
type Set struct {
	global *Policy
	lists  map[string]*Policy // by list name
}

// NewSet makes the set from compiled policies; lists may be nil.
func NewSet(global *Policy, lists map[string]*Policy) *Set {
	return &Set{global: global, lists: lists}
}

// Decide decides with the policy of each list the message is bound for and
// keeps the most severe decision: a message is one SMTP transaction, so
// the strictest list wins.
func (s *Set) Decide(in Input) Decision {
	var decisions []Decision
	global := len(in.Lists) == 0
	for _, l := range in.Lists {
		if p, ok := s.lists[l]; ok {
			decisions = append(decisions, p.Decide(in))
		} else {
			global = true
		}
	}
	if global {
		decisions = append(decisions, s.global.Decide(in))
	}
	best := decisions[0]
	for _, d := range decisions[1:] {
		if severity(d) > severity(best) {
			best = d
		}
	}
	// Every list's side effects are kept: a list that wants a copy in the
	// quarantine gets it even when another list's rule refuses the message.
	for _, d := range decisions {
		if d.DryRun {
			continue
		}
		best.Quarantine = best.Quarantine || d.Quarantine
		best.Notify = union(best.Notify, d.Notify)
	}
	return best
}

// Rescanned settles a strip: in carries the verdict on the rewritten body,
// d the decision that stripped. Whatever is still infected or banned
// there is refused with d's reply; with no verdict (or a failed one) the
// sender retries, whatever the station-failure rule says, since what was
// found before is not known to be gone. Otherwise d stands.
func (s *Set) Rescanned(in Input, d Decision) Decision {
	again := s.Decide(in)
	switch again.Outcome {
	case OutcomeInfected, OutcomeBannedName:
		d.Action, d.Verb, d.Strip, d.Headers = Reject, RejectMsg, nil, nil
		// Named by what was found where it still is.
		d.Outcome, d.Finding, d.Threat, d.FileName = again.Outcome, again.Finding, again.Threat, again.FileName
		if again.Reply != nil && again.Reply.Code >= 500 {
			d.Reply = again.Reply
		}
	case OutcomeStationFailure:
		d.Action, d.Verb, d.Strip, d.Headers = Tempfail, TempfailMsg, nil, nil
		d.Reply = smtpreply.ScanUnavailable.Because(errors.New("the rescan of the stripped body failed"))
	}
	return d
}

// For returns the policy of a list (the global one when it has none).
func (s *Set) For(list string) *Policy {
	if p, ok := s.lists[list]; ok {
		return p
	}
	return s.global
}

// Global is the policy of mail for no list of its own.
func (s *Set) Global() *Policy { return s.global }

// Each calls f with every policy of the set: the global one first, then the
// lists' in no particular order.
func (s *Set) Each(f func(list string, p *Policy)) {
	f("", s.global)
	for l, p := range s.lists {
		f(l, p)
	}
}

func severity(d Decision) int {
	if d.DryRun { // a list on trial changes nothing: it must not outrank one that acts
		return 0
	}
	switch d.Verb {
	case RejectMsg:
		return 5
	case TempfailMsg:
		return 4
	case DiscardMsg:
		return 3
	}
	if len(d.Strip) > 0 {
		return 2
	}
	if d.Outcome != OutcomeClean {
		return 1
	}
	return 0
}

func (c *Config) addHeaders(d *Decision, in Input, status string) {
	if !c.Headers {
		return
	}
	d.Headers = append(d.Headers, Header{"X-Virus-Status", status})
	scanned := c.ScannedBy
	if scanned == "" && in.Verdict != nil {
		scanned = in.Verdict.Scanner
	}
	if scanned != "" && in.Verdict != nil && in.ScanError == nil {
		d.Headers = append(d.Headers, Header{"X-Virus-Scanned", Safe(scanned, 200)})
	}
}

// statusValue is the X-Virus-Status value for a tagged outcome.
func statusValue(o Outcome, f verdict.Finding) string {
	switch o {
	case OutcomeInfected:
		return "Infected (" + Safe(ThreatName(f.Threat), 100) + ")"
	case OutcomeEncrypted:
		return "Encrypted"
	case OutcomeBannedName:
		return "Banned (" + Safe(displayName(f), 100) + ")"
	case OutcomeOversize:
		return "Unscanned (too large)"
	case OutcomeLimitExceeded:
		return "Unscanned (limit exceeded)"
	case OutcomeUnscannable:
		return "Unscanned (unparseable)"
	default:
		return "Unscanned (scan failed)"
	}
}

// displayName names where a finding is as the sender knows it: the
// attachment's file name, and inside an archive the member's path in it
// ("invoice.zip/doc.exe" for the path "2/invoice.zip/doc.exe").
func displayName(f verdict.Finding) string {
	if _, inside := mimepart.Split(f.Path); len(inside) > 0 {
		return strings.Join(inside, "/")
	}
	return f.FileName
}

// ThreatName gives "???" when the engine named nothing, as LISTSERV logs it.
func ThreatName(t string) string {
	if t == "" {
		return "???"
	}
	return t
}
