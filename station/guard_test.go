package station

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/avstation/avstation/config"
	"github.com/avstation/avstation/jobproto"
	"github.com/avstation/avstation/scanner"
	"github.com/avstation/avstation/verdict"
)

// panicEngine panics on "PANIC", as a buggy decoder or engine binding
// would, and finds "EVIL" otherwise.
type panicEngine struct{ evilEngine }

func (panicEngine) Scan(ctx context.Context, r io.Reader) (scanner.Detection, error) {
	b, err := io.ReadAll(r)
	if bytes.Contains(b, []byte("PANIC")) {
		panic("decoder bug")
	}
	return scanner.Detection{Found: bytes.Contains(b, []byte("EVIL")), Threat: "Test.Evil"}, err
}

// TestScanPanic: a panicking engine fails that job alone, with a signed
// 500 the milter tempfails on, one log line with the stack and job id, and
// the metric; the next job is scanned.
func TestScanPanic(t *testing.T) {
	cfg := config.DefaultStation()
	cfg.SpoolDir = t.TempDir()
	keys, _ := jobproto.NewKeyRing(jobproto.Key{ID: "default", Secret: []byte("station-test-secret")})
	logs := &bytes.Buffer{}
	sc := scanner.New(scanner.Options{Name: "test"}, panicEngine{})
	st := New(&cfg, sc, nil, keys, slog.New(slog.NewTextHandler(logs, nil)), prometheus.NewRegistry())
	srv := httptest.NewServer(st.Handler())
	defer srv.Close()
	c := &jobproto.Client{Stations: []string{srv.URL}, Keys: keys}

	_, err := c.Scan(context.Background(), jobproto.Meta{JobID: "boom1"}, strings.NewReader("PANIC"), 5)
	se, ok := errors.AsType[*jobproto.StationError](err)
	if !ok || se.Status != http.StatusInternalServerError || se.Auth {
		t.Fatalf("error %v, want a signed 500", err)
	}
	var lines []string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "panic recovered") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 || !strings.Contains(lines[0], "job_id=boom1") || !strings.Contains(lines[0], "where=scan") ||
		!strings.Contains(lines[0], `panic="decoder bug"`) || !strings.Contains(lines[0], "panicEngine.Scan") {
		t.Errorf("panic log lines %q", lines)
	}
	v, err := c.Scan(context.Background(), jobproto.Meta{JobID: "next"}, strings.NewReader("EVIL"), 4)
	if err != nil || v.Status != verdict.Infected {
		t.Fatalf("next job: %+v, %v", v, err)
	}
	m := get(t, srv.URL+"/metrics")
	if !strings.Contains(m, `avstation_panics_total{where="scan"} 1`) || !strings.Contains(m, `avstation_panics_total{where="handler"} 0`) {
		t.Errorf("metrics:\n%s", m)
	}
}

// TestHandlerPanic: a handler's panic is answered 500 (unsigned, so the
// milter cannot act on it), logged once with the job id and counted.
func TestHandlerPanic(t *testing.T) {
	cfg := config.DefaultStation()
	logs := &bytes.Buffer{}
	st := New(&cfg, scanner.New(scanner.Options{}, evilEngine{}), nil, nil, slog.New(slog.NewTextHandler(logs, nil)), prometheus.NewRegistry())
	for _, tt := range []struct {
		name     string
		h        http.HandlerFunc
		wantCode int // 0: connection cut
	}{
		{"before the answer", func(w http.ResponseWriter, r *http.Request) { panic("bug") }, 500},
		{"after the header", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(200)
			w.(http.Flusher).Flush()
			panic("bug")
		}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(st.guard(tt.h))
			defer srv.Close()
			req, _ := http.NewRequest("GET", srv.URL, nil)
			req.Header.Set(jobproto.HeaderMeta, `{"job_id":"j7"}`)
			resp, err := http.DefaultClient.Do(req)
			code := 0
			if err == nil {
				if _, rerr := io.ReadAll(resp.Body); rerr == nil {
					code = resp.StatusCode
				}
				resp.Body.Close()
			}
			if code != tt.wantCode {
				t.Errorf("status %d (%v), want %d", code, err, tt.wantCode)
			}
		})
	}
	if n := strings.Count(logs.String(), `msg="panic recovered" where=handler job_id=j7`); n != 2 {
		t.Errorf("%d panic lines:\n%s", n, logs)
	}
}

// TestListenerCap: beyond max_connections a connection gets 503 and is
// closed; a slot given back is taken again.
func TestListenerCap(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var refused atomic.Int32
	l := limitListen(ln, 2, true, func() { refused.Add(1) })
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })}
	go srv.Serve(l)
	defer srv.Close()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	get := func(c net.Conn) int {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	a, b := dial(), dial()
	if get(a) != 200 || get(b) != 200 {
		t.Fatal("first two not served")
	}
	c := dial()
	if code := get(c); code != 503 {
		t.Errorf("third: %d, want 503", code)
	}
	c.Close()
	a.Close()
	deadline := time.Now().Add(5 * time.Second)
	for l.Open() != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if code := get(dial()); code != 200 {
		t.Errorf("after a close: %d, want 200", code)
	}
	if n := refused.Load(); n != 1 {
		t.Errorf("refused %d, want 1", n)
	}
}

// TestHeaderTooLarge: a request header over max_request_header_bytes is
// answered 431 by net/http, on a fresh connection or after a served
// request on a kept-alive one, and each is counted and logged once.
func TestHeaderTooLarge(t *testing.T) {
	cfg := config.DefaultStation()
	cfg.SpoolDir = t.TempDir()
	cfg.MaxRequestHeader = 4 << 10
	keys, _ := jobproto.NewKeyRing(jobproto.Key{ID: "default", Secret: []byte("station-test-secret")})
	logs := &syncBuffer{}
	st := New(&cfg, scanner.New(scanner.Options{Name: "test"}, evilEngine{}), nil, keys, slog.New(slog.NewTextHandler(logs, nil)), prometheus.NewRegistry())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := st.Server(slog.New(slog.NewTextHandler(io.Discard, nil)))
	go srv.Serve(st.Listener(ln, true))
	defer srv.Close()
	big := "GET /livez HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("b", 16<<10) + "\r\n\r\n"
	for _, tt := range []struct {
		name  string
		first string // sent and answered first on the same connection
	}{
		{"fresh connection", ""},
		{"after a kept-alive request", "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			br := bufio.NewReader(c)
			if tt.first != "" {
				io.WriteString(c, tt.first)
				resp, err := http.ReadResponse(br, nil)
				if err != nil || resp.StatusCode != 200 {
					t.Fatalf("first request: %v %v", resp, err)
				}
				io.Copy(io.Discard, resp.Body)
			}
			io.WriteString(c, big)
			resp, err := http.ReadResponse(br, nil)
			if err != nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
				t.Fatalf("oversized header: %v %v, want 431", resp, err)
			}
		})
	}
	m := get(t, "http://"+ln.Addr().String()+"/metrics")
	if !strings.Contains(m, "avstation_request_headers_too_large_total 2\n") {
		t.Errorf("metrics:\n%s", grepText(m, "too_large"))
	}
	if n := strings.Count(logs.String(), `msg="request header too large" peer=127.0.0.1:`); n != 2 {
		t.Errorf("%d log lines, want 2:\n%s", n, logs)
	}
	if !strings.Contains(logs.String(), "max_request_header_bytes=4096") {
		t.Errorf("the log line does not name the limit:\n%s", logs)
	}
}

// syncBuffer is a log the server's goroutines write while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// grepText keeps the lines of text that contain sub.
func grepText(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// panicConn is a connection whose reads panic, as a bug under the
// listener's refusal would.
type panicConn struct{ net.Conn }

func (panicConn) Read([]byte) (int, error) { panic("conn bug") }

// oneConnListener accepts c once, then waits to be closed.
type oneConnListener struct {
	net.Listener // for Addr
	c            chan net.Conn
	closed       chan struct{}
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.c:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

// TestRefusePanic: a panic in the goroutine that sees a refused connection
// out is recovered, reported and counted as where=listener; the listener
// goes on accepting.
func TestRefusePanic(t *testing.T) {
	cfg := config.DefaultStation()
	cfg.SpoolDir = t.TempDir()
	cfg.MaxConnections = 1
	keys, _ := jobproto.NewKeyRing(jobproto.Key{ID: "default", Secret: []byte("station-test-secret")})
	logs := &syncBuffer{}
	reg := prometheus.NewRegistry()
	st := New(&cfg, scanner.New(scanner.Options{Name: "test"}, evilEngine{}), nil, keys, slog.New(slog.NewTextHandler(logs, nil)), reg)
	client, server := net.Pipe()
	defer client.Close()
	fake := &oneConnListener{c: make(chan net.Conn, 2), closed: make(chan struct{})}
	l := st.Listener(fake, true)
	l.(*limitListener).open.Store(1) // the one slot taken: the next connection is refused
	go io.Copy(io.Discard, client)   // takes the 503
	fake.c <- panicConn{server}
	accepted := make(chan error, 1)
	go func() { _, err := l.Accept(); accepted <- err }()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "panic recovered") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	line := grepText(logs.String(), "panic recovered")
	if !strings.Contains(line, "where=listener") || !strings.Contains(line, `panic="conn bug"`) || !strings.Contains(line, "stack=") {
		t.Errorf("panic line %q", line)
	}
	h := httptest.NewServer(st.Handler())
	defer h.Close()
	if m := get(t, h.URL+"/metrics"); !strings.Contains(m, `avstation_panics_total{where="listener"} 1`) {
		t.Errorf("metrics:\n%s", grepText(m, "panics"))
	}
	// Still accepting: the next connection gets the slot given back.
	l.(*limitListener).open.Store(0)
	c2, s2 := net.Pipe()
	defer c2.Close()
	fake.c <- s2
	if err := <-accepted; err != nil {
		t.Errorf("Accept after the panic: %v", err)
	}
	close(fake.closed)
}
