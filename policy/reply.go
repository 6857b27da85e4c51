package policy

import (
	"strings"

	"github.com/avstation/avstation/placeholder"
	"github.com/avstation/avstation/smtpreply"
	"github.com/avstation/avstation/verdict"
)

// ReplyPlaceholders are the placeholders of a rule's reply text, as in the
// notification templates.
var ReplyPlaceholders = []string{"List", "VirusName", "FileName", "Reason"}

// listservVirus is LISTSERV's own wording for a virus, advice included.
const listservVirus = "Your posting to the %%List%% list has been rejected because it contains the '%%VirusName%%' virus in attachment '%%FileName%%'. You are strongly advised to check your computer for viruses."

// DefaultReply is the reply text of an outcome when its rule sets none:
// LISTSERV's sentence for a virus, the same shape for the others.
func DefaultReply(o Outcome) string {
	if o == OutcomeInfected {
		return listservVirus
	}
	return "Your posting to the %%List%% list has been rejected because %%Reason%%."
}

// checkReply says what is wrong with a configured reply text.
func checkReply(text string) string {
	if err := smtpreply.CheckText(text); err != nil {
		return err.Error()
	}
	if err := placeholder.Check(text, ReplyPlaceholders); err != nil {
		return err.Error()
	}
	return ""
}

// refusal is the reply for a rule that refuses (reject or tempfail; a
// strip that fails is refused with the reject reply).
func refusal(rule Rule, a Action, lists []string, o Outcome, f verdict.Finding) *smtpreply.Reply {
	r := smtpreply.Reply{Code: 550, Enhanced: "5.7.1"}
	if a == Tempfail {
		r = smtpreply.Reply{Code: 451, Enhanced: "4.7.1"}
	}
	switch {
	case rule.Reply != "":
		r.Text = placeholder.Expand(rule.Reply, replyValues(lists, o, f))
	case a == Tempfail:
		r.Text = tempfailText(o)
	default:
		r.Text = placeholder.Expand(defaultReplyFor(o, lists, f), replyValues(lists, o, f))
	}
	return &r
}

// defaultReplyFor is the default text with the words dropped whose value
// is missing: no list (scan_all), a virus in the message text rather than
// in an attachment, a threat the engine did not name.
func defaultReplyFor(o Outcome, lists []string, f verdict.Finding) string {
	t := DefaultReply(o)
	if len(lists) == 0 {
		t = strings.Replace(t, " to the %%List%% list", "", 1)
	} else if len(lists) > 1 {
		t = strings.Replace(t, "%%List%% list", "%%List%% lists", 1)
	}
	if o != OutcomeInfected {
		return t
	}
	if displayName(f) == "" {
		t = strings.Replace(t, " in attachment '%%FileName%%'", " in the message body", 1)
	}
	if f.Threat == "" {
		t = strings.Replace(t, "the '%%VirusName%%' virus", "a virus", 1)
	}
	return t
}

// replyValues are the placeholders' values: printable ASCII, bounded, as an
// SMTP reply must be (a file name is the sender's and may be anything).
func replyValues(lists []string, o Outcome, f verdict.Finding) map[string]string {
	return map[string]string{
		"list":      Safe(strings.Join(lists, ", "), 120),
		"virusname": Safe(ThreatName(f.Threat), 100),
		"filename":  Safe(displayName(f), 120),
		"reason":    reason(o, f),
	}
}

// reason says why, as the clause after "rejected because".
func reason(o Outcome, f verdict.Finding) string {
	where := "the message body"
	if name := displayName(f); name != "" {
		where = "attachment '" + Safe(name, 120) + "'"
	}
	switch o {
	case OutcomeInfected:
		if f.Threat == "" {
			return "it contains a virus in " + where
		}
		return "it contains the '" + Safe(f.Threat, 100) + "' virus in " + where
	case OutcomeEncrypted:
		return "it contains encrypted content that cannot be scanned in " + where
	case OutcomeBannedName:
		return "attachments like '" + Safe(displayName(f), 120) + "' are not accepted"
	case OutcomeOversize:
		return "it is too large to be scanned for viruses"
	case OutcomeLimitExceeded:
		what := "it"
		if name := displayName(f); name != "" {
			what = "attachment '" + Safe(name, 120) + "'"
		}
		how := "goes"
		for _, l := range []string{"max_expanded_bytes", "max_member_size", "max_ratio", "StreamMaxLength"} {
			if strings.Contains(f.Detail, l) {
				how = "expands"
			}
		}
		return what + " could not be fully scanned: it " + how + " beyond a scan limit (" + Safe(f.Detail, 80) + ")"
	case OutcomeUnscannable:
		return "its structure is malformed and it cannot be scanned"
	}
	return "it could not be scanned for viruses"
}

func tempfailText(o Outcome) string {
	if o == OutcomeStationFailure {
		return smtpreply.ScanUnavailable.Text
	}
	return "Your message could not be scanned for viruses (" + string(o) + "); please try again later."
}

// Safe makes text from the message or the engine safe for an SMTP reply or
// a header: printable ASCII only, bounded length.
func Safe(s string, max int) string {
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
