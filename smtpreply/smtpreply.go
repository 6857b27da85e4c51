// Package smtpreply is the one type for every SMTP reply avmilter has the MTA
// give a sender: the code, the enhanced status code (RFC 3463), the public
// text the sender sees and the internal cause that only the log sees.
//
// A refusal is an error: functions that may refuse return a *Reply, and
// errors.As finds it through any wrapping.
package smtpreply

import (
	"errors"
	"fmt"
	"strings"
)

// Reply is a 4xx or 5xx answer to the end of a message.
type Reply struct {
	Code     int    // 550, 451
	Enhanced string // "5.7.1"
	Text     string // what the sender sees: printable ASCII, no line breaks
	Cause    error  // why, for the log; never sent
}

// The replies avmilter gives on its own account. Policy replies (a virus,
// a banned name, …) carry the admin's text and are built by the policy.
var (
	// ScanUnavailable: no verdict (station down, timeout, engine error).
	ScanUnavailable = Reply{Code: 451, Enhanced: "4.7.1", Text: "Virus scanning is temporarily unavailable; please try again later."}
	// LocalError: a fault of this host (disk, quarantine, a rewrite that
	// failed) kept the decision from being carried out; the sender retries.
	LocalError = Reply{Code: 451, Enhanced: "4.3.0", Text: "Temporary failure; please try again later."}
	// MTALost: the MTA connection failed while the decision was applied.
	// Nobody reads this text: the MTA applies its milter default action.
	MTALost = Reply{Code: 451, Enhanced: "4.4.2", Text: "Connection to the mail filter lost; please try again later."}
)

// Because returns a copy of r with its cause set.
func (r Reply) Because(err error) *Reply {
	r.Cause = err
	return &r
}

// Temporary says whether the sender should try again (4xx).
func (r *Reply) Temporary() bool { return r.Code < 500 }

func (r *Reply) Error() string {
	if r.Cause != nil {
		return r.String() + ": " + r.Cause.Error()
	}
	return r.String()
}

func (r *Reply) Unwrap() error { return r.Cause }

// String is the reply as the log shows it, on one line.
func (r Reply) String() string { return fmt.Sprintf("%d %s %s", r.Code, r.Enhanced, r.Text) }

// As finds the Reply in an error chain.
func As(err error) (*Reply, bool) {
	var r *Reply
	ok := errors.As(err, &r)
	return r, ok
}

// MaxLine is the most text one reply line carries. RFC 5321 4.5.3.1.5
// allows 512 octets a reply line, CRLF included, but Postfix's smtpd cuts
// lines of about 500 octets again on its own, mid-word and without the
// enhanced code (seen with Postfix 3.7): 400 leaves room for the code, the
// enhanced code and any reply footer.
const MaxLine = 400

// Lines is the text cut at spaces into lines of at most max octets (MaxLine
// when max is 0), for a multi-line reply. A word longer than max is cut.
func (r Reply) Lines(max int) []string {
	if max <= 0 {
		max = MaxLine
	}
	var lines []string
	line := ""
	for _, w := range strings.Fields(r.Text) {
		for len(w) > max {
			if line != "" {
				lines, line = append(lines, line), ""
			}
			lines, w = append(lines, w[:max]), w[max:]
		}
		switch {
		case line == "":
			line = w
		case len(line)+1+len(w) <= max:
			line += " " + w
		default:
			lines, line = append(lines, line), w
		}
	}
	if line != "" || len(lines) == 0 {
		lines = append(lines, line)
	}
	return lines
}

// Reason is the text as the milter protocol takes it: the enhanced code and
// the lines joined by "\n", which go-milter sends as "550-5.7.1 …" lines
// and a last "550 5.7.1 …" line.
func (r Reply) Reason() string {
	return r.Enhanced + " " + strings.Join(r.Lines(0), "\n")
}

// CheckText reports why s cannot be the text of an SMTP reply: SMTP replies
// are ASCII (RFC 5321 4.2), and a line break would end the reply early.
func CheckText(s string) error {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\r' || c == '\n':
			return fmt.Errorf("a line break at byte %d: SMTP reply text is one paragraph; avmilter breaks long replies into lines itself", i)
		case c < 0x20 || c > 0x7e:
			return fmt.Errorf("byte %#x at %d is not printable ASCII, and SMTP replies are ASCII only", c, i)
		}
	}
	return nil
}
