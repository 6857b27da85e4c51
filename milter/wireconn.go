package milter

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// go-milter frames every packet with two syscalls each way: ReadPacket
// reads the 4-byte length, then the rest; WritePacket writes the 5-byte
// header (length and code), then the data. Those syscalls, and the netpoll
// work behind them, were a large part of avmilter's CPU per message (a
// quarter in Syscall6 alone). wireConn, which Serve puts between go-milter
// and every MTA connection, reads through a buffer, writes each header
// together with its data, and holds the modifications of the end of a
// message (headers added or changed, a new body) until the reply that ends
// them: the MTA acts on none before that reply, and a clean posting's two
// headers and accept then go out in one write instead of three.

// readBufferSize is the read buffer of one MTA connection. The MTA sends
// packets in runs (macros then their command, header after header, body
// chunks) and one read(2) takes a whole run. Half of a maximal body chunk
// (65535 bytes) is enough: bufio reads a remainder as large as its buffer
// straight into go-milter's packet, so a bigger buffer would hardly save a
// read and would cost memory for every session (max_sessions 500: 16 MiB).
const readBufferSize = 32 << 10

// readers are the read buffers of closed conns, for the next ones: as
// net/http does, to spare a 32 KiB allocation per connection.
var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, readBufferSize) }}

// copyCoalesceMax is the most data that is copied behind its header to go
// out in one write(2): copying a few KiB costs less than a syscall. Larger
// data goes out with its header in one writev(2) (net.Buffers), no copy.
const copyCoalesceMax = 4 << 10

// holdMax is the most bytes of modification packets held for the reply
// that ends them; past it they go out at once. A stripped body is sent in
// 64 KiB packets: one is held at most, not the whole body.
const holdMax = 64 << 10

// closeFlushTimeout bounds the write of what is held in Close, so that an
// MTA that stopped reading cannot keep Close, and with it shutdown, waiting.
const closeFlushTimeout = time.Second

// headerSize is what go-milter writes first of every packet: the 4-byte
// big-endian length N (code and data), then the code byte.
const headerSize = 5

// wireListener hands out every connection it accepts as a wireConn.
type wireListener struct{ net.Listener }

func (l wireListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err // as is: go-milter's Serve looks at it
	}
	return newWireConn(c), nil
}

// wireConn is a net.Conn that reads through a buffer and holds back some
// of what is written, to send it in fewer syscalls: a packet header
// written on its own until its data is written, and whole modification
// packets (modifies) until a packet of another kind. It knows the milter
// frame only to tell a header from data and to read a packet's code;
// whatever is written goes out complete and in order. What is held goes
// out before anything else: with the next Write that is not held, before
// a read that has to wait for the MTA, or on Close. Deadlines, addresses
// and everything else are the underlying conn's.
type wireConn struct {
	net.Conn

	rmu sync.Mutex    // bufio.Reader is not safe for concurrent use
	r   *bufio.Reader // fills from fillReader; nil once back in readers
	in  frames        // where in the MTA's frames the bytes read so far end

	wmu sync.Mutex // serializes writes, guards what follows
	// held is what is accepted but unsent: whole modification packets,
	// then maybe a header waiting for its data. Its array is reused.
	held []byte
	// holding: the data being written belongs to a modification packet
	// whose header is held, and is held too.
	holding bool
	frames  frames // where in the milter frames the bytes accepted so far end
}

func newWireConn(c net.Conn) *wireConn {
	w := &wireConn{Conn: c}
	w.r = readers.Get().(*bufio.Reader)
	w.r.Reset(fillReader{w})
	return w
}

// modifies reports whether a reply code is one of the modification
// actions of the end of a message (SMFIR_ADDRCPT, SMFIR_DELRCPT,
// SMFIR_ADDRCPT_PAR, SMFIR_CHGFROM, SMFIR_REPLBODY, SMFIR_ADDHEADER,
// SMFIR_INSHEADER, SMFIR_CHGHEADER, SMFIR_QUARANTINE): the MTA reads on
// after each, to the reply that ends the message, so holding them delays
// nothing it waits for. Every other reply, progress included, is waited
// for and goes out at once.
func modifies(code byte) bool {
	switch code {
	case '+', '-', '2', 'e', 'b', 'h', 'i', 'm', 'q':
		return true
	}
	return false
}

func (c *wireConn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.r == nil {
		return 0, fmt.Errorf("milter: wire: read after close: %w", net.ErrClosed)
	}
	if c.in.atStart() {
		if err := c.checkPacket(); err != nil {
			return 0, err
		}
	}
	n, err := c.r.Read(p)
	c.in.advance(p[:n])
	return n, err
}

// errMalformed is a packet from the MTA that go-milter v0.10.2 would
// index past its end, in the goroutine it runs the connection in, which
// has no recover: a zero-length packet (wire.ReadPacket takes the code as
// data[0]), a Connect whose host name lacks its NUL or is not followed by
// a family, a MAIL or RCPT whose address lacks its NUL. One such packet,
// from whatever reaches the milter socket, took the daemon down; now that
// connection is ended and the others go on.
var errMalformed = errors.New("milter: wire: malformed packet from the MTA")

// checkPacket looks at the packet about to be read, before go-milter
// reads any of it (see errMalformed). go-milter reads the whole packet
// next anyway, so waiting here for its bytes costs nothing; a packet that
// cannot be looked at (the MTA is gone, a deadline passed) is left to the
// read to fail.
func (c *wireConn) checkPacket() error {
	pk, err := c.r.Peek(headerSize - 1)
	if err != nil {
		return nil
	}
	length := int64(binary.BigEndian.Uint32(pk))
	if length == 0 {
		return fmt.Errorf("%w: a packet of length 0", errMalformed)
	}
	if pk, err = c.r.Peek(headerSize); err != nil {
		return nil
	}
	code := pk[headerSize-1]
	if code != 'C' && code != 'M' && code != 'R' {
		return nil
	}
	// An envelope packet is a host name and an address, or an address
	// and its ESMTP parameters: no MTA sends one past the read buffer.
	if length+headerSize-1 > readBufferSize {
		return fmt.Errorf("%w: a %q packet of %d bytes", errMalformed, code, length)
	}
	if pk, err = c.r.Peek(int(length) + headerSize - 1); err != nil {
		return nil
	}
	data := pk[headerSize:]
	end := bytes.IndexByte(data, 0)
	if end < 0 || code == 'C' && end+1 >= len(data) {
		return fmt.Errorf("%w: a %q packet without its strings", errMalformed, code)
	}
	return nil
}

// fillReader is what the read buffer fills from: the conn, once what is
// held is out. The MTA answers nothing before a packet is whole, so bytes
// still held while the read waits for the MTA would be stuck.
type fillReader struct{ c *wireConn }

func (f fillReader) Read(p []byte) (int, error) {
	// A Write in progress on another goroutine sends what is held itself,
	// or that goroutine writes more next; waiting for it here would tie
	// reading to a write that may be stalled.
	if f.c.wmu.TryLock() {
		err := f.c.flushHeldLocked()
		f.c.wmu.Unlock()
		if err != nil {
			return 0, fmt.Errorf("milter: wire: before reading: %w", err)
		}
	}
	return f.c.Conn.Read(p)
}

func (c *wireConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.frames.atStart() && len(p) == headerSize && binary.BigEndian.Uint32(p) > 1 {
		// A header with data to come: go-milter writes the data next.
		// A modification's data is held too, while there is room.
		c.holding = modifies(p[4]) && len(c.held)+int(binary.BigEndian.Uint32(p)) < holdMax
		c.held = append(c.held, p...)
		c.frames.advance(p)
		return len(p), nil
	}
	if c.holding && c.frames.inFrame(len(p)) {
		c.held = append(c.held, p...)
		c.frames.advance(p)
		c.holding = !c.frames.atStart()
		return len(p), nil
	}
	c.holding = false
	if len(c.held) > 0 {
		return c.writeHeld(p)
	}
	n, err := c.Conn.Write(p)
	c.frames.advance(p[:n])
	return n, err
}

// writeHeld sends what is held and p, whatever p is, in one syscall.
func (c *wireConn) writeHeld(p []byte) (int, error) {
	var n int
	var err error
	held := len(c.held)
	if len(p) <= copyCoalesceMax {
		c.held = append(c.held, p...)
		n, err = c.Conn.Write(c.held)
		c.held = c.held[:held]
	} else {
		bufs := net.Buffers{c.held, p}
		var n64 int64
		n64, err = bufs.WriteTo(c.Conn)
		n = int(n64)
	}
	if n < held { // short, so err is set: keep what is unsent
		c.held = append(c.held[:0], c.held[n:]...)
		return 0, err
	}
	n -= held
	c.sent()
	c.frames.advance(p[:n])
	return n, err
}

// sent empties held; an array grown past holdMax by a large packet is
// not kept for the rest of the session.
func (c *wireConn) sent() {
	if cap(c.held) > 2*holdMax {
		c.held = nil
	}
	c.held = c.held[:0]
}

// flushHeldLocked sends what is held on its own.
func (c *wireConn) flushHeldLocked() error {
	if len(c.held) == 0 {
		return nil
	}
	n, err := c.Conn.Write(c.held)
	if err != nil {
		c.held = append(c.held[:0], c.held[n:]...)
		return fmt.Errorf("sending the held packets: %w", err)
	}
	c.sent()
	return nil
}

// Close sends what is held, then closes the conn.
func (c *wireConn) Close() error {
	// A Read in progress keeps its buffer (it ends with the conn's close);
	// else the buffer goes back to the pool.
	if c.rmu.TryLock() {
		if c.r != nil {
			c.r.Reset(nil)
			readers.Put(c.r)
			c.r = nil
		}
		c.rmu.Unlock()
	}
	var flushErr error
	// A Write in progress on another goroutine, maybe blocked, must not
	// keep Close waiting: closing is what ends it. What it sends is lost
	// as a write racing Close on any conn is.
	if c.wmu.TryLock() {
		if len(c.held) > 0 {
			_ = c.Conn.SetWriteDeadline(time.Now().Add(closeFlushTimeout))
			if err := c.flushHeldLocked(); err != nil {
				flushErr = fmt.Errorf("milter: wire: closing: %w", err)
			}
		}
		c.wmu.Unlock()
	}
	return errors.Join(flushErr, c.Conn.Close())
}

// frames follows the milter frames through the bytes written, to tell
// where the next one starts whatever the sizes of the writes.
type frames struct {
	length [4]byte // length of the next frame, as far as written
	have   int     // bytes of length written
	body   uint32  // bytes of the current frame still to come
}

// atStart reports whether the next byte written starts a frame.
func (f *frames) atStart() bool { return f.have == 0 && f.body == 0 }

// inFrame reports whether n bytes written next are all within the data of
// the current frame.
func (f *frames) inFrame(n int) bool { return f.have == 0 && uint64(n) <= uint64(f.body) }

func (f *frames) advance(p []byte) {
	for len(p) > 0 {
		if f.body > 0 {
			k := len(p)
			if uint64(k) > uint64(f.body) {
				k = int(f.body)
			}
			f.body -= uint32(k)
			p = p[k:]
			continue
		}
		k := copy(f.length[f.have:], p)
		f.have += k
		p = p[k:]
		if f.have == len(f.length) {
			f.body, f.have = binary.BigEndian.Uint32(f.length[:]), 0
		}
	}
}
