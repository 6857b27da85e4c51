package jobproto

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/avstation/avstation/verdict"
)

var t0 = time.Unix(1_800_000_000, 0)

const (
	secretA = "s3cret-A-7f1d9c"
	secretB = "s3cret-B-0b5e2a"
)

var message = []byte("From: a@example.org\r\nTo: list@example.org\r\nSubject: hi\r\n\r\nhello\r\n")

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

// station is a test station with call counters.
type station struct {
	srv   *httptest.Server
	spool string
	logs  *lockedBuffer
	scans atomic.Int32

	mu       sync.Mutex
	invalid  []string
	lastMeta Meta
	lastBody []byte
}

func (s *station) reasons() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.invalid...)
}

func ring(t testing.TB, keys ...Key) *KeyRing {
	t.Helper()
	r, err := NewKeyRing(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

var (
	keyA = Key{ID: "a", Secret: []byte(secretA)}
	keyB = Key{ID: "b", Secret: []byte(secretB)}
)

// newStation starts a station on 127.0.0.1 that answers clean, named by
// name, unless configure changes it. At the end of the test it checks the
// spool directory is empty.
func newStation(t *testing.T, name string, configure func(*Server)) *station {
	t.Helper()
	st := &station{spool: t.TempDir(), logs: &lockedBuffer{}}
	var s *Server // the Scan below reads its MemoryBuffer as configured
	s = &Server{
		Keys:     ring(t, keyA),
		SpoolDir: st.spool,
		Logger:   slog.New(slog.NewTextHandler(st.logs, nil)),
		Clock:    func() time.Time { return t0 },
		OnInvalidSignature: func(reason string) {
			st.mu.Lock()
			st.invalid = append(st.invalid, reason)
			st.mu.Unlock()
		},
		Scan: func(ctx context.Context, meta Meta, body io.ReaderAt, size int64) (*verdict.Verdict, error) {
			st.scans.Add(1)
			// A body past MemoryBuffer is a 0600 file in the spool
			// directory while it is scanned; a smaller one is none.
			var files []string
			ents, _ := os.ReadDir(st.spool)
			for _, e := range ents {
				if fi, err := e.Info(); err != nil || fi.Mode().Perm() != 0o600 {
					t.Errorf("spool file %s: mode %v, %v", e.Name(), fi.Mode(), err)
				}
				files = append(files, e.Name())
			}
			if spooled := size > s.MemoryBuffer; spooled != (len(files) == 1) || len(files) > 1 {
				t.Errorf("%d-byte body, memory_buffer %d: spool files %v", size, s.MemoryBuffer, files)
			}
			b, err := io.ReadAll(io.NewSectionReader(body, 0, size))
			if err != nil {
				return nil, err
			}
			if int64(len(b)) != size {
				t.Errorf("size %d, read %d", size, len(b))
			}
			if sum := sha256.Sum256(b); DigestFrom(ctx) != hex.EncodeToString(sum[:]) {
				t.Errorf("DigestFrom %q, want the body's SHA-256 %x", DigestFrom(ctx), sum)
			}
			st.mu.Lock()
			st.lastMeta, st.lastBody = meta, b
			st.mu.Unlock()
			v := &verdict.Verdict{Scanner: name}
			v.Settle()
			return v, nil
		},
		Info: func(context.Context) Info {
			return Info{Station: name, Version: "0.1.0", Counters: map[string]int64{"jobs": 3}}
		},
	}
	if configure != nil {
		configure(s)
	}
	// Registered first, so it runs after the server has closed and every
	// handler has returned.
	t.Cleanup(func() {
		ents, err := os.ReadDir(st.spool)
		if err != nil {
			t.Error(err)
		}
		for _, e := range ents {
			t.Errorf("left in spool dir: %s", e.Name())
		}
	})
	st.srv = httptest.NewServer(s.Handler())
	t.Cleanup(st.srv.Close)
	return st
}

// roundTripFunc lets a test stand between client and station.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func newTransport(t *testing.T) *http.Transport {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

func newClient(t *testing.T, keys *KeyRing, stations ...string) *Client {
	return &Client{
		Stations: stations,
		Keys:     keys,
		HTTP:     &http.Client{Transport: newTransport(t)},
		Clock:    func() time.Time { return t0 },
	}
}

func scan(c *Client) (*verdict.Verdict, error) {
	return c.Scan(context.Background(), Meta{JobID: "job1", Sender: "a@example.org"}, bytes.NewReader(message), int64(len(message)))
}

// TestRoundTrip: a job's body and meta arrive whole, in memory when the
// body fits under MemoryBuffer (no file created) and in a 0600 spool file
// otherwise (newStation's Scan checks which), the file removed after.
func TestRoundTrip(t *testing.T) {
	for _, tt := range []struct {
		name   string
		memory int64
	}{{"spooled", 0}, {"in memory", 1 << 20}, {"just over memory", int64(len(message)) - 1}} {
		t.Run(tt.name, func(t *testing.T) {
			st := newStation(t, "A", func(s *Server) { s.MemoryBuffer = tt.memory })
			c := newClient(t, ring(t, keyA), st.srv.URL)
			meta := Meta{
				JobID: "job1", QueueID: "4XyZ", Sender: "jöhn@exämple.org 😀",
				Recipients: []string{"list@example.org"}, Lists: []string{"list"},
				Client: "192.0.2.1", Primary: "mx1.example.org",
			}
			v, err := c.Scan(context.Background(), meta, bytes.NewReader(message), int64(len(message)))
			if err != nil {
				t.Fatal(err)
			}
			if v.Status != verdict.Clean || v.JobID != "job1" || v.Scanner != "A" {
				t.Errorf("verdict %+v", v)
			}
			st.mu.Lock()
			defer st.mu.Unlock()
			if st.scans.Load() != 1 || !bytes.Equal(st.lastBody, message) {
				t.Errorf("station scanned %q (%d scans)", st.lastBody, st.scans.Load())
			}
			got, _ := json.Marshal(st.lastMeta)
			want, _ := json.Marshal(meta)
			if !bytes.Equal(got, want) {
				t.Errorf("station got meta %s, want %s", got, want)
			}
		})
	}
}

func TestNewJobIDWhenEmpty(t *testing.T) {
	st := newStation(t, "A", nil)
	c := newClient(t, ring(t, keyA), st.srv.URL)
	v, err := c.Scan(context.Background(), Meta{}, bytes.NewReader(message), int64(len(message)))
	if err != nil {
		t.Fatal(err)
	}
	if len(v.JobID) != 20 {
		t.Errorf("job id %q", v.JobID)
	}
}

func TestEmptyMessage(t *testing.T) {
	st := newStation(t, "A", nil)
	c := newClient(t, ring(t, keyA), st.srv.URL)
	if _, err := c.Scan(context.Background(), Meta{JobID: "j"}, bytes.NewReader(nil), 0); err != nil {
		t.Fatal(err)
	}
}

// TestWireVector pins the wire format; docs/job-protocol.md has more vectors (vectors_test.go).
func TestWireVector(t *testing.T) {
	k := Key{ID: "default", Secret: []byte("secret")}
	c := canonicalRequest("POST", "/v1/scan", "default", 1800000000, "00112233445566778899aabbccddeeff", emptyDigest, `{"job_id":"j"}`)
	want := "AVS1-HMAC-SHA256\nPOST\n/v1/scan\ndefault\n1800000000\n00112233445566778899aabbccddeeff\n" +
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n{\"job_id\":\"j\"}"
	if c != want {
		t.Errorf("canonical request\n%q\nwant\n%q", c, want)
	}
	sig := sign(k, 1800000000, "00112233445566778899aabbccddeeff", c)
	h := FormatAuthorization(sig)
	if !strings.HasPrefix(h, "AVS1-HMAC-SHA256 key=default, ts=1800000000, nonce=00112233445566778899aabbccddeeff, sig=") {
		t.Errorf("header %q", h)
	}
	// openssl dgst -sha256 -hmac secret over the canonical request.
	if got := hex.EncodeToString(sig.MAC); got != "e71817fe670b5985049312539a8eefe1405e94c2ff4ecd65beded10696385212" {
		t.Errorf("mac %s", got)
	}
	r := canonicalResponse("POST", "/v1/scan", "default", 1800000001, "ffeeddccbbaa99887766554433221100", emptyDigest, 200, "00112233445566778899aabbccddeeff")
	wantR := "AVS1-HMAC-SHA256-RESPONSE\nPOST\n/v1/scan\ndefault\n1800000001\nffeeddccbbaa99887766554433221100\n" +
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n200\n00112233445566778899aabbccddeeff"
	if r != wantR {
		t.Errorf("canonical response\n%q\nwant\n%q", r, wantR)
	}
}
