package jobproto

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/avstation/avstation/verdict"
)

// maxResponse bounds a response body: a verdict with the manifest of a
// large archive is far below it.
const maxResponse = 16 << 20

// expectContinueAbove is the body size above which a request waits for the
// station's 100 Continue: one round trip, against sending megabytes a busy
// or refusing station throws away.
const expectContinueAbove = 64 << 10

// ErrAuth is wrapped by the error of a station that refused our signature.
var ErrAuth = errors.New("station rejected our signature (check secret_file)")

// defaultHTTP is the HTTP client of a Client without one.
var defaultHTTP = NewHTTPClient(nil)

// NewHTTPClient is the HTTP client for talking to stations, with tlsConfig
// for https stations (nil: the system's roots). The caller's context bounds
// a job; these bound the steps whose hang would hide a dead station from
// the failover.
func NewHTTPClient(tlsConfig *tls.Config) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			// No proxy from the environment: mail content should not take
			// a detour an admin did not configure for it.
			Proxy: nil,
			// A station that drops SYNs must not eat the job's whole
			// timeout before the next station is tried.
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:     tlsConfig,
			TLSHandshakeTimeout: 10 * time.Second,
			// Scanning a large archive can take minutes; the caller's
			// context is the real bound.
			ResponseHeaderTimeout: 10 * time.Minute,
			// A job over expectContinueAbove asks the station first (Expect:
			// 100-continue): a full station answers 503 before the body is
			// sent, instead of closing on a body it never reads, which the
			// sender sees as a connection reset and takes for a dead station.
			// The wait is generous: a station that has not answered by then is
			// sent the body anyway, and on a loaded station a body sent too
			// soon meets the same reset.
			ExpectContinueTimeout: 10 * time.Second,
			IdleConnTimeout:       90 * time.Second,
			MaxIdleConnsPerHost:   16,
			ForceAttemptHTTP2:     true,
		},
		// A redirect would resend the job to a target it was not signed for.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Client is the milter side of the job protocol.
type Client struct {
	Stations []string // base URLs, e.g. "http://127.0.0.1:7358"; tried in order
	Keys     *KeyRing
	HTTP     *http.Client     // nil is a default with dial and header timeouts
	Clock    func() time.Time // nil is time.Now
}

// StationError is a job or info request that did not end in a verified
// answer from one station.
type StationError struct {
	Station string
	JobID   string // "" for an info request
	Status  int    // HTTP status, 0 when there was no response
	Auth    bool   // the station refused our signature
	Err     error
}

func (e *StationError) Error() string {
	what := "info"
	if e.JobID != "" {
		what = "scan job " + e.JobID
	}
	return fmt.Sprintf("station %s: %s: %v", redactURL(e.Station), what, e.Err)
}

func (e *StationError) Unwrap() error { return e.Err }

// redactURL hides a password in a station URL.
func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		return u.Redacted()
	}
	return s
}

// stationErrors is the error of a job every station failed.
type stationErrors []error

func (e stationErrors) Error() string {
	parts := make([]string, len(e))
	for i, err := range e {
		parts[i] = err.Error()
	}
	return fmt.Sprintf("all %d stations failed: %s", len(e), strings.Join(parts, "; "))
}

func (e stationErrors) Unwrap() []error { return e }

// Scan sends the message, size bytes of body, to the first station that
// answers with a verified verdict, trying the stations in order. A station
// that cannot be reached, is busy, fails, refuses our signature or gives an
// answer that does not verify is skipped. Any outcome but a verdict is an
// error (callers tempfail); a single failed station gives a *StationError,
// several give an error that wraps one per station. meta.JobID is set to a
// new id when empty.
func (c *Client) Scan(ctx context.Context, meta Meta, body io.ReaderAt, size int64) (*verdict.Verdict, error) {
	if meta.JobID == "" {
		meta.JobID = NewJobID()
	}
	if len(c.Stations) == 0 || c.Keys == nil {
		return nil, fmt.Errorf("scan job %s: no station or no key configured", meta.JobID)
	}
	job, err := PrepareJob(meta, body, size)
	if err != nil {
		return nil, err
	}
	metaHdr, digest := job.meta, job.digest

	// A busy station (503) is full, not broken: when every station failed
	// and one of them was busy, wait a little and go round again until ctx
	// ends, rather than tempfail mail that a moment later would be scanned.
	for attempt := 0; ; attempt++ {
		var errs stationErrors
		busy := false
		for _, station := range c.Stations {
			v, err := c.scanAt(ctx, station, meta.JobID, metaHdr, body, size, digest)
			if err == nil {
				return v, nil
			}
			var se *StationError
			if errors.As(err, &se) && se.Status == http.StatusServiceUnavailable {
				busy = true
			}
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
		}
		var err error = errs
		if len(errs) == 1 {
			err = errs[0]
		}
		if !busy || ctx.Err() != nil {
			return nil, err
		}
		select {
		case <-time.After(busyBackoff(attempt)):
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (gave up waiting: %w)", err, ctx.Err())
		}
	}
}

// busyBackoff is the pause before going round all stations again when they
// were busy: 20 ms doubling to 500 ms, with jitter so that waiting milters
// do not come back all at once.
func busyBackoff(attempt int) time.Duration {
	d := 20 * time.Millisecond << min(attempt, 5)
	d = min(d, 500*time.Millisecond)
	return d/2 + time.Duration(mrand.Int64N(int64(d/2)+1))
}

func (c *Client) scanAt(ctx context.Context, station, jobID, metaHdr string, body io.ReaderAt, size int64, digest string) (*verdict.Verdict, error) {
	fail := func(status int, err error) (*verdict.Verdict, error) {
		return nil, &StationError{Station: station, JobID: jobID, Status: status, Auth: errors.Is(err, ErrAuth), Err: err}
	}
	newBody := func() (io.ReadCloser, error) { return io.NopCloser(io.NewSectionReader(body, 0, size)), nil }
	status, data, err := c.do(ctx, http.MethodPost, station, PathScan, metaHdr, newBody, size, digest)
	if err != nil {
		return fail(status, err)
	}
	v, err := decodeVerdict(data, jobID)
	if err != nil {
		return fail(status, err)
	}
	return v, nil
}

// decodeVerdict reads a station's verified answer to job jobID. A verdict
// for another job is an error: the answer was mixed up on the way.
func decodeVerdict(data []byte, jobID string) (*verdict.Verdict, error) {
	var v verdict.Verdict
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("decoding verdict: %w", err)
	}
	if v.JobID != jobID {
		return nil, fmt.Errorf("verdict is for job %.70q", v.JobID)
	}
	return &v, nil
}

// Info asks one station what it runs.
func (c *Client) Info(ctx context.Context, station string) (*Info, error) {
	fail := func(status int, err error) (*Info, error) {
		return nil, &StationError{Station: station, Status: status, Auth: errors.Is(err, ErrAuth), Err: err}
	}
	if c.Keys == nil {
		return fail(0, errors.New("no key configured"))
	}
	status, data, err := c.do(ctx, http.MethodGet, station, PathInfo, "", nil, 0, emptyDigest)
	if err != nil {
		return fail(status, err)
	}
	var info Info
	if err := json.Unmarshal(data, &info); err != nil {
		return fail(status, fmt.Errorf("decoding info: %w", err))
	}
	return &info, nil
}

// do sends one signed request and returns the body of a verified 200
// response. Any other outcome is an error, with the status when there was
// a response.
func (c *Client) do(ctx context.Context, method, station, path, metaHdr string, newBody func() (io.ReadCloser, error), size int64, digest string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(station, "/")+path, nil)
	if err != nil {
		return 0, nil, err
	}
	if newBody != nil {
		req.Body, _ = newBody()
		req.GetBody = newBody
		req.ContentLength = size
		if size == 0 {
			req.Body = http.NoBody
		}
		if size > expectContinueAbove {
			req.Header.Set("Expect", "100-continue")
		}
	}
	target := req.URL.RequestURI()
	key := c.Keys.Signer()
	ts := c.now().Unix()
	nonce := newNonce()
	sig := sign(key, ts, nonce, canonicalRequest(method, target, key.ID, ts, nonce, digest, metaHdr))
	req.Header.Set(HeaderAuthorization, FormatAuthorization(sig))
	req.Header.Set(HeaderContentSHA256, digest)
	if metaHdr != "" {
		req.Header.Set(HeaderMeta, metaHdr)
	}
	if newBody != nil {
		req.Header.Set("Content-Type", "message/rfc822")
	}

	hc := c.HTTP
	if hc == nil {
		hc = defaultHTTP
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("status %d: reading response: %w", resp.StatusCode, err)
	}
	if len(data) > maxResponse {
		return resp.StatusCode, nil, fmt.Errorf("status %d: response over %d bytes", resp.StatusCode, maxResponse)
	}
	if err := c.verifyResponse(method, target, nonce, resp, data); err != nil {
		if resp.StatusCode == http.StatusUnauthorized {
			return resp.StatusCode, nil, authError(data)
		}
		return resp.StatusCode, nil, fmt.Errorf("status %d: %w", resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e errorBody
		json.Unmarshal(data, &e)
		if e.Error == "" {
			e.Error = http.StatusText(resp.StatusCode)
		}
		return resp.StatusCode, nil, fmt.Errorf("status %d: %s", resp.StatusCode, truncate(e.Error, 512))
	}
	return resp.StatusCode, data, nil
}

// verifyResponse checks that resp, with body data, is the station's signed
// answer to the request with requestNonce.
func (c *Client) verifyResponse(method, target, requestNonce string, resp *http.Response, data []byte) error {
	sigs := resp.Header.Values(HeaderSignature)
	digests := resp.Header.Values(HeaderContentSHA256)
	if len(sigs) == 0 {
		return errors.New("unsigned response")
	}
	if len(sigs) != 1 || len(digests) != 1 {
		return errors.New("response signature headers repeated")
	}
	sig, err := ParseSignature(sigs[0])
	if err != nil {
		return fmt.Errorf("bad response signature: %w", err)
	}
	key, ok := c.Keys.Lookup(sig.KeyID)
	if !ok {
		return fmt.Errorf("response signed with unknown key %s", sig.KeyID)
	}
	cr := canonicalResponse(method, target, sig.KeyID, sig.Timestamp, sig.Nonce, digests[0], resp.StatusCode, requestNonce)
	if !verifyMAC(key, cr, sig.MAC) {
		return errors.New("response signature does not verify")
	}
	// The signature covers the declared digest; the digest must cover
	// the body.
	if digestHex(data) != digests[0] {
		return errors.New("response body does not match its signed digest")
	}
	return nil
}

// authError is the error of an unsigned 401. The station's reason cannot
// be verified, so only a known one is repeated.
func authError(data []byte) error {
	var e errorBody
	json.Unmarshal(data, &e)
	reason, _ := strings.CutPrefix(e.Error, "invalid job signature: ")
	if !slices.Contains(InvalidReasons, reason) {
		return ErrAuth
	}
	if reason == ReasonStale {
		return fmt.Errorf("%w: station says %s (check the clocks of both hosts)", ErrAuth, reason)
	}
	return fmt.Errorf("%w: station says %s", ErrAuth, reason)
}

func (c *Client) now() time.Time {
	if c.Clock != nil {
		return c.Clock()
	}
	return time.Now()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
