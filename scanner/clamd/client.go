// Package clamd is a client for clamd, ClamAV's scanning daemon, speaking the
// protocol of the clamd(8) man page ("COMMANDS"): PING, VERSION and INSTREAM,
// each with the z prefix, so that commands and replies end with a NUL byte.
//
// INSTREAM sends the content as chunks of a 4-byte big-endian length and the
// data, ended by a zero-length chunk; clamd answers "stream: OK",
// "stream: NAME FOUND" or "... ERROR". The reply parsers (ParseScanReply,
// ParseVersion) work on strings, apart from the I/O, and are fuzzed.
//
// Every command uses its own connection unless WithSessions is given, when
// INSTREAM scans reuse IDSESSION connections (session.go); either way a
// failed or cancelled command leaves nothing behind, and the Client is
// safe for concurrent use.
package clamd

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/avstation/avstation/internal/panics"
	"github.com/avstation/avstation/scanner/engineerr"
)

const (
	// DefaultDialTimeout bounds connecting to clamd. clamd is local or near
	// and accepts at once even when busy: when it does not within 2 s it is
	// down or wedged, and a pool had better try the next one.
	DefaultDialTimeout = 2 * time.Second
	// DefaultProbeAfter is how long an INSTREAM may go without its reply
	// before the client PINGs clamd on a second connection. clamd answers
	// PING from its main thread while its scanning threads work, so a PONG
	// says "busy, keep waiting" and silence says "hung": a clamd that
	// accepts and never answers costs seconds, not the whole engine_timeout.
	DefaultProbeAfter = 3 * time.Second
	// DefaultPingTimeout bounds PING and VERSION, which clamd answers at
	// once, in the probe and in a pool's health loop.
	DefaultPingTimeout = 2 * time.Second
	// DefaultChunkSize is the INSTREAM chunk size: large enough that a
	// typical message goes in a few writes, small enough to keep per-scan
	// buffers cheap.
	DefaultChunkSize = 64 << 10
	// MaxChunkSize caps WithChunkSize; each scan holds one chunk in memory.
	MaxChunkSize = 16 << 20

	// replyGrace bounds the wait for clamd's reply after a failed write. The
	// reply, if any, is already in the receive buffer by then.
	replyGrace = time.Second
)

// Option configures a Client.
type Option func(*Client)

// WithDialTimeout sets the connect timeout (DefaultDialTimeout). A context
// deadline, when earlier, still applies. d <= 0 keeps the default.
func WithDialTimeout(d time.Duration) Option {
	return func(c *Client) {
		if d > 0 {
			c.dialTimeout = d
		}
	}
}

// WithProbeAfter sets how long an INSTREAM waits (sending or for the reply)
// before it PINGs clamd, and again every as long while clamd PONGs
// (DefaultProbeAfter). d <= 0 keeps the default.
func WithProbeAfter(d time.Duration) Option {
	return func(c *Client) {
		if d > 0 {
			c.probeAfter = d
		}
	}
}

// WithPingTimeout sets the bound on PING and VERSION (DefaultPingTimeout).
// d <= 0 keeps the default.
func WithPingTimeout(d time.Duration) Option {
	return func(c *Client) {
		if d > 0 {
			c.pingTimeout = d
		}
	}
}

// WithChunkSize sets the INSTREAM chunk size (DefaultChunkSize). n <= 0 keeps
// the default; n above MaxChunkSize is lowered to it.
func WithChunkSize(n int) Option {
	return func(c *Client) {
		if n > 0 {
			c.chunkSize = min(n, MaxChunkSize)
		}
	}
}

// Client talks to one clamd. Create it with New.
type Client struct {
	addr        string // canonical "tcp:host:port" or "unix:path"
	network     string
	address     string
	dialTimeout time.Duration
	probeAfter  time.Duration
	pingTimeout time.Duration
	chunkSize   int
	bufs        sync.Pool // *[]byte, see sendStream
	// pingFn, when set, is sent in place of PING (Ping and the
	// watchdog's): tests make it panic.
	pingFn func(ctx context.Context) (string, error)
	// maxIdle > 0: INSTREAM goes over IDSESSION sessions, up to maxIdle
	// of them kept in idle (session.go).
	maxIdle int
	sessMu  sync.Mutex
	idle    []*session
}

// New returns a client for the clamd at addr: "tcp:127.0.0.1:3310",
// "127.0.0.1:3310" (tcp implied), "unix:/run/clamav/clamd.ctl" or an absolute
// path "/run/clamav/clamd.ctl" (unix implied). It does not connect.
func New(addr string, opts ...Option) (*Client, error) {
	network, address, err := parseAddr(addr)
	if err != nil {
		return nil, fmt.Errorf("clamd: bad address %q: %w", addr, err)
	}
	c := &Client{
		addr:        network + ":" + address,
		network:     network,
		address:     address,
		dialTimeout: DefaultDialTimeout,
		probeAfter:  DefaultProbeAfter,
		pingTimeout: DefaultPingTimeout,
		chunkSize:   DefaultChunkSize,
	}
	for _, o := range opts {
		o(c)
	}
	size := len(cmdInstream) + 4 + c.chunkSize + 4
	c.bufs.New = func() any {
		b := make([]byte, size)
		return &b
	}
	return c, nil
}

// Addr is clamd's address in canonical form: "tcp:host:port" or "unix:path".
func (c *Client) Addr() string { return c.addr }

// Ping checks that clamd answers: zPING gets PONG, within the ping timeout.
func (c *Client) Ping(ctx context.Context) error {
	line, err := c.ping1(ctx)
	if err != nil {
		return c.wrap("PING", err)
	}
	if line != "PONG" {
		return c.wrap("PING", &ReplyError{Reply: line})
	}
	return nil
}

// Version asks clamd for its engine and signature database versions.
func (c *Client) Version(ctx context.Context) (Version, error) {
	line, err := c.command(ctx, "VERSION")
	if err != nil {
		return Version{}, c.wrap("VERSION", err)
	}
	v, err := ParseVersion(line)
	if err != nil {
		return Version{}, c.wrap("VERSION", err)
	}
	return v, nil
}

// VersionCommands asks clamd for its versions and the commands it takes
// (VERSIONCOMMANDS, clamd(8)). A clamd older than 0.95 answers it as VERSION:
// the command list is then nil.
func (c *Client) VersionCommands(ctx context.Context) (Version, []string, error) {
	line, err := c.command(ctx, "VERSIONCOMMANDS")
	if err != nil {
		return Version{}, nil, c.wrap("VERSIONCOMMANDS", err)
	}
	v, cmds, err := ParseVersionCommands(line)
	if err != nil {
		return Version{}, nil, c.wrap("VERSIONCOMMANDS", err)
	}
	return v, cmds, nil
}

// Scan streams r to clamd with INSTREAM and returns its verdict. While the
// stream is sent and its reply awaited, clamd is PINGed every probe-after
// interval; when a PING gets no PONG within the ping timeout the scan is
// abandoned with an error of kind engineerr.ErrTimeout. Found is
// false with a nil error only when clamd answered OK for the whole stream.
// When clamd refused the stream for its size the error is ErrSizeLimit; other
// ERROR or unexpected replies are a *ReplyError; in both cases Result.Raw
// holds the reply for the records.
//
// Cancelling ctx closes the connection, which makes clamd abort the scan. A
// read from r that blocks is not interrupted: that is up to r. A read error
// from r aborts the scan without sending the end of the stream, so clamd
// never judges a truncated stream.
func (c *Client) Scan(ctx context.Context, r io.Reader) (Result, error) {
	res, err := c.scan(ctx, r)
	if err != nil {
		return res, c.wrap("INSTREAM", err)
	}
	return res, nil
}

const cmdInstream = "zINSTREAM\x00"

func (c *Client) scan(ctx context.Context, r io.Reader) (Result, error) {
	if c.maxIdle > 0 {
		return c.scanSession(ctx, r)
	}
	conn, done, err := c.dial(ctx)
	if err != nil {
		return Result{}, err
	}
	defer done()
	w := c.watch(ctx, conn)
	res, err := c.instream(ctx, conn, r, 0)
	if hung := w.finish(); err != nil && hung != nil {
		return Result{}, hung
	}
	return res, err
}

// instream sends r as INSTREAM on conn and reads the reply: to command
// id of a session (session.go), or of a connection of its own when id is 0.
func (c *Client) instream(ctx context.Context, conn net.Conn, r io.Reader, id int) (Result, error) {
	if err := c.sendStream(ctx, conn, r); err != nil {
		var ie *inputError
		if errors.As(err, &ie) {
			return Result{}, err
		}
		if ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded) {
			return Result{}, ctxErr(ctx, err)
		}
		return c.replyAfterWriteError(ctx, conn, err, id)
	}
	line, err := readReply(conn)
	if err != nil {
		return Result{}, ctxErr(ctx, err)
	}
	if id > 0 {
		if line, err = sessionReply(line, id); err != nil {
			return Result{}, err
		}
	}
	return ParseScanReply(line)
}

// replyAfterWriteError reads the reply clamd may have sent before a write
// failed. clamd(8): past StreamMaxLength clamd replies "INSTREAM size limit
// exceeded" and closes the connection while the client is still writing; the
// client's next write fails with EPIPE or ECONNRESET, and the reply waits in
// the receive buffer. Without it the caller would see a broken pipe instead of
// ErrSizeLimit.
func (c *Client) replyAfterWriteError(ctx context.Context, conn net.Conn, werr error, id int) (Result, error) {
	deadline := time.Now().Add(replyGrace)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if conn.SetReadDeadline(deadline) != nil {
		return Result{}, werr
	}
	line, err := readReply(conn)
	if err != nil {
		return Result{}, ctxErr(ctx, werr)
	}
	if id > 0 {
		if line, err = sessionReply(line, id); err != nil {
			return Result{}, err
		}
	}
	res, err := ParseScanReply(line)
	if err != nil || res.Found {
		// An error reply says why the write failed; a threat found in
		// what clamd did receive is a real finding.
		return res, err
	}
	// OK for a stream clamd did not receive whole is no clean verdict.
	return res, fmt.Errorf("clamd said %q before the stream ended: %w", line, werr)
}

// inputError is a failure to read the content to scan, as opposed to a
// failure to talk to clamd.
type inputError struct{ err error }

func (e *inputError) Error() string { return "reading content: " + e.err.Error() }
func (e *inputError) Unwrap() error { return e.err }

// sendStream writes the INSTREAM command, r's content in chunks, and the
// zero-length chunk that ends it. Each chunk goes in one write with its length
// prefix, the command with the first chunk, the end marker with the last, so
// a small message is a single write.
func (c *Client) sendStream(ctx context.Context, w io.Writer, r io.Reader) error {
	bp := c.bufs.Get().(*[]byte)
	defer c.bufs.Put(bp)
	buf := *bp
	off := copy(buf, cmdInstream)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, rerr := io.ReadFull(r, buf[off+4:off+4+c.chunkSize])
		if n > 0 {
			binary.BigEndian.PutUint32(buf[off:], uint32(n))
			off += 4 + n
		}
		last := rerr == io.EOF || rerr == io.ErrUnexpectedEOF
		if rerr != nil && !last {
			return &inputError{rerr}
		}
		if last {
			binary.BigEndian.PutUint32(buf[off:], 0)
			off += 4
		}
		if _, err := w.Write(buf[:off]); err != nil {
			return err
		}
		if last {
			return nil
		}
		off = 0
	}
}

// command sends a z-prefixed command that takes no data and reads its reply,
// within the ping timeout: clamd answers these at once.
func (c *Client) command(ctx context.Context, cmd string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, c.pingTimeout)
	defer cancel()
	conn, done, err := c.dial(ctx)
	if err != nil {
		return "", err
	}
	defer done()
	if _, err := io.WriteString(conn, "z"+cmd+"\x00"); err != nil {
		return "", ctxErr(ctx, err)
	}
	line, err := readReply(conn)
	if err != nil {
		return "", ctxErr(ctx, err)
	}
	return line, nil
}

// dial opens the connection for one command and ties it to ctx: ctx's
// deadline becomes the connection's, and cancelling ctx closes it, so that
// clamd sees the client go and aborts the scan. done releases both.
func (c *Client) dial(ctx context.Context) (conn net.Conn, done func(), err error) {
	d := net.Dialer{Timeout: c.dialTimeout}
	conn, err = d.DialContext(ctx, c.network, c.address)
	if err != nil {
		return nil, nil, ctxErr(ctx, err)
	}
	if deadline, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(deadline); err != nil {
			conn.Close()
			return nil, nil, err
		}
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	return conn, func() {
		stop()
		conn.Close()
	}, nil
}

// ctxErr returns ctx's error when ctx has ended: a closed connection or a
// passed deadline is then only its symptom. The connection's deadline, set
// from ctx's, may fire a moment before ctx reports it.
func ctxErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	if _, ok := ctx.Deadline(); ok && errors.Is(err, os.ErrDeadlineExceeded) {
		return context.DeadlineExceeded
	}
	return err
}

// wrap names clamd and the command, and marks err with its kind (see
// kindOf) for the station's metrics.
func (c *Client) wrap(cmd string, err error) error {
	return engineerr.Mark(fmt.Errorf("clamd %s: %s: %w", c.addr, cmd, err), kindOf(err))
}

// kindOf sorts a command's failure: a passed deadline is a timeout; a
// refused, reset or closed connection is clamd unreachable; a reply that is
// no answer is a protocol error (*ReplyError and ErrSizeLimit carry their
// own kind). nil for what is none of them (a cancelled ctx, a failure to
// read the content).
func kindOf(err error) error {
	var ie *inputError
	var ne net.Error
	switch {
	case errors.As(err, &ie), errors.Is(err, context.Canceled):
		return nil
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return engineerr.ErrTimeout
	case errors.Is(err, errNoReply), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ECONNABORTED):
		return engineerr.ErrUnreachable
	case errors.Is(err, errLongReply):
		return engineerr.ErrProtocol
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return engineerr.ErrUnreachable
	}
	return nil
}

// watchdog PINGs clamd while one INSTREAM is in progress; see Scan. Until
// probeAfter has passed it is only a timer: most scans end before, and
// then cost no goroutine of their own.
type watchdog struct {
	timer  *time.Timer
	cancel context.CancelFunc
	done   chan struct{} // closed when a started watchdog has given up or been stopped
	hung   error         // set before done is closed
}

// watch starts the watchdog of the INSTREAM on conn. On a PING without PONG
// it closes conn, which ends the blocked write or read at once.
func (c *Client) watch(ctx context.Context, conn net.Conn) *watchdog {
	wctx, cancel := context.WithCancel(ctx)
	w := &watchdog{cancel: cancel, done: make(chan struct{})}
	w.timer = time.AfterFunc(c.probeAfter, func() {
		defer close(w.done)
		// A panic here fails this scan alone: conn is closed, which ends
		// the INSTREAM, and Scan returns the panic as its error.
		if w.hung = panics.Do(func() error { return c.ping(wctx, ctx) }); w.hung != nil {
			conn.Close()
		}
	})
	return w
}

// ping PINGs clamd at once and then every probeAfter until wctx ends (nil)
// or clamd misses a PONG (why the watchdog gives up on it). ctx is the
// scan's.
func (c *Client) ping(wctx, ctx context.Context) error {
	for wctx.Err() == nil {
		_, err := c.ping1(wctx)
		if wctx.Err() != nil {
			return nil // the scan ended (or its ctx did) during the PING
		}
		if err != nil && !lastResort(ctx) {
			return engineerr.Mark(fmt.Errorf("no reply after %v, and no PONG within %v: %w", c.probeAfter, c.pingTimeout, err), engineerr.ErrTimeout)
		}
		// A PONG, or the last resort (see withLastResort): keep waiting.
		select {
		case <-wctx.Done():
			return nil
		case <-time.After(c.probeAfter):
		}
	}
	return nil
}

// ping1 sends one PING and reads its reply.
func (c *Client) ping1(ctx context.Context) (string, error) {
	if c.pingFn != nil {
		return c.pingFn(ctx)
	}
	return c.command(ctx, "PING")
}

// lastResortKey marks the scan of a pool's last clamd up (withLastResort).
type lastResortKey struct{}

// withLastResort has the watchdog keep waiting on a missed PONG instead of
// giving up: with no other clamd to move to, giving up early fails the scan
// all the same, and on a starved machine a healthy clamd can miss a PING.
// The scan is still bounded by its context (engine_timeout).
func withLastResort(ctx context.Context) context.Context {
	return context.WithValue(ctx, lastResortKey{}, true)
}

func lastResort(ctx context.Context) bool { return ctx.Value(lastResortKey{}) != nil }

// finish stops the watchdog and returns why it gave up on clamd, if it did.
func (w *watchdog) finish() error {
	w.cancel()
	if w.timer.Stop() {
		return nil // it never started
	}
	<-w.done
	return w.hung
}
