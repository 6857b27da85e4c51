package jobproto

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/avstation/avstation/verdict"
)

// TestInvalidRequests: whatever is wrong with a request, the station
// answers 401, logs "invalid job signature" with the peer, counts the
// reason and scans nothing.
func TestInvalidRequests(t *testing.T) {
	tests := []struct {
		name       string
		client     []Key
		station    []Key
		skew       time.Duration
		tamper     func(*http.Request)
		wantReason string // "" for success
		wantAuth   bool
	}{
		{name: "ok", wantReason: ""},
		{
			name: "tampered body, digest kept",
			tamper: func(r *http.Request) {
				b := bytes.ToUpper(message)
				r.Body = io.NopCloser(bytes.NewReader(b))
			},
			wantReason: ReasonDigestMismatch,
		},
		{
			name: "tampered body and digest",
			tamper: func(r *http.Request) {
				b := bytes.ToUpper(message)
				r.Body = io.NopCloser(bytes.NewReader(b))
				r.Header.Set(HeaderContentSHA256, digestHex(b))
			},
			wantReason: ReasonBadSignature, wantAuth: true,
		},
		{
			name: "tampered meta",
			tamper: func(r *http.Request) {
				r.Header.Set(HeaderMeta, strings.Replace(r.Header.Get(HeaderMeta), "a@example.org", "b@example.org", 1))
			},
			wantReason: ReasonBadSignature, wantAuth: true,
		},
		{
			name: "meta removed",
			tamper: func(r *http.Request) {
				r.Header.Del(HeaderMeta)
			},
			wantReason: ReasonBadSignature, wantAuth: true,
		},
		{
			name: "tampered path",
			tamper: func(r *http.Request) {
				r.URL.RawQuery = "x=1"
			},
			wantReason: ReasonBadSignature, wantAuth: true,
		},
		{
			name:       "wrong secret",
			client:     []Key{{ID: "a", Secret: []byte("s3cret-wrong-93ab")}},
			wantReason: ReasonBadSignature, wantAuth: true,
		},
		{
			name:       "no authorization",
			tamper:     func(r *http.Request) { r.Header.Del(HeaderAuthorization) },
			wantReason: ReasonMalformed, wantAuth: true,
		},
		{
			name: "other scheme",
			tamper: func(r *http.Request) {
				r.Header.Set(HeaderAuthorization, "Basic YTpi")
			},
			wantReason: ReasonMalformed, wantAuth: true,
		},
		{name: "stale timestamp", skew: -DefaultWindow - time.Second, wantReason: ReasonStale, wantAuth: true},
		{name: "future timestamp", skew: DefaultWindow + time.Second, wantReason: ReasonStale, wantAuth: true},
		{name: "old but inside window", skew: -DefaultWindow},
		{name: "ahead but inside window", skew: DefaultWindow},
		{name: "unknown key", client: []Key{keyB}, wantReason: ReasonUnknownKey, wantAuth: true},
		{name: "rotation: client signs B, station has A and B", client: []Key{keyB, keyA}, station: []Key{keyA, keyB}},
		{name: "rotation: client signs B, station has only A", client: []Key{keyB, keyA}, station: []Key{keyA}, wantReason: ReasonUnknownKey, wantAuth: true},
		{name: "rotation: client signs A, station prefers B", client: []Key{keyA}, station: []Key{keyB, keyA}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newStation(t, "A", func(s *Server) {
				if tt.station != nil {
					s.Keys = ring(t, tt.station...)
				}
			})
			keys := []Key{keyA}
			if tt.client != nil {
				keys = tt.client
			}
			c := newClient(t, ring(t, keys...), st.srv.URL)
			c.Clock = func() time.Time { return t0.Add(tt.skew) }
			if tt.tamper != nil {
				tr := newTransport(t)
				c.HTTP.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
					r = r.Clone(r.Context())
					tt.tamper(r)
					return tr.RoundTrip(r)
				})
			}
			v, err := scan(c)
			if tt.wantReason == "" {
				if err != nil || v.Status != verdict.Clean {
					t.Fatalf("got %+v, %v; want clean verdict", v, err)
				}
				if st.scans.Load() != 1 {
					t.Errorf("%d scans", st.scans.Load())
				}
				return
			}
			if v != nil || err == nil {
				t.Fatalf("got verdict %+v, %v; want error", v, err)
			}
			se, ok := errors.AsType[*StationError](err)
			if !ok || se.Status != http.StatusUnauthorized || se.Auth != tt.wantAuth {
				t.Fatalf("error %#v, want 401 StationError with Auth %v", err, tt.wantAuth)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "station "+st.srv.URL+": scan job job1: ") {
				t.Errorf("error %q lacks station and job", msg)
			}
			if tt.wantAuth && !strings.Contains(msg, "station rejected our signature (check secret_file)") {
				t.Errorf("error %q lacks the hint", msg)
			}
			if !strings.Contains(msg, tt.wantReason) {
				t.Errorf("error %q does not name %q", msg, tt.wantReason)
			}
			if strings.Contains(msg, "s3cret") {
				t.Errorf("error %q shows a secret", msg)
			}
			if n := st.scans.Load(); n != 0 {
				t.Errorf("ScanFunc called %d times", n)
			}
			if got := st.reasons(); len(got) != 1 || got[0] != tt.wantReason {
				t.Errorf("hook got %q, want [%q]", got, tt.wantReason)
			}
			logs := st.logs.String()
			for _, want := range []string{
				"level=WARN", `msg="invalid job signature"`, "peer=127.0.0.1:", `reason="` + tt.wantReason + `"`,
			} {
				if !strings.Contains(logs, want) {
					t.Errorf("log %q lacks %q", logs, want)
				}
			}
			if strings.Contains(logs, "s3cret") {
				t.Errorf("log %q shows a secret", logs)
			}
		})
	}
}

// signedRequest builds a request as the client does, for tests that send
// raw requests.
func signedRequest(t *testing.T, k Key, now time.Time, method, url, meta string, body []byte) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	d := digestHex(body)
	nonce := newNonce()
	sig := sign(k, now.Unix(), nonce, canonicalRequest(method, req.URL.RequestURI(), k.ID, now.Unix(), nonce, d, meta))
	req.Header.Set(HeaderAuthorization, FormatAuthorization(sig))
	req.Header.Set(HeaderContentSHA256, d)
	if meta != "" {
		req.Header.Set(HeaderMeta, meta)
	}
	return req
}

func TestReplayedRequest(t *testing.T) {
	st := newStation(t, "A", nil)
	req := signedRequest(t, keyA, t0, "POST", st.srv.URL+PathScan, `{"job_id":"j1"}`, message)
	replay := req.Clone(context.Background())
	replay.Body = io.NopCloser(bytes.NewReader(message))
	hc := &http.Client{Transport: newTransport(t)}
	for i, want := range []int{http.StatusOK, http.StatusUnauthorized} {
		r := []*http.Request{req, replay}[i]
		resp, err := hc.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("request %d: status %d, want %d", i, resp.StatusCode, want)
		}
	}
	if st.scans.Load() != 1 {
		t.Errorf("%d scans, want 1", st.scans.Load())
	}
	if got := st.reasons(); len(got) != 1 || got[0] != ReasonReplayed {
		t.Errorf("reasons %q", got)
	}
}

func TestBadMeta(t *testing.T) {
	st := newStation(t, "A", nil)
	hc := &http.Client{Transport: newTransport(t)}
	for _, meta := range []string{"", "{", `{"job_id":""}`, `{"job_id":"a/b"}`} {
		resp, err := hc.Do(signedRequest(t, keyA, t0, "POST", st.srv.URL+PathScan, meta, message))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get(HeaderSignature) == "" {
			t.Errorf("meta %q: status %d, signature %q", meta, resp.StatusCode, resp.Header.Get(HeaderSignature))
		}
	}
	if st.scans.Load() != 0 {
		t.Errorf("%d scans", st.scans.Load())
	}
}

func TestBusyStation(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	busy := newStation(t, "A", func(s *Server) {
		s.MaxConcurrent = 1
		s.Scan = func(ctx context.Context, meta Meta, body io.ReaderAt, size int64) (*verdict.Verdict, error) {
			close(started)
			<-release
			return &verdict.Verdict{Status: verdict.Clean, Scanner: "A"}, nil
		}
	})
	other := newStation(t, "B", nil)
	// Registered after the stations: runs before they close.
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })

	c := newClient(t, ring(t, keyA), busy.srv.URL)
	done := make(chan error, 1)
	go func() {
		_, err := scan(c)
		done <- err
	}()
	<-started

	hc := &http.Client{Transport: newTransport(t)}
	resp, err := hc.Do(signedRequest(t, keyA, t0, "POST", busy.srv.URL+PathScan, `{"job_id":"j2"}`, message))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" || resp.Header.Get(HeaderSignature) == "" {
		t.Errorf("status %d, Retry-After %q, signature %q", resp.StatusCode, resp.Header.Get("Retry-After"), resp.Header.Get(HeaderSignature))
	}

	c2 := newClient(t, ring(t, keyA), busy.srv.URL, other.srv.URL)
	v, err := scan(c2)
	if err != nil || v.Scanner != "B" {
		t.Fatalf("got %+v, %v; want B's verdict", v, err)
	}

	once.Do(func() { close(release) })
	if err := <-done; err != nil {
		t.Errorf("first job: %v", err)
	}
}

func TestTooLarge(t *testing.T) {
	st := newStation(t, "A", func(s *Server) { s.MaxBody = 10 })
	c := newClient(t, ring(t, keyA), st.srv.URL)
	_, err := scan(c)
	se, ok := errors.AsType[*StationError](err)
	if !ok || se.Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("error %#v", err)
	}

	// Without a Content-Length the limit is found while spooling.
	tr := newTransport(t)
	c.HTTP.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
		r = r.Clone(r.Context())
		r.ContentLength = -1
		return tr.RoundTrip(r)
	})
	_, err = scan(c)
	se, ok = errors.AsType[*StationError](err)
	if !ok || se.Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("chunked: error %#v", err)
	}
	if st.scans.Load() != 0 {
		t.Errorf("%d scans", st.scans.Load())
	}
}

func TestInfo(t *testing.T) {
	st := newStation(t, "A", nil)
	c := newClient(t, ring(t, keyA), st.srv.URL)
	info, err := c.Info(context.Background(), st.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if info.Station != "A" || info.Counters["jobs"] != 3 {
		t.Errorf("info %+v", info)
	}

	c.Keys = ring(t, Key{ID: "a", Secret: []byte("s3cret-wrong")})
	_, err = c.Info(context.Background(), st.srv.URL)
	se, ok := errors.AsType[*StationError](err)
	if !ok || !se.Auth || !strings.HasPrefix(err.Error(), "station "+st.srv.URL+": info: station rejected our signature (check secret_file)") {
		t.Fatalf("error %v", err)
	}

	// A body on GET /v1/info is refused.
	hc := &http.Client{Transport: newTransport(t)}
	req := signedRequest(t, keyA, t0, "GET", st.srv.URL+PathInfo, "", []byte("x"))
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("status %d", resp.StatusCode)
	}
}

func TestSpoolWriteFailure(t *testing.T) {
	st := newStation(t, "A", func(s *Server) { s.SpoolDir = filepath.Join(t.TempDir(), "missing") })
	c := newClient(t, ring(t, keyA), st.srv.URL)
	_, err := scan(c)
	se, ok := errors.AsType[*StationError](err)
	if !ok || se.Status != http.StatusInternalServerError {
		t.Fatalf("error %#v", err)
	}
	if strings.Contains(err.Error(), "missing") {
		t.Errorf("error %q shows the spool path", err)
	}
}

// fullStation is a station with room for one job, taken by a job that
// waits until release is called, and a client of it.
func fullStation(t *testing.T) (c *Client, release func()) {
	started := make(chan struct{})
	held := make(chan struct{})
	var first, once sync.Once
	st := newStation(t, "A", func(s *Server) {
		s.MaxConcurrent = 1
		s.Scan = func(ctx context.Context, meta Meta, body io.ReaderAt, size int64) (*verdict.Verdict, error) {
			if meta.JobID == "first" {
				first.Do(func() { close(started) })
				<-held
			}
			return &verdict.Verdict{Status: verdict.Clean, Scanner: "A"}, nil
		}
	})
	release = func() { once.Do(func() { close(held) }) }
	t.Cleanup(release) // registered after the station's: runs before it closes
	c = newClient(t, ring(t, keyA), st.srv.URL)
	go c.Scan(context.Background(), Meta{JobID: "first"}, bytes.NewReader(message), int64(len(message)))
	<-started
	return c, release
}

// TestBusyStationWaits: with every station full, the client waits and tries
// again within its deadline instead of failing the job at once.
func TestBusyStationWaits(t *testing.T) {
	c, release := fullStation(t)

	// Deadline shorter than the first job: the second gives up, saying why.
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	_, err := c.Scan(ctx, Meta{JobID: "impatient"}, bytes.NewReader(message), int64(len(message)))
	cancel()
	if err == nil || !strings.Contains(err.Error(), "gave up waiting") {
		t.Fatalf("busy station with a short deadline: %v", err)
	}

	// Released while the third waits: it gets its verdict.
	time.AfterFunc(100*time.Millisecond, release)
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, err := c.Scan(ctx, Meta{JobID: "patient"}, bytes.NewReader(message), int64(len(message)))
	if err != nil || v.Status != verdict.Clean {
		t.Fatalf("got %+v, %v; want a verdict once the station had room", v, err)
	}
}

// countingReaderAt counts the bytes read from a message.
type countingReaderAt struct {
	r *bytes.Reader
	n atomic.Int64
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.n.Add(int64(n))
	return n, err
}

// TestBusyStationBigBody: a full station refuses a large job before its body
// is sent (the client asks with Expect: 100-continue), so the milter sees a
// clean 503 "busy" and waits, never a connection reset that would mark a
// healthy station down; the body is read once for its digest and not sent
// again with every retry.
func TestBusyStationBigBody(t *testing.T) {
	c, release := fullStation(t)
	defer release()
	c.HTTP = NewHTTPClient(nil)
	t.Cleanup(c.HTTP.CloseIdleConnections)

	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<20) // 16 MiB
	body := &countingReaderAt{r: bytes.NewReader(big)}
	// Long enough for a loaded machine to answer a few times.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err := c.Scan(ctx, Meta{JobID: "big"}, body, int64(len(big)))
	if err == nil || !strings.Contains(err.Error(), "status 503: station busy") || !strings.Contains(err.Error(), "gave up waiting") {
		t.Fatalf("a big job at a full station: %v; want 503 busy and a wait until the deadline", err)
	}
	if sent := body.n.Load() - int64(len(big)); sent > 1<<20 {
		t.Errorf("%d bytes of the body read beyond its digest: the body went to a station that refused it", sent)
	}
}

// TestKeysFunc: a server with KeysFunc checks each request against the
// ring it returns then, so that a station's reloaded secret file is in
// force for the next request without a restart.
func TestKeysFunc(t *testing.T) {
	var cur atomic.Pointer[KeyRing]
	cur.Store(ring(t, keyA))
	st := newStation(t, "A", func(s *Server) { s.Keys, s.KeysFunc = nil, cur.Load })
	for _, tt := range []struct {
		name   string
		server *KeyRing
		client Key
		auth   bool // refused for its signature
	}{
		{"first ring", ring(t, keyA), keyA, false},
		{"key not yet in the ring", ring(t, keyA), keyB, true},
		{"ring reloaded with both", ring(t, keyA, keyB), keyB, false},
		{"old key still in it", ring(t, keyA, keyB), keyA, false},
		{"old key dropped", ring(t, keyB), keyA, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cur.Store(tt.server)
			_, err := newClient(t, ring(t, tt.client), st.srv.URL).Info(context.Background(), st.srv.URL)
			se, _ := errors.AsType[*StationError](err)
			if got := se != nil && se.Auth; got != tt.auth || (err != nil && !tt.auth) {
				t.Errorf("key %s against ring %v: %v; want refused %v", tt.client.ID, tt.server.IDs(), err, tt.auth)
			}
		})
	}
}

// TestQueueWait: a job that finds every scan slot taken waits up to
// QueueWait for one and is scanned when it frees; past QueueWait it is
// answered 503, signed, as without a wait.
func TestQueueWait(t *testing.T) {
	for _, tt := range []struct {
		name   string
		wait   time.Duration
		status int
	}{{"slot frees within the wait", 5 * time.Second, http.StatusOK}, {"wait runs out", 50 * time.Millisecond, http.StatusServiceUnavailable}} {
		t.Run(tt.name, func(t *testing.T) {
			started := make(chan struct{})
			release := make(chan struct{})
			var first sync.Once
			st := newStation(t, "A", func(s *Server) {
				s.MaxConcurrent, s.QueueWait = 1, tt.wait
				s.Scan = func(ctx context.Context, meta Meta, body io.ReaderAt, size int64) (*verdict.Verdict, error) {
					if meta.JobID == "first" {
						first.Do(func() { close(started) })
						<-release
					}
					return &verdict.Verdict{Status: verdict.Clean, Scanner: "A"}, nil
				}
			})
			var once sync.Once
			t.Cleanup(func() { once.Do(func() { close(release) }) })
			c := newClient(t, ring(t, keyA), st.srv.URL)
			done := make(chan error, 1)
			go func() {
				_, err := c.Scan(context.Background(), Meta{JobID: "first"}, bytes.NewReader(message), int64(len(message)))
				done <- err
			}()
			<-started
			// The slot frees 200 ms after the second job arrives.
			time.AfterFunc(200*time.Millisecond, func() { once.Do(func() { close(release) }) })
			hc := &http.Client{Transport: newTransport(t)}
			began := time.Now()
			resp, err := hc.Do(signedRequest(t, keyA, t0, "POST", st.srv.URL+PathScan, `{"job_id":"j2"}`, message))
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status || resp.Header.Get(HeaderSignature) == "" {
				t.Errorf("status %d after %v (signature %q), want %d", resp.StatusCode, time.Since(began).Round(time.Millisecond), resp.Header.Get(HeaderSignature), tt.status)
			}
			if err := <-done; err != nil {
				t.Errorf("first job: %v", err)
			}
		})
	}
}
