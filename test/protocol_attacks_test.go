package test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/avstation/avstation/jobproto"
	"github.com/avstation/avstation/test/harness"
)

// roundTrip lets a test change a signed request on its way out, after the
// client signed it.
type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// attackMsg is a small clean job body.
var attackMsg = []byte("Subject: attack\r\n\r\nhello\r\n")

// scanWith sends attackMsg (or body) as a signed job with c and returns
// the station's status (0: none) and the client's error.
func scanWith(c *jobproto.Client, body []byte) (int, error) {
	if body == nil {
		body = attackMsg
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.Scan(ctx, jobproto.Meta{JobID: jobproto.NewJobID()}, bytes.NewReader(body), int64(len(body)))
	if se, ok := errors.AsType[*jobproto.StationError](err); ok {
		return se.Status, err
	}
	return 0, err
}

// TestProtocolAttacks runs each attack on the job protocol against a
// running avstation with clamd. Each must be refused with the named
// reason, counted, scan nothing, and leave the station answering.
//
//	go test ./test -run TestProtocolAttacks -v
func TestProtocolAttacks(t *testing.T) {
	clamd := harness.StartClamd(t)
	secret := harness.WriteSecret(t, "attack-secret")
	station := harness.StartStation(t, bin.Station, "", clamd.Addr, secret,
		"max_message_size: 64KiB", "read_header_timeout: 2s", "body_timeout: 2s", "max_connections: 200")
	base := "http://" + station.Addr
	keys := loadKeys(t, secret)
	good := &jobproto.Client{Stations: []string{base}, Keys: keys}
	// with is good's client with its request changed in flight.
	with := func(change func(*http.Request)) *jobproto.Client {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		return &jobproto.Client{Stations: []string{base}, Keys: keys, HTTP: &http.Client{Transport: roundTrip(func(r *http.Request) (*http.Response, error) {
			change(r)
			return tr.RoundTrip(r)
		})}}
	}
	invalid := func(reason string) float64 {
		return gaugeLabel(t, station.Metrics(t, station.Addr), "avstation_invalid_signatures_total", `reason="`+reason+`"`)
	}
	// refused checks one attack's outcome and that the station still scans.
	refused := func(t *testing.T, status, want int, err error, reason string, before float64) {
		t.Helper()
		if status != want || err == nil {
			t.Errorf("status %d (%v), want %d", status, err, want)
		}
		if reason != "" {
			if after := invalid(reason); after != before+1 {
				t.Errorf("%s counted %v times, want 1", reason, after-before)
			}
		}
		if st, err := scanWith(good, nil); err != nil {
			t.Fatalf("a good job after the attack: %d %v", st, err)
		}
	}

	t.Run("no signature", func(t *testing.T) {
		before := invalid(jobproto.ReasonMalformed)
		resp, err := http.Post(base+jobproto.PathScan, "message/rfc822", bytes.NewReader(attackMsg))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		refused(t, resp.StatusCode, 401, errors.New(resp.Status), jobproto.ReasonMalformed, before)
	})
	t.Run("wrong secret", func(t *testing.T) {
		before := invalid(jobproto.ReasonBadSignature)
		wrong, _ := jobproto.NewKeyRing(jobproto.Key{ID: "default", Secret: []byte("not-the-secret")})
		status, err := scanWith(&jobproto.Client{Stations: []string{base}, Keys: wrong}, nil)
		refused(t, status, 401, err, jobproto.ReasonBadSignature, before)
	})
	t.Run("key id not configured", func(t *testing.T) {
		before := invalid(jobproto.ReasonUnknownKey)
		other, _ := jobproto.NewKeyRing(jobproto.Key{ID: "other", Secret: []byte("attack-secret")})
		status, err := scanWith(&jobproto.Client{Stations: []string{base}, Keys: other}, nil)
		refused(t, status, 401, err, jobproto.ReasonUnknownKey, before)
	})
	t.Run("valid signature, tampered body", func(t *testing.T) {
		before := invalid(jobproto.ReasonDigestMismatch)
		status, err := scanWith(with(func(r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			b[0] ^= 0x20
			r.Body = io.NopCloser(bytes.NewReader(b))
		}), nil)
		refused(t, status, 401, err, jobproto.ReasonDigestMismatch, before)
	})
	t.Run("replayed request", func(t *testing.T) {
		var captured *http.Request
		status, err := scanWith(with(func(r *http.Request) { captured = r.Clone(context.Background()) }), nil)
		if err != nil {
			t.Fatalf("the original: %d %v", status, err)
		}
		before := invalid(jobproto.ReasonReplayed)
		captured.Body = io.NopCloser(bytes.NewReader(attackMsg))
		resp, err := http.DefaultTransport.RoundTrip(captured)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		refused(t, resp.StatusCode, 401, errors.New(resp.Status), jobproto.ReasonReplayed, before)
	})
	t.Run("timestamp out of the window", func(t *testing.T) {
		before := invalid(jobproto.ReasonStale)
		status, err := scanWith(&jobproto.Client{Stations: []string{base}, Keys: keys, Clock: func() time.Time { return time.Now().Add(-6 * time.Minute) }}, nil)
		refused(t, status, 401, err, jobproto.ReasonStale, before)
	})
	t.Run("oversized job", func(t *testing.T) {
		big := bytes.Repeat([]byte("x"), 100<<10)
		status, err := scanWith(good, big)
		refused(t, status, 413, err, "", 0)
		// Sent chunked, the size is only found while reading.
		status, err = scanWith(with(func(r *http.Request) { r.ContentLength = -1 }), big)
		refused(t, status, 413, err, "", 0)
	})
	t.Run("unauthenticated stalled body", func(t *testing.T) {
		// The header promises 1MB that never comes: answered from the
		// header alone and closed, nothing waited for.
		status, took := rawExchange(t, station.Addr, "POST /v1/scan HTTP/1.1\r\nHost: s\r\nContent-Length: 1000000\r\n\r\nabc", time.Second)
		if status != 401 || took > time.Second {
			t.Errorf("status %d after %v, want 401 at once", status, took)
		}
	})
	t.Run("oversized request header", func(t *testing.T) {
		// Over max_request_header_bytes (64KiB by default), with a body
		// of 1MB promised and never sent: 431 from the header alone,
		// closed, the body not waited for.
		before := gauge(t, station.Metrics(t, station.Addr), "avstation_request_headers_too_large_total")
		raw := "POST /v1/scan HTTP/1.1\r\nHost: s\r\nAvs-Meta: " + strings.Repeat("m", 100<<10) + "\r\nContent-Length: 1000000\r\n\r\n"
		status, took := rawExchange(t, station.Addr, raw, time.Second)
		if status != 431 || took > time.Second {
			t.Errorf("status %d after %v, want 431 at once", status, took)
		}
		if after := gauge(t, station.Metrics(t, station.Addr), "avstation_request_headers_too_large_total"); after != before+1 {
			t.Errorf("avstation_request_headers_too_large_total rose by %v, want 1", after-before)
		}
		station.WaitLog(t, 5*time.Second, "request header too large", "peer=127.0.0.1:", "max_request_header_bytes=65536")
		refused(t, status, 431, errors.New("431"), "", 0)
	})
	t.Run("a byte a second", func(t *testing.T) {
		c, err := net.Dial("tcp", station.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		hdr := "POST /v1/scan HTTP/1.1\r\nHost: s\r\n"
		var werr error
		for i := 0; werr == nil && time.Since(start) < 10*time.Second; i++ {
			_, werr = c.Write([]byte{hdr[i%len(hdr)]})
			if werr == nil {
				c.SetReadDeadline(time.Now().Add(time.Second))
				var b [1]byte
				if _, rerr := c.Read(b[:]); rerr != nil && !errors.Is(rerr, os.ErrDeadlineExceeded) {
					werr = rerr // EOF or reset: the station closed it
				}
			}
		}
		if took := time.Since(start); werr == nil || took > 4*time.Second {
			t.Errorf("connection still open after %v (%v), want closed at read_header_timeout 2s", took, werr)
		}
	})
	t.Run("signed job, body a byte a second", func(t *testing.T) {
		// The client signs a request; the capture keeps its header and
		// sends nothing, so that its nonce is fresh at the station.
		var head []byte
		tr := roundTrip(func(r *http.Request) (*http.Response, error) {
			var b bytes.Buffer
			r.Write(&b)
			head, _, _ = bytes.Cut(b.Bytes(), []byte("\r\n\r\n"))
			return nil, errors.New("captured")
		})
		scanWith(&jobproto.Client{Stations: []string{base}, Keys: keys, HTTP: &http.Client{Transport: tr}}, nil)
		c, err := net.Dial("tcp", station.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write(append(head, "\r\n\r\n"...))
		start := time.Now()
		br := bufio.NewReader(c)
		done := make(chan *http.Response, 1)
		go func() { resp, _ := http.ReadResponse(br, nil); done <- resp }()
		for i := 0; ; i++ {
			select {
			case resp := <-done:
				took := time.Since(start)
				if resp == nil || resp.StatusCode != 400 || took > 4*time.Second {
					t.Errorf("answer %v after %v, want 400 at body_timeout 2s", resp, took)
				}
				return
			case <-time.After(time.Second):
				c.Write(attackMsg[i%len(attackMsg) : i%len(attackMsg)+1])
			}
			if time.Since(start) > 10*time.Second {
				t.Fatal("no answer in 10s")
			}
		}
	})
	t.Run("1000 concurrent connections", func(t *testing.T) {
		refusedBefore := gauge(t, station.Metrics(t, station.Addr), "avstation_connections_refused_total")
		var got503, held, other atomic.Int64
		var conns sync.WaitGroup
		release := make(chan struct{})
		for range 1000 {
			conns.Go(func() {
				c, err := net.Dial("tcp", station.Addr)
				if err != nil {
					other.Add(1)
					return
				}
				defer c.Close()
				c.SetReadDeadline(time.Now().Add(1500 * time.Millisecond))
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				switch {
				case err == nil && resp.StatusCode == 503 && resp.Header.Get("Retry-After") == "1":
					got503.Add(1)
				case errors.Is(err, os.ErrDeadlineExceeded):
					held.Add(1) // accepted, waiting for a request
					<-release
				default:
					other.Add(1)
				}
			})
		}
		time.Sleep(2 * time.Second)
		close(release)
		conns.Wait()
		t.Logf("1000 connections: %d held, %d answered 503, %d otherwise", held.Load(), got503.Load(), other.Load())
		if held.Load() > 200 || got503.Load() < 700 || held.Load()+got503.Load()+other.Load() != 1000 {
			t.Errorf("held %d (max_connections 200), 503 %d", held.Load(), got503.Load())
		}
		if r := gauge(t, station.Metrics(t, station.Addr), "avstation_connections_refused_total") - refusedBefore; r < 800 {
			t.Errorf("avstation_connections_refused_total rose by %v, want at least 800", r)
		}
		if st, err := scanWith(good, nil); err != nil {
			t.Fatalf("a good job after the flood: %d %v", st, err)
		}
	})
	if strings.Contains(station.Log(), "attack-secret") {
		t.Error("the secret is in the station's log")
	}
	station.Stop()
	station.SpoolEmpty(t)
}

// rawExchange writes raw, reads one response and reports its status and
// how long until the station closed the connection (0 status: none).
func rawExchange(t *testing.T, addr, raw string, wait time.Duration) (int, time.Duration) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	io.WriteString(c, raw)
	c.SetReadDeadline(time.Now().Add(wait + 5*time.Second))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return 0, time.Since(start)
	}
	io.Copy(io.Discard, resp.Body)
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("connection not closed after the answer: %v", err)
	}
	return resp.StatusCode, time.Since(start)
}

// gaugeLabel reads the sample of name with the given label from /metrics
// text.
func gaugeLabel(t testing.TB, metrics, name, label string) float64 {
	t.Helper()
	for _, line := range strings.Split(metrics, "\n") {
		if strings.HasPrefix(line, name+"{") && strings.Contains(line, label) {
			f, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("no %s{%s} in /metrics", name, label)
	return 0
}

// TestAlteredResponse: a proxy between avmilter and avstation turns the
// station's "infected" verdict into "clean". The milter finds the
// response's signature broken, tempfails the posting (451) and delivers
// nothing; a posting through the station directly is rejected as infected.
//
//	go test ./test -run TestAlteredResponse -v
func TestAlteredResponse(t *testing.T) {
	clamd := harness.StartClamd(t)
	sink := harness.StartSink(t)
	secret := harness.WriteSecret(t, "proxy-secret")
	station := harness.StartStation(t, bin.Station, "", clamd.Addr, secret)
	target, _ := url.Parse("http://" + station.Addr)
	var forged atomic.Int64
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ModifyResponse = func(resp *http.Response) error {
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		if f := bytes.Replace(b, []byte(`"status":"infected"`), []byte(`"status":"clean"`), 1); !bytes.Equal(f, b) {
			forged.Add(1)
			b = f
		}
		resp.Body = io.NopCloser(bytes.NewReader(b))
		resp.ContentLength = int64(len(b))
		resp.Header.Set("Content-Length", fmt.Sprint(len(b)))
		return nil
	}
	ps := httptest.NewServer(proxy)
	defer ps.Close()

	c := newChain(t, sink, harness.StartMilter(t, bin.Milter, harness.MilterOptions{Station: ps.URL, Secret: secret}))
	wantCode(t, c.send(t, listRcp, "forged verdict", eicarAttachment()), 451)
	if forged.Load() == 0 {
		t.Fatal("the proxy forged nothing: the station's verdict was not infected?")
	}
	c.milter.WaitLog(t, 5*time.Second, "outcome=station-failure", "action=tempfail")
	if !strings.Contains(c.milter.Log(), "does not match its signed digest") {
		t.Errorf("milter log does not say why:\n%s", c.milter.Log())
	}
	c.waitNotDelivered(t, "forged verdict")
	station.Stop()
	station.SpoolEmpty(t)
}
