package milter

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/d--j/go-milter"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/avstation/avstation/config"
	"github.com/avstation/avstation/internal/panics"
)

// progressModifier counts the progress packets of withProgress, notes any
// sent after it returned, and panics at packet panicAt (0: never). Only
// Progress may be called: withProgress uses nothing else.
type progressModifier struct {
	milter.Modifier
	mu       sync.Mutex
	sent     int
	panicAt  int
	returned bool
	late     int // packets sent after withProgress returned
}

func (m *progressModifier) Progress() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sent++
	if m.returned {
		m.late++
	}
	if m.sent == m.panicAt {
		panic("progress bug")
	}
	return nil
}

func (m *progressModifier) counts() (sent, late int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sent, m.late
}

func progressSession(every time.Duration) *session {
	return &session{srv: &Server{cfg: &config.Milter{ProgressInterval: every}}}
}

// TestProgressPackets: packets go while the work runs and none once
// withProgress has returned.
func TestProgressPackets(t *testing.T) {
	s := progressSession(5 * time.Millisecond)
	m := &progressModifier{}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	err := s.withProgress(ctx, cancel, m, func(context.Context) { time.Sleep(60 * time.Millisecond) })
	m.mu.Lock()
	m.returned = true
	m.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(30 * time.Millisecond)
	if sent, late := m.counts(); sent == 0 || late != 0 {
		t.Errorf("%d packets, %d of them after withProgress returned; want some, none after", sent, late)
	}
}

// TestProgressPanicIsContained: a panic in sending a packet, on the timer's
// goroutine where no callback's recover is, does not take the daemon down:
// the work's context is cancelled and withProgress returns the panic.
func TestProgressPanicIsContained(t *testing.T) {
	s := progressSession(5 * time.Millisecond)
	m := &progressModifier{panicAt: 2}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	err := s.withProgress(ctx, cancel, m, func(ctx context.Context) {
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Second):
			t.Error("the work's context was not cancelled after the panic")
		}
	})
	pe, ok := errors.AsType[*panics.Error](err)
	if !ok || pe.Value != "progress bug" {
		t.Fatalf("withProgress: %v, want the progress packet's panic", err)
	}
	time.Sleep(30 * time.Millisecond)
	if sent, _ := m.counts(); sent != 2 {
		t.Errorf("%d packets, want none after the one that panicked", sent)
	}
}

// TestProgressStopsWhenWorkPanics: a panic in the work leaves withProgress
// to the callback's recover; no packet follows the answer that recover has
// go-milter send.
func TestProgressStopsWhenWorkPanics(t *testing.T) {
	s := progressSession(5 * time.Millisecond)
	m := &progressModifier{}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	func() {
		defer func() {
			if r := recover(); r != "scan bug" {
				t.Errorf("recovered %v, want the work's panic", r)
			}
			m.mu.Lock()
			m.returned = true
			m.mu.Unlock()
		}()
		_ = s.withProgress(ctx, cancel, m, func(context.Context) {
			time.Sleep(20 * time.Millisecond)
			panic("scan bug")
		})
	}()
	time.Sleep(40 * time.Millisecond)
	if _, late := m.counts(); late != 0 {
		t.Errorf("%d packets after the work panicked", late)
	}
}

// progressPanics is a milter.Modifier for a session driven by hand: it
// knows the protocol, the actions and no macro, and its Progress panics.
type progressPanics struct {
	protocolOnly
}

func (progressPanics) Actions() milter.OptAction { return milter.OptAddHeader | milter.OptChangeHeader }
func (progressPanics) Progress() error           { panic("progress bug") }

// TestProgressPanicTempfails: a message whose scan outlasts
// progress_interval, on a connection whose progress packet panics, is
// tempfailed at its end, logged with the panic and counted; the scan is
// cancelled and the spool emptied.
func TestProgressPanicTempfails(t *testing.T) {
	cfg := config.DefaultMilter()
	cfg.Lists = []config.ListPattern{{Match: "*@lists.example.org"}}
	cfg.SpoolDir = t.TempDir()
	cfg.MemoryBuffer = 16 // spooled, to see the file go
	cfg.ProgressInterval = 20 * time.Millisecond
	if err := cfg.Prepare(); err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	reg := prometheus.NewRegistry()
	fs := &fakeScanner{v: cleanVerdictForTest(), delay: 10 * time.Second}
	srv, err := New(&cfg, fs, nil, slog.New(slog.NewTextHandler(logs, nil)), reg)
	if err != nil {
		t.Fatal(err)
	}
	g := srv.newSession().(guarded)
	m := progressPanics{protocolOnly{proto: milter.OptNoConnReply | milter.OptNoMailReply | milter.OptNoRcptReply |
		milter.OptNoHeaderReply | milter.OptNoEOHReply | milter.OptNoBodyReply}}
	g.Connect("client.example", "tcp4", 25, "192.0.2.1", m)
	g.MailFrom("sender@example.com", "", m)
	g.RcptTo("dev@lists.example.org", "", m)
	if resp, _ := g.Data(m); resp != milter.RespContinue {
		t.Fatalf("DATA: %v", resp)
	}
	g.Header("Subject", " hello", m)
	g.Headers(m)
	g.BodyChunk([]byte("a body longer than memory_buffer\r\n"), m)
	start := time.Now()
	resp, err := g.EndOfMessage(m)
	if err != nil || resp == nil || !strings.HasPrefix(string(resp.Response().Data), "451 4.3.0") {
		t.Fatalf("end of message answered %v, %v; want 451 4.3.0", resp, err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the scan ran on for %v after the panic", took)
	}
	line := waitFor(t, logs, "panic in sending a progress packet")
	for _, want := range []string{"progress bug", "stack=", "job_id="} {
		if !strings.Contains(line, want) {
			t.Errorf("log line without %q:\n%s", want, line)
		}
	}
	waitFor(t, logs, "message scanned", "action=tempfail")
	if got := counter(t, reg, "avmilter_panics_total", "where", "callback"); got != 1 {
		t.Errorf("avmilter_panics_total{where=callback} = %v", got)
	}
	g.Cleanup(m)
	if left, _ := os.ReadDir(cfg.SpoolDir); len(left) != 0 {
		t.Errorf("spool files left: %v", left)
	}
}
