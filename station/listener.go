package station

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/avstation/avstation/internal/panics"
)

// busyReply is what a connection beyond max_connections gets: the milter
// takes a 503 as "busy", waits and tries again or goes to the next station.
const busyReply = "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"

// refusers bounds the goroutines that see refused connections out.
const refusers = 64

// limitListener caps the connections open at once. Unlike
// x/net/netutil.LimitListener it does not stop accepting at the cap: a
// connection beyond it is answered 503 and closed, so that a flood of
// idle connections delays no milter in the kernel's accept queue.
type limitListener struct {
	net.Listener
	max      int64
	plain    bool // HTTP, not TLS: a plain 503 would be noise in a handshake
	open     atomic.Int64
	refusing chan struct{}
	onRefuse func()
	// onTooLarge is called when net/http refuses a request header over
	// MaxHeaderBytes (plain connections only, see limitConn.Write).
	onTooLarge func(peer net.Addr)
	// onPanic reports a panic recovered while seeing a refused
	// connection out; that connection is closed, nothing else is hit.
	onPanic func(*panics.Error)
}

// limitListen wraps ln; onRefuse is called for each refused connection.
func limitListen(ln net.Listener, max int, plain bool, onRefuse func()) *limitListener {
	return &limitListener{Listener: ln, max: int64(max), plain: plain, refusing: make(chan struct{}, refusers), onRefuse: onRefuse}
}

// Open is the number of connections open now.
func (l *limitListener) Open() int64 { return l.open.Load() }

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) <= l.max {
			return &limitConn{Conn: c, l: l}, nil
		}
		l.open.Add(-1)
		l.refuse(c)
	}
}

// refuse answers c 503 and closes it. The 503 is written at once (a new
// connection's send buffer is empty, so this does not wait). What the
// client sent already is then read a little, briefly, before the close:
// closing with unread data makes the kernel reset the connection, and the
// client might never see the 503. Past refusers such closes at once, the
// connection is closed straight away.
func (l *limitListener) refuse(c net.Conn) {
	if l.onRefuse != nil {
		l.onRefuse()
	}
	if !l.plain {
		c.Close()
		return
	}
	c.SetDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := io.WriteString(c, busyReply); err != nil {
		c.Close()
		return
	}
	select {
	case l.refusing <- struct{}{}:
	default:
		c.Close()
		return
	}
	go func() {
		defer func() { <-l.refusing }()
		defer c.Close()
		err := panics.Do(func() error {
			c.SetDeadline(time.Now().Add(time.Second))
			if tc, ok := c.(interface{ CloseWrite() error }); ok {
				tc.CloseWrite()
			}
			_, _ = io.Copy(io.Discard, io.LimitReader(c, 64<<10))
			return nil
		})
		if pe, ok := errors.AsType[*panics.Error](err); ok && l.onPanic != nil {
			l.onPanic(pe)
		}
	}()
}

// headerTooLarge begins net/http's answer to a request header over
// MaxHeaderBytes. net/http writes it straight to the connection, with no
// handler and no log, so the connection is the only place that sees it.
var headerTooLarge = []byte("HTTP/1.1 431 ")

// limitConn gives its slot back once, on the first Close, and reports the
// 431s net/http writes on it.
type limitConn struct {
	net.Conn
	l    *limitListener
	once sync.Once
}

func (c *limitConn) Close() error {
	first := false
	c.once.Do(func() { first = true; c.l.open.Add(-1) })
	if first && !c.l.plain && c.lingerClose() {
		return nil
	}
	return c.Conn.Close()
}

// lingerClose closes a TLS connection without a reset. Under TLS 1.3 a
// client may send its request before the station has judged its
// certificate; closing with that request unread makes the kernel reset
// the connection, and the client sees "broken pipe" or "connection reset"
// instead of the alert that says its certificate was refused. So: FIN
// first, what the client sent read and dropped for a moment, then the
// close, in the background and bounded by refusers (past them, at once).
func (c *limitConn) lingerClose() bool {
	tc, ok := c.Conn.(interface{ CloseWrite() error })
	if !ok {
		return false
	}
	select {
	case c.l.refusing <- struct{}{}:
	default:
		return false
	}
	if tc.CloseWrite() != nil {
		<-c.l.refusing
		return false
	}
	go func() {
		defer func() { <-c.l.refusing }()
		defer c.Conn.Close()
		c.Conn.SetReadDeadline(time.Now().Add(time.Second))
		io.Copy(io.Discard, io.LimitReader(c.Conn, 64<<10))
	}()
	return true
}

// Write passes b on. net/http writes its 431 in one write of its own,
// from the start; under TLS b is ciphertext and the 431 is not seen.
func (c *limitConn) Write(b []byte) (int, error) {
	if c.l.plain && c.l.onTooLarge != nil && bytes.HasPrefix(b, headerTooLarge) {
		c.l.onTooLarge(c.RemoteAddr())
	}
	return c.Conn.Write(b)
}
