// Package clamd is a client for clamd, ClamAV's scanning daemon, speaking the
// protocol of the clamd(8) man page ("COMMANDS"): PING, VERSION and INSTREAM,
// each with the z prefix, so that commands and replies end with a NUL byte.
//
// INSTREAM sends the content as chunks of a 4-byte big-endian length and the
// data, ended by a zero-length chunk; clamd answers "stream: OK",
// "stream: NAME FOUND" or "... ERROR". The reply parsers (ParseScanReply,
// ParseVersion) work on strings, apart from the I/O, and are fuzzed.
//
// Every command uses its own connection (no IDSESSION): a failed or cancelled
// command leaves nothing behind, and the Client is safe for concurrent use.
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
	"time"
)

const (
	// DefaultDialTimeout bounds connecting to clamd. clamd is local or near:
	// when it does not accept within seconds it is down or overloaded, and
	// the caller had better tempfail than hold the MTA's milter timeout.
	DefaultDialTimeout = 5 * time.Second
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
	chunkSize   int
	bufs        sync.Pool // *[]byte, see sendStream
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

// Ping checks that clamd answers: zPING gets PONG.
func (c *Client) Ping(ctx context.Context) error {
	line, err := c.command(ctx, "PING")
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

// Scan streams r to clamd with INSTREAM and returns its verdict. Found is
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
	conn, done, err := c.dial(ctx)
	if err != nil {
		return Result{}, err
	}
	defer done()

	if err := c.sendStream(ctx, conn, r); err != nil {
		var ie *inputError
		if errors.As(err, &ie) {
			return Result{}, err
		}
		if ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded) {
			return Result{}, ctxErr(ctx, err)
		}
		return c.replyAfterWriteError(ctx, conn, err)
	}
	line, err := readReply(conn)
	if err != nil {
		return Result{}, ctxErr(ctx, err)
	}
	return ParseScanReply(line)
}

// replyAfterWriteError reads the reply clamd may have sent before a write
// failed. clamd(8): past StreamMaxLength clamd replies "INSTREAM size limit
// exceeded" and closes the connection while the client is still writing; the
// client's next write fails with EPIPE or ECONNRESET, and the reply waits in
// the receive buffer. Without it the caller would see a broken pipe instead of
// ErrSizeLimit.
func (c *Client) replyAfterWriteError(ctx context.Context, conn net.Conn, werr error) (Result, error) {
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

// command sends a z-prefixed command that takes no data and reads its reply.
func (c *Client) command(ctx context.Context, cmd string) (string, error) {
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

func (c *Client) wrap(cmd string, err error) error {
	return fmt.Errorf("clamd %s: %s: %w", c.addr, cmd, err)
}
