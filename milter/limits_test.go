package milter

import (
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/d--j/go-milter"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/avstation/avstation/config"
	"github.com/avstation/avstation/verdict"
)

func counter(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					found = found || lp.GetName() == labels[i] && lp.GetValue() == labels[i+1]
				}
				if !found {
					continue metric
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s%v", name, labels)
	return 0
}

// TestHoldingBudget: a message over spool_max_message, or one that would
// take all held messages past spool_max_total, is tempfailed as it arrives
// and its spool file removed; the budget is given back for the next one.
// An MTA that reads no reply to body chunks, headers or the end of the
// headers (SMFIP_NR_BODY, SMFIP_NR_HDR, SMFIP_NR_EOH, which avmilter asks
// for) hears the refusal at the end of the message; one that reads the
// reply to the end of the headers, there; one that reads every reply, at
// once.
func TestHoldingBudget(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*config.Milter)
		reply  string
	}{
		{"over one message's bound", func(c *config.Milter) { c.SpoolMaxMessage = 300 },
			"451 4.3.4 Message too big to be checked for viruses here; please try again later."},
		{"over all messages' bound", func(c *config.Milter) { c.SpoolMaxTotal, c.SpoolMaxMessage = 300, 0 },
			"451 4.3.1 Insufficient system storage to check this message for viruses; please try again later."},
	}
	noReplies := milter.OptNoConnReply | milter.OptNoMailReply | milter.OptNoRcptReply |
		milter.OptNoHeaderReply | milter.OptNoEOHReply | milter.OptNoBodyReply
	for _, tt := range tests {
		for _, mta := range []struct {
			name    string
			opts    []milter.Option
			bigHead bool
		}{
			{"no body replies", nil, false},
			{"no header replies", nil, true},
			{"no header replies, end of headers heard", []milter.Option{milter.WithoutProtocol(milter.OptNoEOHReply)}, true},
			{"every reply", []milter.Option{milter.WithoutProtocol(noReplies)}, false},
			{"every reply, big header", []milter.Option{milter.WithoutProtocol(noReplies)}, true},
		} {
			t.Run(tt.name+"/"+mta.name, func(t *testing.T) {
				fs := &fakeScanner{v: cleanVerdictForTest()}
				addr, logs, reg, spool := startMilter(t, tt.mutate, fs)
				s := envelope(t, addr, "192.0.2.1", "sender@example.com", append(mta.opts, milter.WithReadTimeout(10*time.Second))...)
				var act *milter.Action
				var err error
				if mta.bigHead {
					act, err = s.HeaderField("Subject", " "+strings.Repeat("big ", 100), nil)
					if err == nil && act.Type == milter.ActionContinue {
						s.HeaderField("To", " dev@lists.example.org", nil) // not kept: decided
						act, err = s.HeaderEnd()
					}
				} else {
					s.HeaderField("Subject", " big", nil)
					s.HeaderEnd()
					act, err = s.BodyChunk([]byte(strings.Repeat("x", 400)))
				}
				if err == nil && act.Type == milter.ActionContinue {
					s.BodyChunk([]byte("more")) // not kept: decided
					_, act, err = s.End()
				}
				if err != nil || act == nil || strings.TrimSpace(act.SMTPReply) != tt.reply {
					t.Fatalf("answered %+v, %v; want %q", act, err, tt.reply)
				}
				if left, _ := os.ReadDir(spool); len(left) != 0 {
					t.Errorf("spool files left after the refusal: %v", left)
				}
				if fs.calls != 0 {
					t.Errorf("a message that was not held was scanned")
				}
				if got := counter(t, reg, "avmilter_messages_not_held_total"); got != 1 {
					t.Errorf("avmilter_messages_not_held_total = %v", got)
				}
				if !strings.Contains(logs.String(), "message not held; tempfailed") {
					t.Errorf("log:\n%s", logs)
				}
				// The budget came back: a small message is held and scanned.
				if r := transact(t, addr, []string{"dev@lists.example.org"}, subject, "small\r\n"); r.act == nil || r.act.Type != milter.ActionAccept || fs.calls != 1 {
					t.Errorf("next message: %+v after %d scans", r.act, fs.calls)
				}
			})
		}
	}
}

// TestMaxSessions: past max_sessions, a connection's messages are
// tempfailed and counted: at connect for an MTA that reads the reply to
// it, at DATA for every message of the connection for one that reads no
// reply to Connect and MAIL (SMFIP_NR_CONN, SMFIP_NR_MAIL, which avmilter
// asks for). When the first closes, the next is served.
func TestMaxSessions(t *testing.T) {
	fs := &fakeScanner{v: cleanVerdictForTest()}
	addr, _, reg, _ := startMilter(t, func(c *config.Milter) { c.MaxSessions = 1 }, fs)
	first, err := milter.NewClient("tcp", addr).Session(milter.NewMacroBag())
	if err != nil {
		t.Fatal(err)
	}
	if act, err := first.Conn("a.example", milter.FamilyInet, 1, "192.0.2.1"); err != nil || act.Type != milter.ActionContinue {
		t.Fatalf("first connection: %+v, %v", act, err)
	}
	hearsConnect, err := milter.NewClient("tcp", addr, milter.WithoutProtocol(milter.OptNoConnReply)).Session(milter.NewMacroBag())
	if err != nil {
		t.Fatal(err)
	}
	if act, err := hearsConnect.Conn("b.example", milter.FamilyInet, 2, "192.0.2.2"); err != nil || act.Type != milter.ActionTempFail {
		t.Errorf("connection over max_sessions 1: %+v, %v; want tempfail", act, err)
	}
	hearsConnect.Close()
	silent, err := milter.NewClient("tcp", addr).Session(milter.NewMacroBag())
	if err != nil {
		t.Fatal(err)
	}
	silent.Conn("c.example", milter.FamilyInet, 3, "192.0.2.3")
	silent.Helo("c.example")
	for i := range 2 { // each message of the connection
		silent.Mail("sender@example.com", "")
		silent.Rcpt("dev@lists.example.org", "")
		if act, err := silent.DataStart(); err != nil || act.Type != milter.ActionTempFail {
			t.Errorf("message %d of a connection over max_sessions 1 whose MTA hears no reply to Connect: DATA answered %+v, %v; want tempfail", i+1, act, err)
		}
		silent.Abort(nil)
	}
	silent.Close()
	first.Close()
	if got := counter(t, reg, "avmilter_sessions_refused_total"); got != 2 {
		t.Errorf("avmilter_sessions_refused_total = %v, want 2", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := transact(t, addr, []string{"dev@lists.example.org"}, subject, "hello\r\n")
		if r.act != nil && r.act.Type == milter.ActionAccept {
			break
		}
		if time.Now().After(deadline) { // the closed sessions' Cleanup has not run yet
			t.Fatalf("after both closed: %+v", r.act)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestPanicsAreContained: a panic in the scan tempfails that message (the
// station-failure rule) and the next one is scanned; a panic in a callback
// tempfails its message; the server goes on, and both are counted.
func TestPanicsAreContained(t *testing.T) {
	fs := &fakeScanner{v: cleanVerdictForTest(), during: func() { panic("engine blew up") }}
	addr, logs, reg, _ := startMilter(t, nil, fs)
	r := transact(t, addr, []string{"dev@lists.example.org"}, subject, "hello\r\n")
	if r.act == nil || r.act.SMTPCode != 451 || !strings.Contains(r.act.SMTPReply, "4.7.1") {
		t.Fatalf("a panicking scan answered %+v; want the station-failure tempfail", r.act)
	}
	for _, want := range []string{"panic while scanning and deciding", "engine blew up", "stack=", "job_id=", "outcome=station-failure"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log without %q:\n%s", want, logs)
		}
	}
	fs.during = nil
	if r := transact(t, addr, []string{"dev@lists.example.org"}, subject, "hello\r\n"); r.act == nil || r.act.Type != milter.ActionAccept {
		t.Errorf("the next message: %+v", r.act)
	}
	if got := counter(t, reg, "avmilter_panics_total", "where", "decision"); got != 1 {
		t.Errorf("avmilter_panics_total{where=decision} = %v", got)
	}

	// A callback that panics: its message is tempfailed, the session lives.
	creg := prometheus.NewRegistry()
	sess := &session{srv: &Server{cfg: &config.Milter{}, log: discardLog(), metrics: newMetrics(creg)}}
	sess.reset()
	g := guarded{s: sess, inner: panicky{sess}}
	resp, err := g.RcptTo("<dev@lists.example.org>", "", nil)
	if err != nil || resp != milter.RespTempFail {
		t.Errorf("a panicking RcptTo answered %v, %v; want tempfail", resp, err)
	}
	if got := counter(t, creg, "avmilter_panics_total", "where", "callback"); got != 1 {
		t.Errorf("avmilter_panics_total{where=callback} = %v", got)
	}
	// An MTA that reads no reply to RCPT (SMFIP_NR_RCPT) did not hear
	// that tempfail: the message is tempfailed at DATA, not accepted as
	// one for no list (the panic made the session forget the recipient).
	if resp, err := g.Data(nil); err != nil || resp != milter.RespTempFail {
		t.Errorf("DATA after a panicking RcptTo answered %v, %v; want tempfail", resp, err)
	}
	if sess.reset(); sess.deferred != nil { // the next message
		t.Errorf("the next message starts with a decision: %v", sess.deferred)
	}

	// A Connect that panics, for an MTA that reads no reply to Connect or
	// MAIL (SMFIP_NR_CONN, SMFIP_NR_MAIL): every message of the
	// connection is tempfailed at DATA, though MAIL starts each afresh.
	silent := protocolOnly{proto: milter.OptNoConnReply | milter.OptNoMailReply | milter.OptNoRcptReply}
	resp, err = g.Connect("client.example", "tcp4", 25, "192.0.2.1", silent)
	if err != nil || resp != milter.RespTempFail {
		t.Errorf("a panicking Connect answered %v, %v; want tempfail", resp, err)
	}
	for i := range 2 {
		if resp, err := g.MailFrom("<a@example.com>", "", silent); err != nil || resp != milter.RespContinue {
			t.Errorf("message %d: MAIL answered %v, %v; want continue (not heard)", i+1, resp, err)
		}
		if resp, err := g.Data(silent); err != nil || resp != milter.RespTempFail {
			t.Errorf("message %d: DATA after a panicking Connect answered %v, %v; want tempfail", i+1, resp, err)
		}
	}
	if got := counter(t, creg, "avmilter_panics_total", "where", "callback"); got != 2 {
		t.Errorf("avmilter_panics_total{where=callback} = %v, want 2 (RcptTo, Connect)", got)
	}
}

// panicky is a session whose RcptTo and Connect panic.
type panicky struct{ *session }

func (p panicky) RcptTo(string, string, milter.Modifier) (*milter.Response, error) {
	panic("bad recipient code")
}

func (p panicky) Connect(string, string, uint16, string, milter.Modifier) (*milter.Response, error) {
	panic("bad connect code")
}

// protocolOnly is a milter.Modifier that knows the negotiated protocol
// and no macro; anything else it is asked panics.
type protocolOnly struct {
	milter.Modifier
	proto milter.OptProtocol
}

func (m protocolOnly) Protocol() milter.OptProtocol { return m.proto }
func (m protocolOnly) Get(milter.MacroName) string  { return "" }

func cleanVerdictForTest() *verdict.Verdict {
	v := &verdict.Verdict{Scanner: "s"}
	v.Settle()
	return v
}

func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }
