package jobproto

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rawHead is req as the client writes it, cut after its header and the
// first n bytes of its body; the Content-Length still promises all of it.
func rawHead(t *testing.T, req *http.Request, n int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := req.Write(&b); err != nil {
		t.Fatal(err)
	}
	head, _, _ := bytes.Cut(b.Bytes(), []byte("\r\n\r\n"))
	return append(append(head, "\r\n\r\n"...), bytes.Repeat([]byte("x"), n)...)
}

// answerThenClose sends raw, reads the one response and reports its
// status and how long until the station closed the connection.
func answerThenClose(t *testing.T, addr string, raw []byte) (int, time.Duration) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	if _, err := c.Write(raw); err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no response: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("after the response: %v, want the station to close (EOF)", err)
	}
	return resp.StatusCode, time.Since(start)
}

// TestRefusedRequestReadsNoBody: a request that does not authenticate is
// answered from its header and the connection closed, without waiting for
// (or draining) the body it announced.
func TestRefusedRequestReadsNoBody(t *testing.T) {
	st := newStation(t, "A", nil)
	addr := strings.TrimPrefix(st.srv.URL, "http://")
	for _, tt := range []struct {
		name string
		req  func() *http.Request
	}{
		{"unsigned", func() *http.Request {
			r, _ := http.NewRequest("POST", st.srv.URL+PathScan, bytes.NewReader(make([]byte, 100_000)))
			return r
		}},
		{"wrong secret", func() *http.Request {
			return signedRequest(t, Key{ID: "a", Secret: []byte("wrong-secret-0123")}, t0, "POST", st.srv.URL+PathScan, `{"job_id":"j1"}`, make([]byte, 100_000))
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, took := answerThenClose(t, addr, rawHead(t, tt.req(), 10))
			if status != http.StatusUnauthorized || took > 2*time.Second {
				t.Errorf("status %d after %v, want 401 at once", status, took)
			}
		})
	}
	if st.scans.Load() != 0 {
		t.Errorf("%d scans", st.scans.Load())
	}
}

// TestStalledBodyCutOff: an authenticated request whose body stalls is
// cut off after BodyTimeout, answered and its connection closed.
func TestStalledBodyCutOff(t *testing.T) {
	st := newStation(t, "A", func(s *Server) { s.BodyTimeout = 300 * time.Millisecond })
	addr := strings.TrimPrefix(st.srv.URL, "http://")
	req := signedRequest(t, keyA, t0, "POST", st.srv.URL+PathScan, `{"job_id":"j1"}`, make([]byte, 100_000))
	status, took := answerThenClose(t, addr, rawHead(t, req, 10))
	if status != http.StatusBadRequest || took < 300*time.Millisecond || took > 3*time.Second {
		t.Errorf("status %d after %v, want 400 after about 300ms", status, took)
	}
	if st.scans.Load() != 0 {
		t.Errorf("%d scans", st.scans.Load())
	}
}
