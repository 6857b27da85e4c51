package milter

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/d--j/go-milter"

	"github.com/avstation/avstation/jobproto"
	"github.com/avstation/avstation/policy"
	"github.com/avstation/avstation/spool"
	"github.com/avstation/avstation/strip"
	"github.com/avstation/avstation/verdict"
)

// noticeHeader marks avstation's own quarantine reports and notifications:
// submitted from this host, they are never scanned again.
const noticeHeader = "X-Avstation-Notice"

// applied is what was done with a message, for the log line.
type applied struct {
	resp        *milter.Response
	err         error // the MTA connection failed while applying
	verb        policy.Verb
	stripped    []strip.Removal
	quarantined string // quarantine id or address
	notified    []string
	problems    []string // side effects that failed
}

// apply does what the decision says: side effects first (a message is
// quarantined before it is refused or dropped, so it is never lost), then
// the MTA is told. The one place where a decision becomes actions.
func (s *session) apply(m milter.Modifier, meta jobproto.Meta, d policy.Decision, v *verdict.Verdict) applied {
	if d.DryRun {
		// Trial mode: say what would have happened, change nothing but the
		// headers of what would have been accepted anyway.
		a := applied{verb: policy.AcceptMsg}
		var headers []policy.Header
		if d.Verb == policy.AcceptMsg && len(d.Strip) == 0 {
			headers = d.Headers
		}
		a.err = s.replaceHeaders(m, headers) // forged X-Virus-* go in any case
		a.resp = milter.RespAccept
		return a
	}
	a := applied{verb: d.Verb}
	ctx, cancel := context.WithTimeout(context.Background(), s.srv.cfg.ScanTimeout)
	defer cancel()
	if d.Quarantine {
		where, err := s.srv.quarantine(ctx, meta, d, v, s.body)
		if err != nil {
			// The message would be refused or changed with no copy kept:
			// have the sender retry instead.
			a.problems = append(a.problems, "quarantine: "+err.Error())
			return s.refuse(a, &policy.Reply{Code: 451, Enhanced: "4.3.0", Text: "Temporary failure; please try again later."})
		}
		a.quarantined = where
	}
	if len(d.Notify) > 0 {
		sent, errs := s.srv.notify(ctx, meta, d)
		a.notified = sent
		for _, err := range errs {
			a.problems = append(a.problems, "notify: "+err.Error())
		}
	}
	switch d.Verb {
	case policy.AcceptMsg:
		headers := d.Headers
		if len(d.Strip) > 0 {
			removed, err := s.strip(m, d)
			if errors.Is(err, strip.ErrCannotStrip) {
				// IceWarp: what cannot be removed is rejected.
				a.problems = append(a.problems, err.Error())
				return s.refuse(a, d.Reply)
			}
			var mtaErr *mtaError
			if errors.As(err, &mtaErr) {
				a.err = err // the MTA connection is gone: nothing more to say to it
				return a
			}
			if err != nil { // a local fault (disk): keep the message, have it retried
				a.problems = append(a.problems, "strip: "+err.Error())
				return s.refuse(a, &policy.Reply{Code: 451, Enhanced: "4.3.0", Text: "Temporary failure; please try again later."})
			}
			a.stripped = removed
			for _, r := range removed {
				headers = append(headers, policy.Header{Name: "X-Virus-Removed", Value: removedValue(r)})
			}
		}
		if err := s.replaceHeaders(m, headers); err != nil {
			a.err = fmt.Errorf("adding headers: %w", err)
			return a
		}
		a.resp = milter.RespAccept
	case policy.DiscardMsg:
		a.resp = milter.RespDiscard
	case policy.RejectMsg, policy.TempfailMsg:
		return s.refuse(a, d.Reply)
	default:
		// A verb this milter does not know: refuse to guess.
		a.verb, a.resp = policy.TempfailMsg, milter.RespTempFail
	}
	return a
}

// refuse answers with reply (4xx or 5xx).
func (s *session) refuse(a applied, reply *policy.Reply) applied {
	a.verb = policy.RejectMsg
	if reply.Code < 500 {
		a.verb = policy.TempfailMsg
	}
	a.resp, a.err = milter.RejectWithCodeAndReason(uint16(reply.Code), reply.Enhanced+" "+reply.Text)
	return a
}

// strip replaces the decision's parts with a note and hands the MTA the
// new body, in packets of at most 64 KB (the negotiated size).
func (s *session) strip(m milter.Modifier, d policy.Decision) ([]strip.Removal, error) {
	if m.Actions()&milter.OptChangeBody == 0 {
		return nil, fmt.Errorf("%w: the MTA does not allow replacing the body", strip.ErrCannotStrip)
	}
	removals := make([]strip.Removal, 0, len(d.Strip))
	for _, p := range d.Strip {
		removals = append(removals, strip.Removal{Path: p.Path, FileName: p.FileName, Threat: p.Threat})
	}
	out := spool.New(s.srv.cfg.SpoolDir, int64(s.srv.cfg.MemoryBuffer))
	defer out.Close()
	res, err := strip.Body(s.body, s.body.Size(), removals, s.srv.stripText, out)
	if err != nil {
		return nil, err
	}
	if err := m.ReplaceBody(out.Reader()); err != nil {
		return nil, &mtaError{fmt.Errorf("replacing the body: %w", err)}
	}
	return res.Removed, nil
}

// mtaError is a failure to talk to the MTA, as opposed to a local fault.
type mtaError struct{ err error }

func (e *mtaError) Error() string { return e.err.Error() }
func (e *mtaError) Unwrap() error { return e.err }

// stripText is the note that replaces a stripped attachment.
func (srv *Server) stripText(r strip.Removal) string {
	t := srv.cfg.Policy.StripText
	if t == "" {
		return strip.DefaultReplacement(r)
	}
	return strings.NewReplacer("%%FileName%%", r.FileName, "%%VirusName%%", r.Threat).Replace(t)
}

func removedValue(r strip.Removal) string {
	v := r.FileName
	if v == "" {
		v = "part " + r.Path
	}
	if r.Threat != "" {
		v += " (" + r.Threat + ")"
	}
	return headerSafe(v)
}

// headerSafe keeps a header value to printable ASCII.
func headerSafe(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			b[i] = '?'
		}
	}
	if len(b) > 200 {
		b = b[:200]
	}
	return string(b)
}
