package jobproto

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"time"

	"github.com/avstation/avstation/spool"
	"github.com/avstation/avstation/verdict"
)

// Defaults of the Server fields left zero.
const (
	// DefaultMaxBody is the largest message accepted: above the usual list
	// size limits, below what a station's spool should fear.
	DefaultMaxBody = 64 << 20
	// DefaultWindow is how far a request's timestamp may be from the
	// station's clock: wide enough for unsynchronised clocks, short enough
	// that the replay cache stays small.
	DefaultWindow = 5 * time.Minute
)

// Reasons a request fails authentication, the values of the reason log
// attribute and of the OnInvalidSignature argument (a bounded metric label).
const (
	ReasonMalformed      = "malformed header"
	ReasonUnknownKey     = "unknown key"
	ReasonStale          = "stale timestamp"
	ReasonBadSignature   = "bad signature"
	ReasonReplayed       = "replayed nonce"
	ReasonDigestMismatch = "body digest mismatch"
)

// InvalidReasons lists every reason, for pre-setting metric labels.
var InvalidReasons = []string{
	ReasonMalformed, ReasonUnknownKey, ReasonStale, ReasonBadSignature, ReasonReplayed, ReasonDigestMismatch,
}

// ScanFunc scans one message: size bytes of body, held in memory or
// spooled, released when the request ends.
type ScanFunc func(ctx context.Context, meta Meta, body io.ReaderAt, size int64) (*verdict.Verdict, error)

// Server is the station side of the job protocol. Set the fields, then
// call Handler once; later changes are not seen.
type Server struct {
	Keys *KeyRing // required, unless KeysFunc is set
	// KeysFunc, when set, is asked for the key ring at each request
	// instead of Keys: a ring the station swaps when it reloads its
	// secret file (SIGHUP). It must not return nil.
	KeysFunc func() *KeyRing
	Scan     ScanFunc // required
	Info     func(ctx context.Context) Info

	SpoolDir string // "" is os.TempDir()
	// MemoryBuffer is how much of one job body is held in memory; a
	// larger body goes to a 0600 file in SpoolDir. 0 spools every body.
	MemoryBuffer int64
	// Memory, when set, bounds the bytes of all bodies in memory at once.
	Memory        *spool.Memory
	MaxBody       int64 // 0 is DefaultMaxBody
	MaxConcurrent int   // 0 is 2*GOMAXPROCS: scans are CPU-bound in the engines
	// QueueWait is how long a job may wait for a free scan when
	// MaxConcurrent are running, first come first served, before it is
	// answered 503; 0 answers 503 at once.
	QueueWait time.Duration
	Window    time.Duration // 0 is DefaultWindow
	// BodyTimeout bounds reading the body of an authenticated request,
	// from when its signature verified, and then writing the answer; 0
	// leaves the connection's deadlines as they are.
	BodyTimeout time.Duration
	Replay      *ReplayCache // nil is a new cache for Window

	Logger *slog.Logger // nil discards
	// OnInvalidSignature is called with the reason of each refused
	// request, for a metric.
	OnInvalidSignature func(reason string)
	Clock              func() time.Time // nil is time.Now
}

type handler struct {
	keys      func() *KeyRing
	scanFn    ScanFunc
	infoFn    func(ctx context.Context) Info
	spoolDir  string
	memBody   int64
	memory    *spool.Memory
	maxBody   int64
	sem       chan struct{}
	queueWait time.Duration
	window    time.Duration
	bodyTime  time.Duration
	replay    *ReplayCache
	log       *slog.Logger
	onInvalid func(string)
	clock     func() time.Time
}

// Handler serves POST /v1/scan and GET /v1/info. It panics when Keys (or
// KeysFunc) or Scan is missing, a wiring mistake.
func (s *Server) Handler() http.Handler {
	if (s.Keys == nil && s.KeysFunc == nil) || s.Scan == nil {
		panic("jobproto: Server needs Keys and Scan")
	}
	keys := s.KeysFunc
	if keys == nil {
		ring := s.Keys
		keys = func() *KeyRing { return ring }
	}
	h := &handler{
		keys: keys, scanFn: s.Scan, infoFn: s.Info,
		queueWait: s.QueueWait, spoolDir: s.SpoolDir, memBody: s.MemoryBuffer, memory: s.Memory, maxBody: s.MaxBody, window: s.Window, bodyTime: s.BodyTimeout,
		replay: s.Replay, log: s.Logger, onInvalid: s.OnInvalidSignature, clock: s.Clock,
	}
	if h.spoolDir == "" {
		h.spoolDir = os.TempDir()
	}
	if h.maxBody <= 0 {
		h.maxBody = DefaultMaxBody
	}
	n := s.MaxConcurrent
	if n <= 0 {
		n = 2 * runtime.GOMAXPROCS(0)
	}
	h.sem = make(chan struct{}, n)
	if h.window <= 0 {
		h.window = DefaultWindow
	}
	if h.clock == nil {
		h.clock = time.Now
	}
	if h.replay == nil {
		h.replay = NewReplayCache(h.window, h.clock)
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.infoFn == nil {
		h.infoFn = func(context.Context) Info { return Info{} }
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+PathScan, h.scan)
	mux.HandleFunc("GET "+PathInfo, h.info)
	return mux
}

// request is an authenticated request: what a signed reply needs.
type request struct {
	key    Key
	sig    Signature
	target string
	digest string
}

func (h *handler) scan(w http.ResponseWriter, r *http.Request) {
	req, ok := h.authenticate(w, r)
	if !ok {
		return
	}
	meta, err := decodeMeta(r.Header.Get(HeaderMeta))
	if err != nil {
		h.replyError(w, r, req, http.StatusBadRequest, err.Error())
		return
	}
	if r.ContentLength > h.maxBody {
		drainOversize(w, r)
		h.replyError(w, r, req, http.StatusRequestEntityTooLarge, fmt.Sprintf("message of %d bytes is over the station's limit of %d", r.ContentLength, h.maxBody))
		return
	}
	// Bound concurrent scans; when full for longer than QueueWait, say so
	// so that the milter tries the next station rather than wait here.
	// 503 means busy and nothing else: the client waits and retries on it
	// (station faults, such as a spool that cannot be written, are 500).
	if !h.acquire(r.Context()) {
		w.Header().Set("Retry-After", "1")
		h.replyError(w, r, req, http.StatusServiceUnavailable, "station busy")
		return
	}
	defer func() { <-h.sem }()

	// Small bodies stay in memory: a file per job cost more than the
	// scan of a 1 KB message. Whatever happens next, nothing of the
	// message stays on disk or in memory.
	body := spool.NewShared(h.spoolDir, h.memBody, h.memory)
	defer body.Close()
	body.Grow(r.ContentLength)

	size, status, err := h.spool(w, r, body, req.digest)
	if err != nil {
		if status == http.StatusUnauthorized {
			h.invalid(r, ReasonDigestMismatch, req.key.ID)
		} else if se, ok := err.(spoolError); ok {
			h.log.Error("spool job", "job_id", meta.JobID, "spool_dir", h.spoolDir, "err", se.cause)
		}
		h.replyError(w, r, req, status, err.Error())
		return
	}

	if h.bodyTime > 0 {
		// The whole body is in. net/http now reads in the background to
		// notice the milter hanging up; a deadline passing during a long
		// scan would look like that and cancel the scan.
		_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
	}
	v, err := h.scanFn(withDigest(withKeyID(r.Context(), req.key.ID), req.digest), meta, body, size)
	if err == nil && v == nil {
		err = errors.New("scanner returned no verdict")
	}
	if err != nil {
		h.log.Error("scan job", "job_id", meta.JobID, "peer", r.RemoteAddr, "err", err)
		h.replyError(w, r, req, http.StatusInternalServerError, "scan failed: "+err.Error())
		return
	}
	v.JobID = meta.JobID
	h.reply(w, r, req, http.StatusOK, v)
}

// acquire takes a scan slot, waiting up to queueWait for one (the body
// not yet read: a waiting job holds a connection, not its message). Jobs
// that wait are served in turn: a burst is absorbed here in a few ms,
// where a 503 sends each milter into a back-off that a later arrival can
// beat (p99 of 1.1 s at 100 connections against 8 slots).
func (h *handler) acquire(ctx context.Context) bool {
	select {
	case h.sem <- struct{}{}:
		return true
	default:
	}
	if h.queueWait <= 0 {
		return false
	}
	t := time.NewTimer(h.queueWait)
	defer t.Stop()
	select {
	case h.sem <- struct{}{}:
		return true
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
	}
}

// spoolError is a job body that could not be written to spool_dir: the
// peer is told only that.
type spoolError struct{ cause error }

func (spoolError) Error() string { return "station cannot spool the message" }

// spool copies the request's body into buf while hashing it and checks
// the digest. On error it returns the status to answer with.
func (h *handler) spool(w http.ResponseWriter, r *http.Request, buf *spool.Buffer, digest string) (int64, int, error) {
	hash := sha256.New()
	body := http.MaxBytesReader(w, r.Body, h.maxBody)
	n, err := io.Copy(buf, io.TeeReader(body, hash))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			drainOversize(w, r)
			return 0, http.StatusRequestEntityTooLarge, fmt.Errorf("message is over the station's limit of %d bytes", h.maxBody)
		}
		if _, ok := errors.AsType[*os.PathError](err); ok {
			// The path and cause for the log; not for the peer.
			return 0, http.StatusInternalServerError, spoolError{err}
		}
		return 0, http.StatusBadRequest, fmt.Errorf("reading message: %v", err)
	}
	if hex.EncodeToString(hash.Sum(nil)) != digest {
		return 0, http.StatusUnauthorized, errors.New(ReasonDigestMismatch)
	}
	return n, 0, nil
}

func (h *handler) info(w http.ResponseWriter, r *http.Request) {
	req, ok := h.authenticate(w, r)
	if !ok {
		return
	}
	// The signature covered the empty digest; make sure the body is empty.
	if req.digest != emptyDigest {
		h.invalid(r, ReasonDigestMismatch, req.key.ID)
		h.replyError(w, r, req, http.StatusUnauthorized, ReasonDigestMismatch)
		return
	}
	if n, _ := io.Copy(io.Discard, io.LimitReader(r.Body, 1)); n > 0 {
		h.invalid(r, ReasonDigestMismatch, req.key.ID)
		h.replyError(w, r, req, http.StatusUnauthorized, ReasonDigestMismatch)
		return
	}
	h.reply(w, r, req, http.StatusOK, h.infoFn(r.Context()))
}

// authenticate checks the request's signature from its header alone,
// before anything of the body is read. On failure it has answered 401,
// read nothing more and logged; on success the body has BodyTimeout to
// arrive.
func (h *handler) authenticate(w http.ResponseWriter, r *http.Request) (request, bool) {
	fail := func(reason, keyID string) (request, bool) {
		h.invalid(r, reason, keyID)
		refuseBody(w)
		writeJSON(w, http.StatusUnauthorized, nil, errorBody{"invalid job signature: " + reason})
		return request{}, false
	}
	hdr := r.Header
	if len(hdr.Values(HeaderAuthorization)) != 1 || len(hdr.Values(HeaderContentSHA256)) != 1 || len(hdr.Values(HeaderMeta)) > 1 {
		return fail(ReasonMalformed, "")
	}
	sig, err := ParseAuthorization(hdr.Get(HeaderAuthorization))
	if err != nil {
		return fail(ReasonMalformed, "")
	}
	digest := hdr.Get(HeaderContentSHA256)
	if !validDigest(digest) {
		return fail(ReasonMalformed, sig.KeyID)
	}
	key, ok := h.keys().Lookup(sig.KeyID)
	if !ok {
		return fail(ReasonUnknownKey, sig.KeyID)
	}
	if skew := h.clock().Sub(time.Unix(sig.Timestamp, 0)); skew > h.window || skew < -h.window {
		return fail(ReasonStale, sig.KeyID)
	}
	target := requestTarget(r)
	c := canonicalRequest(r.Method, target, sig.KeyID, sig.Timestamp, sig.Nonce, digest, hdr.Get(HeaderMeta))
	if !verifyMAC(key, c, sig.MAC) {
		return fail(ReasonBadSignature, sig.KeyID)
	}
	// Only a verified nonce is recorded: forged requests cannot fill the
	// cache.
	if h.replay.Seen(sig.Nonce) {
		return fail(ReasonReplayed, sig.KeyID)
	}
	if h.bodyTime > 0 {
		// The connection's deadline so far was the short one for
		// unauthenticated requests; a verified milter gets the time a
		// large body needs. ErrNotSupported (a test recorder) is no bound
		// to keep.
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(h.bodyTime))
	}
	return request{key: key, sig: sig, target: target, digest: digest}, true
}

// refuseBody makes sure nothing more of a refused request's body is read:
// net/http would otherwise drain up to 256KiB of it after the handler, to
// keep the connection, for as long as a slow client takes. The answer goes
// out, then the connection is closed.
func refuseBody(w http.ResponseWriter) {
	w.Header().Set("Connection", "close")
	_ = http.NewResponseController(w).SetReadDeadline(time.Now())
}

// oversizeDrain is how much of an authenticated milter's oversized body is
// read and dropped before its 413, within body_timeout: closing with the
// body still coming makes the kernel reset the connection, and the milter
// would see a reset instead of "too large". Past it the connection is
// closed all the same.
const oversizeDrain = 4 << 20

// drainOversize reads up to oversizeDrain of a verified request's body so
// that its answer arrives, and closes the connection if more was coming.
func drainOversize(w http.ResponseWriter, r *http.Request) {
	if n, _ := io.CopyN(io.Discard, r.Body, oversizeDrain); n == oversizeDrain {
		refuseBody(w)
		return
	}
	w.Header().Set("Connection", "close")
}

func (h *handler) invalid(r *http.Request, reason, keyID string) {
	h.log.Warn("invalid job signature", "peer", r.RemoteAddr, "reason", reason, "key_id", keyID)
	if h.onInvalid != nil {
		h.onInvalid(reason)
	}
}

// requestTarget is the request target as the client sent it, even when a
// wrapper such as http.StripPrefix has changed r.URL.
func requestTarget(r *http.Request) string {
	if u, err := url.ParseRequestURI(r.RequestURI); err == nil {
		return u.RequestURI()
	}
	return r.URL.RequestURI()
}

func (h *handler) replyError(w http.ResponseWriter, r *http.Request, req request, status int, msg string) {
	h.reply(w, r, req, status, errorBody{msg})
}

// reply writes a signed response to an authenticated request.
func (h *handler) reply(w http.ResponseWriter, r *http.Request, req request, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body, _ = json.Marshal(errorBody{"encoding reply: " + err.Error()})
	}
	body = append(body, '\n')
	digest := digestHex(body)
	ts := h.clock().Unix()
	nonce := newNonce()
	c := canonicalResponse(r.Method, req.target, req.key.ID, ts, nonce, digest, status, req.sig.Nonce)
	sig := sign(req.key, ts, nonce, c)
	if h.bodyTime > 0 {
		// A scan may have taken longer than the read deadline left; the
		// answer gets its own time to be taken by the milter.
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(h.bodyTime))
	}
	writeRaw(w, status, map[string]string{
		HeaderContentSHA256: digest,
		HeaderSignature:     FormatSignature(sig),
	}, body)
}

func writeJSON(w http.ResponseWriter, status int, hdr map[string]string, v any) {
	body, _ := json.Marshal(v)
	writeRaw(w, status, hdr, append(body, '\n'))
}

func writeRaw(w http.ResponseWriter, status int, hdr map[string]string, body []byte) {
	h := w.Header()
	for k, v := range hdr {
		h.Set(k, v)
	}
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(body)
}
