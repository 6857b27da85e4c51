package milter

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/d--j/go-milter"

	"github.com/avstation/avstation/jobproto"
	"github.com/avstation/avstation/policy"
	"github.com/avstation/avstation/smtpreply"
	"github.com/avstation/avstation/strip"
	"github.com/avstation/avstation/verdict"
)

// noticeHeader marks avstation's own quarantine reports and notifications:
// submitted from this host, they are never scanned again.
const noticeHeader = "X-Avstation-Notice"

// applied is what was done with a message, for the log line and the MTA.
type applied struct {
	verb policy.Verb
	// reply is the refusal the MTA gives (4xx or 5xx), nil when the message
	// is accepted or discarded. Its Cause says what went wrong here, for
	// the log; an *mtaError cause means the MTA connection itself failed.
	reply       *smtpreply.Reply
	stripped    []strip.Removal
	rescanJob   string // the job that scanned the stripped body
	quarantined string // quarantine id or address
	notified    []string
	problems    []string // side effects that failed without changing the answer
}

// sideEffects does what the decision asks before the MTA is told: the
// quarantine copy first (a message is quarantined before it is refused or
// dropped, so it is never lost), then the notifications. It does not touch
// the MTA connection, so it runs inside the progress loop. With
// applyToMTA, the one place where a decision becomes actions.
func (s *session) sideEffects(ctx context.Context, meta jobproto.Meta, d policy.Decision, v *verdict.Verdict) applied {
	a := applied{verb: d.Verb}
	if d.DryRun {
		a.verb = policy.AcceptMsg
		return a
	}
	if d.Quarantine {
		where, err := s.srv.quarantine(ctx, meta, d, v, s.body)
		if err != nil {
			// The message would be refused or changed with no copy kept:
			// have the sender retry instead.
			return refused(a, smtpreply.LocalError.Because(fmt.Errorf("quarantine: %w", err)))
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
	return a
}

// applyToMTA tells the MTA what the decision says, unless a side effect
// already refused the message: the new body of a strip, the X-Virus-*
// headers, and the verb. It runs on the session goroutine (modifier calls).
func (s *session) applyToMTA(m milter.Modifier, t transaction) applied {
	d, a := t.d, t.done
	if a.reply != nil {
		return a
	}
	if d.DryRun {
		// Trial mode: say what would have happened, change nothing but the
		// headers of what would have been accepted anyway.
		var headers []policy.Header
		if d.Verb == policy.AcceptMsg && len(d.Strip) == 0 {
			headers = d.Headers
		}
		if err := s.replaceHeaders(m, headers); err != nil { // forged X-Virus-* go in any case
			return refused(a, smtpreply.MTALost.Because(&mtaError{fmt.Errorf("changing headers: %w", err)}))
		}
		return a
	}
	switch d.Verb {
	case policy.AcceptMsg:
		headers := d.Headers
		if t.stripped != nil {
			if err := m.ReplaceBody(t.stripped.body()); err != nil {
				return refused(a, smtpreply.MTALost.Because(&mtaError{fmt.Errorf("replacing the body: %w", err)}))
			}
			a.stripped, a.rescanJob = t.stripped.removed, t.stripped.jobID
			for _, r := range t.stripped.removed {
				headers = append(headers, policy.Header{Name: "X-Virus-Removed", Value: removedValue(r)})
			}
		} else if len(d.Strip) > 0 {
			return refused(a, smtpreply.LocalError.Because(errors.New("strip: a decision to strip without a rewritten body")))
		}
		if err := s.replaceHeaders(m, headers); err != nil {
			return refused(a, smtpreply.MTALost.Because(&mtaError{fmt.Errorf("adding headers: %w", err)}))
		}
	case policy.DiscardMsg:
	case policy.RejectMsg, policy.TempfailMsg:
		return refused(a, d.Reply)
	default:
		// A verb this milter does not know: refuse to guess.
		return refused(a, smtpreply.LocalError.Because(fmt.Errorf("policy: unknown verb %q", d.Verb)))
	}
	return a
}

// refused is a with the MTA told to refuse with reply. A refusal without
// a reply (a policy bug) is a temporary local error, never an accept.
func refused(a applied, reply *smtpreply.Reply) applied {
	if reply == nil {
		reply = smtpreply.LocalError.Because(errors.New("policy: a refusal without a reply"))
	}
	a.reply = reply
	a.verb = policy.RejectMsg
	if reply.Temporary() {
		a.verb = policy.TempfailMsg
	}
	return a
}

// response is what go-milter sends the MTA for a.
func (a applied) response() (*milter.Response, error) {
	var mtaErr *mtaError
	switch {
	case a.reply != nil && errors.As(a.reply, &mtaErr):
		return nil, mtaErr // nobody to answer: go-milter closes the connection
	case a.reply != nil:
		return milter.RejectWithCodeAndReason(uint16(a.reply.Code), a.reply.Reason())
	case a.verb == policy.DiscardMsg:
		return milter.RespDiscard, nil
	}
	return milter.RespAccept, nil
}

// mtaError is a failure to talk to the MTA, as opposed to a local fault.
type mtaError struct{ err error }

func (e *mtaError) Error() string { return e.err.Error() }
func (e *mtaError) Unwrap() error { return e.err }

// stripText is the note that replaces a stripped attachment.
func (srv *Server) stripText(r strip.Removal) string {
	t := srv.cfg.Policies.Global().StripText
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
	return policy.Safe(v, 200)
}
