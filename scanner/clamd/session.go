package clamd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/avstation/avstation/scanner/engineerr"
)

// With WithSessions a Client keeps INSTREAM connections open between
// scans in clamd's IDSESSION mode (clamd(8)): a scan then costs no
// connect, accept and hand-over to a clamd thread, about 80 µs of latency
// and a tenth of a 1 KB message's CPU in the scanning process (measured
// against clamd 1.4.6). One scan at a time uses a session, and a session
// goes back only after a whole, clean reply to its own command: clamd
// numbers its replies ("3: stream: OK"), and a reply to any other number
// is a protocol error that closes it. Anything else that goes wrong —
// an error reply, a cancelled scan, a hung clamd — closes the session, as
// it closed the connection before. PING, VERSION and the watchdog's PINGs
// keep their own connections.

// sessionIdle is how long a session may wait unused: well below clamd's
// IdleTimeout (30 s by default), after which clamd closes it.
const sessionIdle = 10 * time.Second

// WithSessions keeps up to n idle INSTREAM sessions open; n <= 0 (the
// default) opens a connection per command.
func WithSessions(n int) Option {
	return func(c *Client) {
		if n > 0 {
			c.maxIdle = n
		}
	}
}

// session is a connection in IDSESSION mode.
type session struct {
	conn   net.Conn
	id     int       // of the last command sent on it
	idleAt time.Time // when it was put back
}

// takeSession is an idle session that is still open, or a new one;
// reused says which.
func (c *Client) takeSession(ctx context.Context) (s *session, reused bool, err error) {
	for {
		c.sessMu.Lock()
		n := len(c.idle)
		if n == 0 {
			c.sessMu.Unlock()
			break
		}
		s = c.idle[n-1]
		c.idle = c.idle[:n-1]
		c.sessMu.Unlock()
		if time.Since(s.idleAt) < sessionIdle && peerOpen(s.conn) {
			return s, true, nil
		}
		s.conn.Close()
	}
	d := net.Dialer{Timeout: c.dialTimeout}
	conn, err := d.DialContext(ctx, c.network, c.address)
	if err != nil {
		return nil, false, ctxErr(ctx, err)
	}
	if deadline, ok := ctx.Deadline(); ok {
		conn.SetDeadline(deadline)
	}
	if _, err := conn.Write([]byte("zIDSESSION\x00")); err != nil {
		conn.Close()
		return nil, false, ctxErr(ctx, err)
	}
	return &session{conn: conn}, false, nil
}

// putSession keeps s for the next scan, or closes it when enough are kept.
func (c *Client) putSession(s *session) {
	if s.conn.SetDeadline(time.Time{}) != nil {
		s.conn.Close()
		return
	}
	s.idleAt = time.Now()
	c.sessMu.Lock()
	if len(c.idle) < c.maxIdle {
		c.idle = append(c.idle, s)
		s = nil
	}
	c.sessMu.Unlock()
	if s != nil {
		s.conn.Close()
	}
}

// scanSession is scan over a session. A session clamd closed while it was
// kept fails before a byte of its reply: then the scan is made once more
// on a new session, when its content can be read again.
func (c *Client) scanSession(ctx context.Context, r io.Reader) (Result, error) {
	res, retry, err := c.scanSessionOnce(ctx, r)
	if retry {
		if rw, ok := r.(*replay); ok && rw.rewind() == nil {
			res, _, err = c.scanSessionOnce(ctx, r)
		}
	}
	return res, err
}

func (c *Client) scanSessionOnce(ctx context.Context, r io.Reader) (res Result, retry bool, err error) {
	s, reused, err := c.takeSession(ctx)
	if err != nil {
		return Result{}, false, err
	}
	if deadline, ok := ctx.Deadline(); ok {
		s.conn.SetDeadline(deadline)
	}
	stop := context.AfterFunc(ctx, func() { s.conn.Close() })
	w := c.watch(ctx, s.conn)
	s.id++
	res, err = c.instream(ctx, s.conn, r, s.id)
	hung := w.finish()
	if !stop() || hung != nil || err != nil || ctx.Err() != nil {
		s.conn.Close()
		if hung != nil && err != nil {
			return Result{}, false, hung
		}
		// Nothing came back on a session kept from before: clamd closed
		// it meanwhile (its IdleTimeout, a restart).
		retry = reused && hung == nil && ctx.Err() == nil && stale(err)
		return res, retry, err
	}
	c.putSession(s)
	return res, false, nil
}

// stale reports whether err is how a session that clamd closed fails: no
// reply at all, or the write refused.
func stale(err error) bool {
	return errors.Is(err, errNoReply) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)
}

// sessionReply is the reply to command id on a session, without its
// number.
func sessionReply(line string, id int) (string, error) {
	rest, ok := strings.CutPrefix(line, strconv.Itoa(id)+": ")
	if !ok {
		return "", engineerr.Mark(fmt.Errorf("reply %q is not to command %d of the session", line, id), engineerr.ErrProtocol)
	}
	return rest, nil
}

// peerOpen reports whether clamd has not closed the connection: a read
// that would block, without taking anything. End of file, an error or
// bytes nobody asked for all mean it is not fit for another command.
func peerOpen(conn net.Conn) bool {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	open := false
	var b [1]byte
	err = raw.Read(func(fd uintptr) bool {
		_, _, rerr := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		open = errors.Is(rerr, syscall.EAGAIN)
		return true
	})
	return err == nil && open
}
