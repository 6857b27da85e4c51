package milter

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/d--j/go-milter"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/avstation/avstation/config"
	"github.com/avstation/avstation/verdict"
)

// recordConn is a net.Conn that records what is done to it and serves its
// reads from chunks given in advance, one chunk (or what fits of it) a
// read, as a socket returns what has arrived.
type recordConn struct {
	mu        sync.Mutex
	events    []string // "write", "read", "close", "write deadline", ...
	writes    [][]byte
	chunks    [][]byte
	reads     int
	deadlines [2]time.Time // read, write
	failWrite error        // the next write sends 2 bytes and fails with it
}

func (r *recordConn) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reads++
	r.events = append(r.events, "read")
	if len(r.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.chunks[0])
	if r.chunks[0] = r.chunks[0][n:]; len(r.chunks[0]) == 0 {
		r.chunks = r.chunks[1:]
	}
	return n, nil
}

func (r *recordConn) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, "write")
	if err := r.failWrite; err != nil {
		r.failWrite = nil
		n := min(2, len(p))
		r.writes = append(r.writes, bytes.Clone(p[:n]))
		return n, err
	}
	r.writes = append(r.writes, bytes.Clone(p))
	return len(p), nil
}

func (r *recordConn) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, "close")
	return nil
}

func (r *recordConn) LocalAddr() net.Addr  { return &net.UnixAddr{Name: "/run/avmilter", Net: "unix"} }
func (r *recordConn) RemoteAddr() net.Addr { return &net.UnixAddr{Name: "@postfix", Net: "unix"} }

func (r *recordConn) SetDeadline(t time.Time) error {
	r.SetReadDeadline(t)
	return r.SetWriteDeadline(t)
}

func (r *recordConn) SetReadDeadline(t time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, "read deadline")
	r.deadlines[0] = t
	return nil
}

func (r *recordConn) SetWriteDeadline(t time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, "write deadline")
	r.deadlines[1] = t
	return nil
}

// header is what go-milter's WritePacket writes first: length and code of
// a packet with dataLen bytes of data.
func header(code byte, dataLen int) []byte {
	return []byte{byte((dataLen + 1) >> 24), byte((dataLen + 1) >> 16), byte((dataLen + 1) >> 8), byte(dataLen + 1), code}
}

// packet is a whole milter packet.
func packet(code byte, data string) []byte { return append(header(code, len(data)), data...) }

func join(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// readPacket reads as go-milter's ReadPacket does: the length, then the rest.
func readPacket(r io.Reader) (code byte, data string, err error) {
	var length uint32
	if err := binary.Read(r, binary.BigEndian, &length); err != nil {
		return 0, "", err
	}
	buf := make([]byte, length)
	if _, err := io.ReadFull(r, buf); err != nil {
		return 0, "", err
	}
	return buf[0], string(buf[1:]), nil
}

// writePacket writes as go-milter's WritePacket does: the header, then the
// data if there is any.
func writePacket(w io.Writer, code byte, data string) error {
	if _, err := w.Write(header(code, len(data))); err != nil {
		return err
	}
	if data == "" {
		return nil
	}
	_, err := w.Write([]byte(data))
	return err
}

func TestWireConnWrites(t *testing.T) {
	big := strings.Repeat("b", copyCoalesceMax+1)
	tests := []struct {
		name   string
		writes [][]byte // what the writer writes, in order
		want   [][]byte // the writes of the conn below
	}{
		{"header and data in one write",
			[][]byte{header('y', 5), []byte("hello")},
			[][]byte{packet('y', "hello")}},
		{"code only at once",
			[][]byte{header('c', 0)},
			[][]byte{packet('c', "")}},
		{"replies one after another",
			[][]byte{header('y', 3), []byte("abc"), header('c', 0), header('y', 4), []byte("text")},
			[][]byte{packet('y', "abc"), packet('c', ""), packet('y', "text")}},
		// On a socket net.Buffers makes this one writev; this conn has
		// none, so it gets the two parts in order.
		{"data too large to copy",
			[][]byte{header('y', len(big)), []byte(big)},
			[][]byte{header('y', len(big)), []byte(big)}},
		{"whole packet in one write, then a header",
			[][]byte{packet('y', "x"), header('y', 2), []byte("ab")},
			[][]byte{packet('y', "x"), packet('y', "ab")}},
		{"data shorter than announced",
			[][]byte{header('y', 6), []byte("abc"), []byte("def"), header('c', 0)},
			[][]byte{join(header('y', 6), []byte("abc")), []byte("def"), packet('c', "")}},
		{"data longer than announced runs into the next packet",
			[][]byte{header('y', 2), join([]byte("ab"), packet('c', "")), header('y', 1), []byte("z")},
			[][]byte{join(packet('y', "ab"), packet('c', "")), packet('y', "z")}},
		{"five bytes of data are not taken for a header",
			[][]byte{header('y', 10), []byte("abcde"), []byte("fghij")},
			[][]byte{join(header('y', 10), []byte("abcde")), []byte("fghij")}},
		{"length split across writes",
			[][]byte{{0, 0}, {0, 3}, []byte("hab"), header('y', 1), []byte("z")},
			[][]byte{{0, 0}, {0, 3}, []byte("hab"), packet('y', "z")}},
		{"empty frame",
			[][]byte{{0, 0, 0, 0}, header('y', 1), []byte("z")},
			[][]byte{{0, 0, 0, 0}, packet('y', "z")}},
		{"empty write sends a held header",
			[][]byte{header('y', 2), {}, []byte("ab")},
			[][]byte{header('y', 2), []byte("ab")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := &recordConn{}
			c := newWireConn(rc)
			for i, p := range tt.writes {
				if n, err := c.Write(p); n != len(p) || err != nil {
					t.Fatalf("write %d: %d, %v; want %d, nil", i, n, err, len(p))
				}
			}
			if !slices.EqualFunc(rc.writes, tt.want, bytes.Equal) {
				t.Errorf("conn got writes\n%q\nwant\n%q", rc.writes, tt.want)
			}
		})
	}
}

// TestWireConnHoldsModifications: the modifications of the end of a
// message are held until the reply that ends them and go out with it in
// one write; a progress packet, a read that waits for the MTA and Close
// each send them first; past holdMax they go out at once.
func TestWireConnHoldsModifications(t *testing.T) {
	body := strings.Repeat("b", 65535-1) // the largest packet go-milter writes
	hdr := func(code byte, data string) [][]byte { return [][]byte{header(code, len(data)), []byte(data)} }
	eom := slices.Concat(hdr('m', "\x00\x00\x00\x01X-Virus-Status\x00"), hdr('h', "X-Virus-Scanned\x00avstation\x00"),
		hdr('h', "X-Virus-Status\x00clean\x00"))
	tests := []struct {
		name   string
		writes [][]byte
		then   func(*wireConn) error
		want   [][]byte // the writes of the conn below
		events []string // and what it saw
	}{
		{"end of message", append(eom, header('a', 0)), nil,
			[][]byte{join(append(eom, header('a', 0))...)}, nil},
		{"a reply with data", append(eom, hdr('y', "550 5.7.1 virus")...), nil,
			[][]byte{join(append(eom, hdr('y', "550 5.7.1 virus")...)...)}, nil},
		{"progress", append(slices.Clone(eom[:2]), header('p', 0)), nil,
			[][]byte{join(eom[0], eom[1], header('p', 0))}, nil},
		{"a read", eom, func(c *wireConn) error { _, err := c.Read(make([]byte, 1)); return err },
			[][]byte{join(eom...)}, []string{"write", "read"}},
		{"close", eom, (*wireConn).Close,
			[][]byte{join(eom...)}, []string{"write deadline", "write", "close"}},
		{"data in two writes", [][]byte{header('h', 4), []byte("ab"), []byte("cd"), header('c', 0)}, nil,
			[][]byte{join(header('h', 4), []byte("abcd"), header('c', 0))}, nil},
		{"a whole packet in one write is not held", [][]byte{packet('h', "ab"), header('a', 0)}, nil,
			[][]byte{packet('h', "ab"), header('a', 0)}, nil},
		// The first body packet is held; the second would pass holdMax:
		// both go out with its data, and the accept on its own.
		{"a new body", slices.Concat(hdr('b', body), hdr('b', body), [][]byte{header('a', 0)}), nil,
			[][]byte{join(header('b', len(body)), []byte(body), header('b', len(body))), []byte(body), header('a', 0)}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := &recordConn{chunks: [][]byte{packet('c', "")}}
			c := newWireConn(rc)
			for i, p := range tt.writes {
				if n, err := c.Write(p); n != len(p) || err != nil {
					t.Fatalf("write %d: %d, %v; want %d, nil", i, n, err, len(p))
				}
			}
			if tt.then != nil {
				if len(rc.writes) != 0 {
					t.Fatalf("modifications not held: %q", rc.writes)
				}
				if err := tt.then(c); err != nil {
					t.Fatal(err)
				}
			}
			if !slices.EqualFunc(rc.writes, tt.want, bytes.Equal) {
				t.Errorf("conn got %d writes\n%.200q\nwant %d\n%.200q", len(rc.writes), rc.writes, len(tt.want), tt.want)
			}
			if tt.events != nil && !slices.Equal(rc.events, tt.events) {
				t.Errorf("conn saw %v, want %v", rc.events, tt.events)
			}
		})
	}
}

// TestWireConnKeepsOrder: whatever packets of whatever codes and sizes
// are written, in whatever pieces, the conn below gets exactly those
// bytes in order once the wireConn is closed, and nothing is held after a
// packet that is not a modification.
func TestWireConnKeepsOrder(t *testing.T) {
	codes := []byte("abcdehimpqrsty+-2O")
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 300 {
		rc := &recordConn{}
		c := newWireConn(rc)
		var want []byte
		for range 1 + rng.IntN(12) {
			code := codes[rng.IntN(len(codes))]
			data := bytes.Repeat([]byte{code}, []int{0, 1, 4, 5, 100, copyCoalesceMax + 1, holdMax}[rng.IntN(7)])
			p := packet(code, string(data))
			want = append(want, p...)
			switch rng.IntN(3) {
			case 0: // go-milter's way: the header, then the data
				c.Write(p[:headerSize])
				if len(data) > 0 {
					c.Write(p[headerSize:])
				}
			case 1: // whole
				c.Write(p)
			default: // in random pieces
				for len(p) > 0 {
					k := 1 + rng.IntN(len(p))
					c.Write(p[:k])
					p = p[k:]
				}
			}
			if !modifies(code) && c.frames.atStart() && len(c.held) > 0 {
				t.Fatalf("round %d: %d bytes held after a whole %q packet", round, len(c.held), code)
			}
		}
		c.Close()
		if got := join(rc.writes...); !bytes.Equal(got, want) {
			t.Fatalf("round %d: the conn got %d bytes, want %d (equal prefix %d)", round, len(got), len(want), commonPrefix(got, want))
		}
	}
}

func commonPrefix(a, b []byte) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// TestWireConnWriteError: a write that fails within the held header leaves
// the unsent rest of it to go first.
func TestWireConnWriteError(t *testing.T) {
	broken := errors.New("broken")
	rc := &recordConn{}
	c := newWireConn(rc)
	c.Write(header('y', 2))
	rc.failWrite = broken
	if n, err := c.Write([]byte("ab")); n != 0 || !errors.Is(err, broken) {
		t.Fatalf("write: %d, %v; want 0, %v", n, err, broken)
	}
	if n, err := c.Write([]byte("ab")); n != 2 || err != nil {
		t.Fatalf("write again: %d, %v", n, err)
	}
	if got, want := join(rc.writes...), packet('y', "ab"); !bytes.Equal(got, want) {
		t.Errorf("conn got %q, want %q", got, want)
	}
}

func TestWireConnReads(t *testing.T) {
	run := join(packet('D', "C{daemon_name}\x00mx\x00"), packet('C', "client\x004\x10\xe1192.0.2.1\x00"),
		packet('M', "<a@example.com>\x00"), packet('R', "<b@example.com>\x00"), packet('T', ""), packet('L', "Subject\x00hi\x00"))
	large := packet('B', strings.Repeat("x", 100<<10))
	tests := []struct {
		name    string
		chunks  [][]byte // what each read of the conn below returns
		packets int
		// of the conn below, the last two for EOF: the look at the next
		// packet (checkPacket) meets it first, then the read
		reads int
	}{
		{"packets sent in a run come in one read", [][]byte{run}, 6, 3},
		{"packets split across reads", [][]byte{run[:2], run[2:9], run[9:40], run[40:]}, 6, 6},
		// The buffer's fill, then the rest straight into the packet.
		{"packet larger than the buffer", [][]byte{large}, 1, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var sent []byte
			for _, ch := range tt.chunks {
				sent = append(sent, ch...)
			}
			rc := &recordConn{chunks: tt.chunks}
			c := newWireConn(rc)
			var got []byte
			packets := 0
			for {
				code, data, err := readPacket(c)
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, packet(code, data)...)
				packets++
			}
			if packets != tt.packets || !bytes.Equal(got, sent) {
				t.Errorf("read %d packets, %d bytes; not the %d, %d bytes sent", packets, len(got), tt.packets, len(sent))
			}
			if rc.reads != tt.reads {
				t.Errorf("%d reads of the conn, want %d", rc.reads, tt.reads)
			}
		})
	}
}

// TestWireConnHeldHeaderGoesFirst: a header held for its data goes out
// before a read that waits for the MTA, and before Close.
func TestWireConnHeldHeaderGoesFirst(t *testing.T) {
	tests := []struct {
		name string
		then func(c *wireConn) error
		want []string
	}{
		{"read", func(c *wireConn) error { _, err := c.Read(make([]byte, 1)); return err },
			[]string{"write", "read"}},
		{"close", (*wireConn).Close,
			[]string{"write deadline", "write", "close"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := &recordConn{chunks: [][]byte{packet('c', "")}}
			c := newWireConn(rc)
			c.Write(header('y', 3))
			if len(rc.events) != 0 {
				t.Fatalf("header not held: %v", rc.events)
			}
			if err := tt.then(c); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(rc.events, tt.want) || !bytes.Equal(join(rc.writes...), header('y', 3)) {
				t.Errorf("conn saw %v, writes %q; want %v, the header", rc.events, rc.writes, tt.want)
			}
		})
	}
}

// TestWireConnCloseWithNothingHeld: Close only closes, and reads end.
func TestWireConnCloseWithNothingHeld(t *testing.T) {
	rc := &recordConn{}
	c := newWireConn(rc)
	c.Write(packet('c', ""))
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if want := []string{"write", "close"}; !slices.Equal(rc.events, want) {
		t.Errorf("conn saw %v, want %v", rc.events, want)
	}
	// Its read buffer is back in the pool, not read from.
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("read after close: %v", err)
	}
}

func TestWireConnPassesThrough(t *testing.T) {
	rc := &recordConn{}
	c := newWireConn(rc)
	t1, t2, t3 := time.Unix(1, 0), time.Unix(2, 0), time.Unix(3, 0)
	c.SetDeadline(t1)
	if rc.deadlines != [2]time.Time{t1, t1} {
		t.Errorf("SetDeadline: conn has %v", rc.deadlines)
	}
	c.SetReadDeadline(t2)
	c.SetWriteDeadline(t3)
	if rc.deadlines != [2]time.Time{t2, t3} {
		t.Errorf("SetReadDeadline, SetWriteDeadline: conn has %v", rc.deadlines)
	}
	if c.LocalAddr().String() != rc.LocalAddr().String() || c.RemoteAddr().String() != rc.RemoteAddr().String() {
		t.Errorf("addresses %v %v", c.LocalAddr(), c.RemoteAddr())
	}
}

// TestWireConnOverPipe: packets read through a wireConn and written back
// go-milter's way come back whole, and a read deadline still ends a read.
func TestWireConnOverPipe(t *testing.T) {
	mta, raw := net.Pipe()
	defer mta.Close()
	c := newWireConn(raw)
	defer c.Close()
	sent := [][2]string{{"O", "\x00\x00\x00\x06"}, {"C", "client\x00U"}, {"Q", ""}, {"B", strings.Repeat("body\r\n", 20000)}}
	echoed := make(chan error, 1)
	go func() {
		for range sent {
			code, data, err := readPacket(c)
			if err == nil {
				err = writePacket(c, code, data)
			}
			if err != nil {
				echoed <- err
				return
			}
		}
		echoed <- nil
	}()
	go func() {
		for _, p := range sent {
			mta.Write(packet(p[0][0], p[1]))
		}
	}()
	for _, p := range sent {
		code, data, err := readPacket(mta)
		if err != nil || code != p[0][0] || data != p[1] {
			t.Fatalf("echo of %s (%d bytes): %c (%d bytes), %v", p[0], len(p[1]), code, len(data), err)
		}
	}
	if err := <-echoed; err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(-time.Second))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read past the deadline: %v", err)
	}
}

// TestWireConnCloseEndsABlockedWrite: Close does not wait for a write the
// MTA does not read, it ends it.
func TestWireConnCloseEndsABlockedWrite(t *testing.T) {
	mta, raw := net.Pipe()
	defer mta.Close()
	c := newWireConn(raw)
	done := make(chan error)
	go func() { done <- writePacket(c, 'y', "nobody reads this") }()
	if err := c.Close(); err != nil && !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("close: %v", err)
	}
	if err := <-done; err == nil {
		t.Error("write to nobody succeeded")
	}
}

func TestWireListenerWrapsEveryConn(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s")
	for _, addr := range [][2]string{{"tcp", "127.0.0.1:0"}, {"unix", sock}} {
		t.Run(addr[0], func(t *testing.T) {
			ln, err := net.Listen(addr[0], addr[1])
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			d, err := net.Dial(addr[0], ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			c, err := wireListener{ln}.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, ok := c.(*wireConn); !ok {
				t.Fatalf("accepted a %T", c)
			}
			if c.RemoteAddr().Network() != addr[0] {
				t.Errorf("remote address %v", c.RemoteAddr())
			}
		})
	}
}

// TestWireConnEndToEnd: go-milter's client against the server, on TCP and
// on a unix socket, gets mail accepted and rejected as before, bodies of
// many packets included.
func TestWireConnEndToEnd(t *testing.T) {
	clean := &verdict.Verdict{Scanner: "s"}
	clean.Settle()
	body := strings.Repeat("a line of the body\r\n", 10000) // 200 KB, in 64 KB packets
	tests := []struct {
		name string
		v    *verdict.Verdict
		code uint16
	}{
		{"clean", clean, 0},
		{"infected", infectedVerdict(), 550},
	}
	for _, network := range []string{"tcp", "unix"} {
		for _, tt := range tests {
			t.Run(network+"/"+tt.name, func(t *testing.T) {
				listen := func(c *config.Milter) {
					if network == "unix" {
						c.Listen = "unix:" + filepath.Join(t.TempDir(), "avmilter.sock")
					}
				}
				fs := &fakeScanner{v: tt.v}
				addr, _, _, _ := startMilter(t, listen, fs)
				for range 2 { // a second connection after the first
					fs.body = nil
					r := transact(t, addr, []string{"dev@lists.example.org"}, subject, body)
					switch {
					case tt.code == 0:
						wantAccept(t, r)
						wantHeader(t, r, "X-Virus-Status", "Clean")
					case r.act.SMTPCode != tt.code:
						t.Errorf("got %v, want %d", r.act, tt.code)
					}
					if !bytes.HasSuffix(fs.body, []byte("\r\n\r\n"+body)) {
						t.Errorf("scanner saw %d bytes, not the body", len(fs.body))
					}
				}
			})
		}
	}
}

// countListener counts the reads and writes of the connections it accepts.
type countListener struct {
	net.Listener
	reads, writes *atomic.Int64
}

func (l countListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countConn{c, l.reads, l.writes}, nil
}

type countConn struct {
	net.Conn
	reads, writes *atomic.Int64
}

func (c countConn) Read(p []byte) (int, error)  { c.reads.Add(1); return c.Conn.Read(p) }
func (c countConn) Write(p []byte) (int, error) { c.writes.Add(1); return c.Conn.Write(p) }

// cpuTime is the CPU, user and system, this process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkWireConn runs messages through go-milter's client and the server,
// one connection each, with go-milter on the bare TCP conn ("bare", as before
// wireConn) and on a wireConn ("wire"), and reports the reads and writes of
// the server's TCP conn per message, the syscalls it makes, and the CPU
// of client and server together per message (cpu-us/op).
//
//	go test ./milter -run '^$' -bench WireConn -benchtime 2000x
func BenchmarkWireConn(b *testing.B) {
	clean := &verdict.Verdict{Scanner: "s"}
	clean.Settle()
	headers := append(slices.Clone(subject), [2]string{"Message-ID", " <1@example.com>"}, [2]string{"Date", " Mon, 1 Jan 2024 00:00:00 +0000"})
	body := strings.Repeat("a line of the body\r\n", 50) // 1 KB
	for _, wrap := range []struct {
		name string
		ln   func(net.Listener) net.Listener
	}{
		{"bare", func(ln net.Listener) net.Listener { return ln }},
		{"wire", func(ln net.Listener) net.Listener { return wireListener{ln} }},
	} {
		b.Run(wrap.name, func(b *testing.B) {
			cfg := config.DefaultMilter()
			cfg.Lists = []config.ListPattern{{Match: "*@lists.example.org"}}
			cfg.SpoolDir = b.TempDir()
			if err := cfg.Prepare(); err != nil {
				b.Fatal(err)
			}
			srv, err := New(&cfg, &fakeScanner{v: clean}, nil, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
			if err != nil {
				b.Fatal(err)
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			var reads, writes atomic.Int64
			// Serve's own wrapping is left out to compare with go-milter alone.
			go srv.ms.Serve(wrap.ln(countListener{ln, &reads, &writes}))
			defer srv.Shutdown(context.Background())
			cpu0 := cpuTime(b)
			b.ResetTimer()
			for range b.N {
				r := transact(b, ln.Addr().String(), []string{"dev@lists.example.org"}, headers, body)
				if r.act == nil || r.act.Type != milter.ActionAccept {
					b.Fatalf("got %v", r.act)
				}
			}
			b.StopTimer()
			// The server may not have read the client's close yet: let
			// Shutdown wait for the sessions before the counts are read.
			srv.Shutdown(context.Background())
			b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/float64(b.N), "cpu-us/op")
			b.ReportMetric(float64(reads.Load())/float64(b.N), "reads/op")
			b.ReportMetric(float64(writes.Load())/float64(b.N), "writes/op")
		})
	}
}
