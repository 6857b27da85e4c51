package clamd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/avstation/avstation/internal/panics"
)

// lockedBuffer is a log written by the pool's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestWatchdogPanic: a panic in the watchdog's goroutine (its PING) fails
// that INSTREAM with the panic as its error, at once, and the next scan on
// the client is answered.
func TestWatchdogPanic(t *testing.T) {
	var answer sync.Mutex // held: the fake does not answer the stream
	answer.Lock()
	f := startFake(t, "tcp", func(conn net.Conn) {
		br := bufio.NewReader(conn)
		if cmd, err := readCommand(br); err != nil || cmd != "INSTREAM" {
			return
		}
		if _, err := readStream(br); err != nil {
			return
		}
		answer.Lock()
		defer answer.Unlock()
		conn.Write([]byte("stream: OK\x00"))
	})
	c, err := New(f.addr, WithProbeAfter(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	c.pingFn = func(context.Context) (string, error) { panic("ping bug") }
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	start := time.Now()
	_, err = c.Scan(ctx, strings.NewReader("data"))
	pe, ok := errors.AsType[*panics.Error](err)
	if !ok || pe.Value != "ping bug" || !strings.Contains(string(pe.Stack), "TestWatchdogPanic") {
		t.Fatalf("Scan: %v, want the watchdog's panic", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the scan ended %v after the panic, want at once", took)
	}
	answer.Unlock()
	c.pingFn = nil
	if res, err := c.Scan(ctx, strings.NewReader("data")); err != nil || res.Found {
		t.Errorf("the next scan: %+v, %v", res, err)
	}
}

// TestHealthCheckPanic: a panic in the PING of the pool's health check of a
// down member keeps it down, is logged once with its stack, and the pool
// goes on.
func TestHealthCheckPanic(t *testing.T) {
	f := startFake(t, "tcp", neverAnswering(t))
	logs := &lockedBuffer{}
	p, err := NewPool([]string{f.addr}, WithHealthInterval(time.Hour), WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	m := p.members[0]
	p.markDown(m, errors.New("down for the test"))
	m.c.pingFn = func(context.Context) (string, error) { panic("ping bug") }
	p.checkDown(t.Context())
	if p.isUp(m) {
		t.Error("the member is up after a panicking PING")
	}
	if n := strings.Count(logs.String(), `msg="panic recovered" where="clamd health check"`); n != 1 {
		t.Errorf("%d panic lines:\n%s", n, logs)
	}
	if !strings.Contains(logs.String(), `panic="ping bug"`) || !strings.Contains(logs.String(), "TestHealthCheckPanic") {
		t.Errorf("the panic line lacks the panic or its stack:\n%s", logs)
	}
	m.c.pingFn = func(context.Context) (string, error) { return "PONG", nil }
	p.checkDown(t.Context())
	if !p.isUp(m) {
		t.Error("the member is not back up after a PONG")
	}
}
