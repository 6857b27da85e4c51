// Package policy turns a scan verdict into what the mail system does with the
// message. It is pure: no I/O, no clock, no engines, no MTA. The milter feeds
// it the envelope and the verdict (or the reason there is none) and applies
// the Decision it gets back.
package policy

import (
	"fmt"
	"strings"

	"github.com/avstation/avstation/verdict"
)

// Action is what an admin can configure for an outcome.
type Action string

const (
	Reject   Action = "reject"   // refuse with a 5xx reply
	Tempfail Action = "tempfail" // refuse with a 4xx reply: the sender retries
	Discard  Action = "discard"  // accept and drop
	Tag      Action = "tag"      // accept with X-Virus-Status naming the outcome
)

// Outcome is what happened to a message, one name for every way a scan can
// end. It is the label of the metrics and the word of the log line.
type Outcome string

const (
	OutcomeClean          Outcome = "clean"
	OutcomeInfected       Outcome = "infected"
	OutcomeEncrypted      Outcome = "encrypted"
	OutcomeLimitExceeded  Outcome = "limit-exceeded"
	OutcomeUnscannable    Outcome = "unscannable"
	OutcomeStationFailure Outcome = "station-failure" // no verdict, or the engines failed
)

// Outcomes lists every outcome, for pre-setting metric labels.
var Outcomes = []Outcome{OutcomeClean, OutcomeInfected, OutcomeEncrypted, OutcomeLimitExceeded, OutcomeUnscannable, OutcomeStationFailure}

// Config is the policy part of avmilter's configuration.
type Config struct {
	OnInfected       Action `yaml:"on_infected" doc:"what to do with infected mail: reject (550 naming the list, threat and attachment), discard, or tag"`
	OnEncrypted      Action `yaml:"on_encrypted" doc:"what to do when content could not be read because it is encrypted: tag, reject, tempfail or discard"`
	OnLimitExceeded  Action `yaml:"on_limit_exceeded" doc:"what to do when a scan limit (depth, part count) stopped the scan: tag, reject, tempfail or discard"`
	OnUnscannable    Action `yaml:"on_unscannable" doc:"what to do when the MIME structure is malformed (the raw message was still scanned): tag, reject, tempfail or discard"`
	OnStationFailure Action `yaml:"on_station_failure" doc:"what to do when no verdict could be had (station down, timeout, engine error): tempfail (the sender retries, nothing is lost), tag (accept as Unscanned) or reject"`
	Headers          bool   `yaml:"headers" doc:"add X-Virus-Status and X-Virus-Scanned to list mail that is accepted"`
	// ScannedBy is the X-Virus-Scanned value; empty means the name the
	// scanner gave ("avstation 0.1.0 on host").
	ScannedBy string `yaml:"scanned_by" doc:"value of X-Virus-Scanned; empty: the scanner's own name and host"`
}

// Defaults are safe: infected mail is refused, failures are retried, and
// nothing is accepted without a header that says what happened.
func Defaults() Config {
	return Config{
		OnInfected:       Reject,
		OnEncrypted:      Tag,
		OnLimitExceeded:  Tag,
		OnUnscannable:    Tag,
		OnStationFailure: Tempfail,
		Headers:          true,
	}
}

// allowed lists the actions each setting takes.
var allowed = map[string][]Action{
	"on_infected":        {Reject, Discard, Tag},
	"on_encrypted":       {Tag, Reject, Tempfail, Discard},
	"on_limit_exceeded":  {Tag, Reject, Tempfail, Discard},
	"on_unscannable":     {Tag, Reject, Tempfail, Discard},
	"on_station_failure": {Tempfail, Tag, Reject},
}

// Check returns one problem per bad setting, keyed by its YAML name.
func (c Config) Check() map[string]string {
	probs := map[string]string{}
	for key, a := range map[string]Action{
		"on_infected": c.OnInfected, "on_encrypted": c.OnEncrypted,
		"on_limit_exceeded": c.OnLimitExceeded, "on_unscannable": c.OnUnscannable,
		"on_station_failure": c.OnStationFailure,
	} {
		ok := false
		var names []string
		for _, b := range allowed[key] {
			ok = ok || a == b
			names = append(names, string(b))
		}
		if !ok {
			probs[key] = fmt.Sprintf("%q is not an action for this outcome; use one of: %s", a, strings.Join(names, ", "))
		}
	}
	return probs
}

// Input is what the policy decides from.
type Input struct {
	Lists []string // list names the message is bound for (may be empty with scan_all)
	// Verdict is the scan's answer; nil when there is none (see ScanError).
	Verdict *verdict.Verdict
	// ScanError says why there is no verdict: station down, timeout, bad
	// signature. It is used for the outcome only, never shown to the sender.
	ScanError error
}

// Header is a header field to add to the message.
type Header struct{ Name, Value string }

// Reply is an SMTP reply to the client.
type Reply struct {
	Code     int    // 550, 451
	Enhanced string // 5.7.1
	Text     string
}

func (r Reply) String() string { return fmt.Sprintf("%d %s %s", r.Code, r.Enhanced, r.Text) }

// Verb is what the MTA is told to do.
type Verb string

const (
	Accept      Verb = "accept"
	RejectMsg   Verb = "reject"
	TempfailMsg Verb = "tempfail"
	DiscardMsg  Verb = "discard"
)

// Decision is the whole answer for one message. Detection has already
// happened; this says what to do about it, and the milter does exactly that.
type Decision struct {
	Outcome Outcome
	Verb    Verb
	Reply   *Reply   // for RejectMsg and TempfailMsg
	Headers []Header // for Accept
	// Threat and FileName are the first finding's, for the log line.
	Threat, FileName string
}

// Decide maps the input to a decision.
func (c Config) Decide(in Input) Decision {
	outcome, f := outcomeOf(in)
	d := Decision{Outcome: outcome, Threat: f.Threat, FileName: f.FileName}
	var action Action
	switch outcome {
	case OutcomeClean:
		d.Verb = Accept
		c.addHeaders(&d, in, "Clean")
		return d
	case OutcomeInfected:
		action = c.OnInfected
	case OutcomeEncrypted:
		action = c.OnEncrypted
	case OutcomeLimitExceeded:
		action = c.OnLimitExceeded
	case OutcomeUnscannable:
		action = c.OnUnscannable
	default:
		action = c.OnStationFailure
	}
	switch action {
	case Reject:
		d.Verb = RejectMsg
		d.Reply = &Reply{Code: 550, Enhanced: "5.7.1", Text: rejectText(in.Lists, outcome, f)}
	case Tempfail:
		d.Verb = TempfailMsg
		d.Reply = &Reply{Code: 451, Enhanced: "4.7.1", Text: tempfailText(outcome)}
	case Discard:
		d.Verb = DiscardMsg
	default: // Tag, and any value Check would have refused: never drop silently.
		d.Verb = Accept
		c.addHeaders(&d, in, statusValue(outcome, f))
	}
	return d
}

// outcomeOf names what happened and picks the finding that explains it.
// An unsettled or unknown status is a failure, never clean (fail closed).
func outcomeOf(in Input) (Outcome, verdict.Finding) {
	v := in.Verdict
	if v == nil || in.ScanError != nil || !verdict.Known(v.Status) {
		return OutcomeStationFailure, verdict.Finding{}
	}
	f, _ := v.First(v.Status)
	switch v.Status {
	case verdict.Clean:
		if len(v.Findings) > 0 { // a "clean" verdict that found something is not clean
			return OutcomeStationFailure, verdict.Finding{}
		}
		return OutcomeClean, f
	case verdict.Infected:
		return OutcomeInfected, f
	case verdict.Encrypted:
		return OutcomeEncrypted, f
	case verdict.LimitExceeded:
		return OutcomeLimitExceeded, f
	case verdict.Unscannable:
		return OutcomeUnscannable, f
	}
	return OutcomeStationFailure, f
}

func (c Config) addHeaders(d *Decision, in Input, status string) {
	if !c.Headers {
		return
	}
	d.Headers = append(d.Headers, Header{"X-Virus-Status", status})
	scanned := c.ScannedBy
	if scanned == "" && in.Verdict != nil {
		scanned = in.Verdict.Scanner
	}
	if scanned != "" && in.Verdict != nil && in.ScanError == nil {
		d.Headers = append(d.Headers, Header{"X-Virus-Scanned", safe(scanned, 200)})
	}
}

// statusValue is the X-Virus-Status value for a tagged outcome.
func statusValue(o Outcome, f verdict.Finding) string {
	switch o {
	case OutcomeInfected:
		return "Infected (" + safe(threatName(f.Threat), 100) + ")"
	case OutcomeEncrypted:
		return "Encrypted"
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
	segs := strings.Split(f.Path, "/")
	i := 0
	for i < len(segs) && segs[i] != "" && strings.Trim(segs[i], "0123456789") == "" {
		i++
	}
	if i < len(segs) && i > 0 {
		return strings.Join(segs[i:], "/")
	}
	return f.FileName
}

// threatName gives "???" when the engine named nothing, as LISTSERV logs it.
func threatName(t string) string {
	if t == "" {
		return "???"
	}
	return t
}

func rejectText(lists []string, o Outcome, f verdict.Finding) string {
	where := "the message body"
	if name := displayName(f); name != "" {
		where = "attachment '" + safe(name, 120) + "'"
	}
	var why string
	switch o {
	case OutcomeInfected:
		if f.Threat == "" {
			why = "it contains a virus in " + where
		} else {
			why = "it contains the '" + safe(f.Threat, 100) + "' virus in " + where
		}
	case OutcomeEncrypted:
		why = "it contains encrypted content that cannot be scanned in " + where
	case OutcomeLimitExceeded:
		why = "it is too complex to scan (" + safe(f.Detail, 80) + ")"
	case OutcomeUnscannable:
		why = "its structure is malformed and it cannot be scanned"
	default:
		why = "it could not be scanned for viruses"
	}
	return "Your posting " + toLists(lists) + "has been rejected because " + why + "."
}

func tempfailText(o Outcome) string {
	if o == OutcomeStationFailure {
		return "Virus scanning is temporarily unavailable; please try again later."
	}
	return "Your message could not be scanned for viruses (" + string(o) + "); please try again later."
}

func toLists(lists []string) string {
	switch len(lists) {
	case 0:
		return ""
	case 1:
		return "to the " + safe(lists[0], 64) + " list "
	}
	return "to the " + safe(strings.Join(lists, ", "), 120) + " lists "
}

// safe makes text from the message or the engine safe for an SMTP reply or
// a header: printable ASCII only, bounded length.
func safe(s string, max int) string {
	var b strings.Builder
	for _, r := range s {
		if b.Len() >= max {
			b.WriteString("...")
			break
		}
		if r < 0x20 || r > 0x7e {
			r = '?'
		}
		b.WriteRune(r)
	}
	return b.String()
}
