package milter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/d--j/go-milter"

	"github.com/avstation/avstation/internal/panics"
	"github.com/avstation/avstation/jobproto"
	"github.com/avstation/avstation/policy"
	"github.com/avstation/avstation/scanner"
	"github.com/avstation/avstation/smtpreply"
)

// guarded is a session whose every callback recovers from a panic: the
// message at hand is tempfailed (the MTA keeps it and retries), the panic
// is logged once with its stack and counted, and the daemon and every other
// SMTP session go on.
type guarded struct {
	s     *session
	inner milter.Milter // s, but for tests that make a callback panic
}

var _ milter.Milter = guarded{}

// recovered turns a panic in callback into a tempfail for this message.
func (g guarded) recovered(callback string, m milter.Modifier, resp **milter.Response, err *error) {
	r := recover()
	if r == nil {
		return
	}
	g.s.panicked(callback, r, debug.Stack(), m)
	if resp != nil {
		*resp, *err = milter.RespTempFail, nil
	}
	// The MTA may read no reply to this stage (Connect, MAIL, a recipient,
	// a header, the end of the headers, a body chunk: see negotiate); the
	// next stage it hears tempfails too, rather than find the message
	// forgotten and accept it.
	g.s.deferred = milter.RespTempFail
	if callback == "Connect" || callback == "NewConnection" {
		g.s.broken = true // reset at MailFrom forgets deferred; this stays
	}
}

// panicked logs and counts a recovered panic and forgets the message, so
// that what a broken callback left half done cannot leak into the next.
func (s *session) panicked(where string, value any, stack []byte, m milter.Modifier) {
	s.srv.metrics.panics.WithLabelValues("callback").Inc()
	attrs := []any{slog.String("callback", where), slog.String("panic", fmt.Sprint(value)), slog.String("stack", string(stack))}
	if m != nil {
		attrs = append(attrs, slog.String("queue_id", m.Get(milter.MacroQueueId)))
	}
	s.srv.log.Error("panic in a milter callback; the message is tempfailed", attrs...)
	func() {
		defer func() { _ = recover() }() // reset must not take the session down either
		s.reset()
	}()
}

// decideGuarded is decide, with a panic in it (an in-process engine or
// archive decoder, the policy) taken down the station-failure path of this
// message only: a scan that did not finish is a scan that failed.
//
// It runs on the session goroutine, inside withProgress: this recover
// keeps a panic of the scan from the callback's own (guarded), which would
// tempfail the message without the station-failure rule.
func (s *session) decideGuarded(ctx context.Context, meta jobproto.Meta, canChangeBody bool) transaction {
	t, err := panics.Call(func() (transaction, error) { return s.decide(ctx, meta, canChangeBody), nil })
	pe, ok := errors.AsType[*panics.Error](err)
	if !ok {
		return t
	}
	s.srv.metrics.panics.WithLabelValues("decision").Inc()
	s.srv.log.Error("panic while scanning and deciding; the station-failure rule applies",
		append([]any{slog.String("queue_id", meta.QueueID), slog.String("job_id", meta.JobID)}, pe.Attrs()...)...)
	t = transaction{in: policy.Input{Lists: s.lists, Sender: s.sender, Recipients: s.recipients, Authenticated: s.authUser != "",
		ScanError: pe}}
	t.d = s.failedDecision(t.in)
	t.done = applied{verb: t.d.Verb}
	return t
}

// loggedPanic logs and counts a panic the in-process scanner recovered
// (its error is a *scanner.PanicError): once, here, with the stack and the
// job; the decision line that follows carries the error.
func (srv *Server) loggedPanic(meta jobproto.Meta, err error) {
	var pe *scanner.PanicError
	if !errors.As(err, &pe) {
		return
	}
	srv.metrics.panics.WithLabelValues("decision").Inc()
	srv.log.Error("panic while scanning; the station-failure rule applies", slog.String("queue_id", meta.QueueID),
		slog.String("job_id", meta.JobID), slog.String("panic", fmt.Sprint(pe.Value)), slog.String("stack", string(pe.Stack)))
}

// failedDecision is the station-failure decision for in, or a plain
// tempfail when even the policy cannot be asked.
func (s *session) failedDecision(in policy.Input) (d policy.Decision) {
	defer func() {
		if r := recover(); r != nil {
			d = policy.Decision{Outcome: policy.OutcomeStationFailure, Action: policy.Tempfail, Verb: policy.TempfailMsg,
				Reply: smtpreply.LocalError.Because(fmt.Errorf("policy: panic: %v", r))}
		}
	}()
	return s.srv.cfg.Policies.Decide(in)
}

func (g guarded) NewConnection(m milter.Modifier) (err error) {
	defer g.recovered("NewConnection", m, nil, nil)
	return g.inner.NewConnection(m)
}

func (g guarded) Connect(host, family string, port uint16, addr string, m milter.Modifier) (resp *milter.Response, err error) {
	defer g.recovered("Connect", m, &resp, &err)
	return g.inner.Connect(host, family, port, addr, m)
}

func (g guarded) Helo(name string, m milter.Modifier) (resp *milter.Response, err error) {
	defer g.recovered("Helo", m, &resp, &err)
	return g.inner.Helo(name, m)
}

func (g guarded) MailFrom(from, esmtpArgs string, m milter.Modifier) (resp *milter.Response, err error) {
	defer g.recovered("MailFrom", m, &resp, &err)
	return g.inner.MailFrom(from, esmtpArgs, m)
}

func (g guarded) RcptTo(rcpt, esmtpArgs string, m milter.Modifier) (resp *milter.Response, err error) {
	defer g.recovered("RcptTo", m, &resp, &err)
	return g.inner.RcptTo(rcpt, esmtpArgs, m)
}

func (g guarded) Data(m milter.Modifier) (resp *milter.Response, err error) {
	defer g.recovered("Data", m, &resp, &err)
	return g.inner.Data(m)
}

func (g guarded) Header(name, value string, m milter.Modifier) (resp *milter.Response, err error) {
	defer g.recovered("Header", m, &resp, &err)
	return g.inner.Header(name, value, m)
}

func (g guarded) Headers(m milter.Modifier) (resp *milter.Response, err error) {
	defer g.recovered("Headers", m, &resp, &err)
	return g.inner.Headers(m)
}

func (g guarded) BodyChunk(chunk []byte, m milter.Modifier) (resp *milter.Response, err error) {
	defer g.recovered("BodyChunk", m, &resp, &err)
	return g.inner.BodyChunk(chunk, m)
}

func (g guarded) EndOfMessage(m milter.Modifier) (resp *milter.Response, err error) {
	defer g.recovered("EndOfMessage", m, &resp, &err)
	return g.inner.EndOfMessage(m)
}

func (g guarded) Abort(m milter.Modifier) (err error) {
	defer g.recovered("Abort", m, nil, nil)
	return g.inner.Abort(m)
}

func (g guarded) Unknown(cmd string, m milter.Modifier) (resp *milter.Response, err error) {
	defer g.recovered("Unknown", m, &resp, &err)
	return g.inner.Unknown(cmd, m)
}

func (g guarded) Cleanup(m milter.Modifier) {
	defer g.s.srv.conns.leave() // entered when the session was made (Server.newSession)
	defer g.recovered("Cleanup", nil, nil, nil)
	g.inner.Cleanup(m)
}
