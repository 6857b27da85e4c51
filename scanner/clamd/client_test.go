package clamd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"
)

func TestScanFraming(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789"), 20_000) // 200,000 bytes
	tests := []struct {
		name       string
		chunkSize  int // 0: default
		input      []byte
		wantChunks []int
		wantFound  bool
	}{
		{name: "empty", input: nil, wantChunks: nil},
		{name: "small", input: []byte("hello"), wantChunks: []int{5}},
		{name: "eicar", input: []byte("X5O!P%@AP " + eicarMarker), wantChunks: []int{44}, wantFound: true},
		{name: "larger than chunk", chunkSize: 1000, input: big[:2500], wantChunks: []int{1000, 1000, 500}},
		{name: "multiple of chunk", chunkSize: 1000, input: big[:2000], wantChunks: []int{1000, 1000}},
		{name: "default chunk size", input: big, wantChunks: []int{65536, 65536, 65536, 3392}},
		{
			name:       "eicar across chunks",
			chunkSize:  16,
			input:      []byte("abcdefghij" + eicarMarker),
			wantChunks: []int{16, 16, 12},
			wantFound:  true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			streams := make(chan stream, 1)
			f := startFake(t, "tcp", answering(t, "ClamAV 1.4.6", eicarReply, streams))
			c, err := New(f.addr, WithChunkSize(tt.chunkSize))
			if err != nil {
				t.Fatal(err)
			}
			// OneByteReader: the client must fill its chunks from a
			// reader that returns little at a time.
			res, err := c.Scan(t.Context(), iotest.OneByteReader(bytes.NewReader(tt.input)))
			if err != nil {
				t.Fatalf("Scan: %v", err)
			}
			if res.Found != tt.wantFound {
				t.Errorf("Found = %v, want %v (reply %q)", res.Found, tt.wantFound, res.Raw)
			}
			if tt.wantFound && res.Threat != "Eicar-Test-Signature.UNOFFICIAL" {
				t.Errorf("Threat = %q", res.Threat)
			}
			got := <-streams
			if fmt.Sprint(got.chunks) != fmt.Sprint(tt.wantChunks) {
				t.Errorf("chunks %v, want %v", got.chunks, tt.wantChunks)
			}
			if !bytes.Equal(got.data, tt.input) {
				t.Errorf("clamd got %d bytes, differing from the %d sent", len(got.data), len(tt.input))
			}
		})
	}
}

// TestSendStream checks the wire bytes of INSTREAM without a server.
func TestSendStream(t *testing.T) {
	c, err := New("127.0.0.1:3310", WithChunkSize(4))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := c.sendStream(t.Context(), &buf, strings.NewReader("abcdefghij")); err != nil {
		t.Fatal(err)
	}
	want := "zINSTREAM\x00" +
		"\x00\x00\x00\x04abcd" +
		"\x00\x00\x00\x04efgh" +
		"\x00\x00\x00\x02ij" +
		"\x00\x00\x00\x00"
	if buf.String() != want {
		t.Errorf("sent %q, want %q", buf.String(), want)
	}
}

func TestScanReplies(t *testing.T) {
	tests := []struct {
		name      string
		reply     string
		wantFound bool
		wantErr   error
	}{
		{name: "ok", reply: "stream: OK\x00"},
		{name: "ok newline", reply: "stream: OK\n"},
		{name: "found", reply: "stream: Trojan:Win32/Phonzy.A!ml FOUND\x00", wantFound: true},
		{name: "size limit", reply: "INSTREAM size limit exceeded. ERROR\x00", wantErr: ErrSizeLimit},
		{name: "error", reply: "stream: Can't allocate memory ERROR\x00", wantErr: errReply},
		{name: "garbage", reply: "what?\x00", wantErr: errReply},
		{name: "unterminated", reply: "stream: OK", wantErr: io.ErrUnexpectedEOF},
		{name: "no reply", reply: "", wantErr: errNoReply},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := startFake(t, "tcp", answering(t, "", func([]byte) string { return tt.reply }, nil))
			c, err := New(f.addr)
			if err != nil {
				t.Fatal(err)
			}
			res, err := c.Scan(t.Context(), strings.NewReader("data"))
			checkReplyErr(t, err, tt.wantErr)
			if err != nil {
				if want := "clamd " + f.addr + ": INSTREAM: "; !strings.HasPrefix(err.Error(), want) {
					t.Errorf("error %q does not start with %q", err, want)
				}
			}
			if res.Found != tt.wantFound {
				t.Errorf("Found = %v, want %v", res.Found, tt.wantFound)
			}
		})
	}
}

// TestScanEarlyReply: clamd replies and hangs up while the client is still
// writing, as it does past StreamMaxLength ("INSTREAM size limit exceeded",
// clamd(8)). The caller must see the reply, not a broken pipe, and never a
// clean result for a stream clamd did not receive whole.
func TestScanEarlyReply(t *testing.T) {
	tests := []struct {
		name      string
		reply     string // "" for none
		wantFound bool
		wantErr   error
		// endlessOnly: check the error only for the endless input.
		endlessOnly bool
	}{
		{name: "size limit", reply: "INSTREAM size limit exceeded. ERROR", wantErr: ErrSizeLimit},
		{name: "other error", reply: "stream: Can't allocate memory ERROR", wantErr: errReply},
		{name: "found", reply: "stream: Eicar-Test-Signature FOUND", wantFound: true},
		// The 2MB stream may fit the socket buffers whole before the fake
		// hangs up; the client then cannot tell, so only endless counts.
		{name: "ok is not clean", reply: "stream: OK", wantErr: errAny, endlessOnly: true},
		{name: "no reply", reply: "", wantErr: errAny},
	}
	inputs := []struct {
		name string
		r    func() io.Reader
	}{
		{name: "2MB", r: func() io.Reader { return bytes.NewReader(make([]byte, 2<<20)) }},
		{name: "endless", r: func() io.Reader { return endless{} }},
	}
	for _, network := range []string{"tcp", "unix"} {
		for _, in := range inputs {
			for _, tt := range tests {
				t.Run(network+"/"+in.name+"/"+tt.name, func(t *testing.T) {
					f := startFake(t, network, func(conn net.Conn) {
						br := bufio.NewReader(conn)
						if _, err := readCommand(br); err != nil {
							t.Errorf("fake clamd: %v", err)
							return
						}
						// Like clamd with StreamMaxLength 100K: take
						// that much, answer, and hang up with the rest
						// unread.
						io.CopyN(io.Discard, br, 100<<10)
						if tt.reply != "" {
							io.WriteString(conn, tt.reply+"\x00")
						}
					})
					c, err := New(f.addr)
					if err != nil {
						t.Fatal(err)
					}
					res, err := c.Scan(t.Context(), in.r())
					if !tt.endlessOnly || in.name == "endless" {
						checkReplyErr(t, err, tt.wantErr)
					}
					if res.Found != tt.wantFound {
						t.Errorf("Found = %v, want %v", res.Found, tt.wantFound)
					}
					if tt.reply != "" && res.Raw != tt.reply {
						t.Errorf("Raw = %q, want %q", res.Raw, tt.reply)
					}
				})
			}
		}
	}
}

// TestScanInputError: a failing reader aborts the scan without the final
// zero-length chunk, so clamd never judges a truncated stream.
func TestScanInputError(t *testing.T) {
	gotEnd := make(chan error, 1)
	f := startFake(t, "tcp", func(conn net.Conn) {
		br := bufio.NewReader(conn)
		readCommand(br)
		_, err := readStream(br)
		gotEnd <- err
	})
	c, err := New(f.addr, WithChunkSize(4))
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	r := io.MultiReader(strings.NewReader("abcdefgh"), iotest.ErrReader(boom))
	if _, err := c.Scan(t.Context(), r); !errors.Is(err, boom) {
		t.Fatalf("Scan error = %v, want %v", err, boom)
	}
	if err := <-gotEnd; !errors.Is(err, io.EOF) {
		t.Errorf("fake clamd read the stream to %v, want EOF before the end chunk", err)
	}
}

// hanging is a clamd that takes the whole stream and never answers; it
// reports on closed when the client hangs up.
func hanging(closed chan<- error) func(net.Conn) {
	return func(conn net.Conn) {
		_, err := io.Copy(io.Discard, conn)
		closed <- err
	}
}

func TestScanCancel(t *testing.T) {
	closed := make(chan error, 1)
	f := startFake(t, "tcp", hanging(closed))
	c, err := New(f.addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var cancelled atomic.Int64
	time.AfterFunc(50*time.Millisecond, func() {
		cancelled.Store(time.Now().UnixNano())
		cancel()
	})
	_, err = c.Scan(ctx, strings.NewReader("data"))
	after := time.Since(time.Unix(0, cancelled.Load()))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Scan error = %v, want context.Canceled", err)
	}
	if after > 100*time.Millisecond {
		t.Errorf("Scan returned %v after cancel", after)
	}
	select {
	case <-closed: // clamd saw the connection go: the scan is aborted.
	case <-time.After(time.Second):
		t.Error("connection still open a second after cancel")
	}
}

func TestScanDeadline(t *testing.T) {
	closed := make(chan error, 1)
	f := startFake(t, "tcp", hanging(closed))
	c, err := New(f.addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = c.Scan(ctx, strings.NewReader("data"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Scan error = %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("Scan took %v with a 50ms deadline", d)
	}
}

func TestScanCancelledBeforeStart(t *testing.T) {
	f := startFake(t, "tcp", answering(t, "", eicarReply, nil))
	c, err := New(f.addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := c.Scan(ctx, strings.NewReader("data")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Scan error = %v, want context.Canceled", err)
	}
}

func TestUnixSocket(t *testing.T) {
	streams := make(chan stream, 1)
	f := startFake(t, "unix", answering(t, "ClamAV 1.4.6/27456/Sat Nov 21 09:30:00 2026", eicarReply, streams))
	path := strings.TrimPrefix(f.addr, "unix:")
	for _, addr := range []string{f.addr, path} {
		t.Run(addr, func(t *testing.T) {
			c, err := New(addr)
			if err != nil {
				t.Fatal(err)
			}
			if c.Addr() != "unix:"+path {
				t.Errorf("Addr() = %q, want %q", c.Addr(), "unix:"+path)
			}
			if err := c.Ping(t.Context()); err != nil {
				t.Errorf("Ping: %v", err)
			}
			v, err := c.Version(t.Context())
			if err != nil {
				t.Fatalf("Version: %v", err)
			}
			if v.Engine != "ClamAV 1.4.6" || v.Database != "27456" || v.BuildTime.Year() != 2026 {
				t.Errorf("Version = %+v", v)
			}
			res, err := c.Scan(t.Context(), strings.NewReader(eicarMarker))
			if err != nil || !res.Found {
				t.Fatalf("Scan = %+v, %v; want found", res, err)
			}
			if got := <-streams; string(got.data) != eicarMarker {
				t.Errorf("clamd got %q", got.data)
			}
		})
	}
}

func TestPingVersion(t *testing.T) {
	tests := []struct {
		name        string
		version     string
		wantVersion Version
		wantErr     bool
	}{
		{name: "engine only", version: "ClamAV 1.4.6", wantVersion: Version{Engine: "ClamAV 1.4.6"}},
		{name: "garbage", version: "nonsense", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := startFake(t, "tcp", answering(t, tt.version, eicarReply, nil))
			c, err := New(f.addr)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Ping(t.Context()); err != nil {
				t.Errorf("Ping: %v", err)
			}
			v, err := c.Version(t.Context())
			if tt.wantErr {
				var re *ReplyError
				if !errors.As(err, &re) {
					t.Fatalf("Version error = %v, want a *ReplyError", err)
				}
				if want := "clamd " + f.addr + ": VERSION: clamd: nonsense"; err.Error() != want {
					t.Errorf("error %q, want %q", err, want)
				}
				return
			}
			if err != nil || v != tt.wantVersion {
				t.Errorf("Version = %+v, %v; want %+v", v, err, tt.wantVersion)
			}
			if n := f.conns.Load(); n != 2 {
				t.Errorf("%d connections for two commands, want one each", n)
			}
		})
	}
}

func TestPingBadReply(t *testing.T) {
	f := startFake(t, "tcp", func(conn net.Conn) {
		readCommand(bufio.NewReader(conn))
		io.WriteString(conn, "PANG\x00")
	})
	c, err := New(f.addr)
	if err != nil {
		t.Fatal(err)
	}
	var re *ReplyError
	if err := c.Ping(t.Context()); !errors.As(err, &re) || re.Reply != "PANG" {
		t.Fatalf("Ping error = %v, want a *ReplyError for PANG", err)
	}
}

func TestDialError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	c, err := New(addr, WithDialTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Scan(t.Context(), strings.NewReader("data"))
	if err == nil || res.Found {
		t.Fatalf("Scan = %+v, %v; want an error", res, err)
	}
	if want := "clamd tcp:" + addr + ": INSTREAM: "; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %q does not start with %q", err, want)
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		addr     string
		wantAddr string // "" when New must fail
	}{
		{"tcp:127.0.0.1:3310", "tcp:127.0.0.1:3310"},
		{"127.0.0.1:3310", "tcp:127.0.0.1:3310"},
		{"localhost:3310", "tcp:localhost:3310"},
		{"[::1]:3310", "tcp:[::1]:3310"},
		{"tcp:[::1]:3310", "tcp:[::1]:3310"},
		{"unix:/run/clamav/clamd.ctl", "unix:/run/clamav/clamd.ctl"},
		{"/run/clamav/clamd.ctl", "unix:/run/clamav/clamd.ctl"},
		{"unix:clamd.ctl", "unix:clamd.ctl"},
		{"", ""},
		{"tcp:", ""},
		{"unix:", ""},
		{"127.0.0.1", ""},
		{"tcp:127.0.0.1", ""},
		{":3310", ""},
		{"127.0.0.1:0", ""},
		{"127.0.0.1:65536", ""},
		{"127.0.0.1:clamd", ""},
		{"clamd.ctl", ""},
		{"bad host:3310", ""},
		{"::1:3310", ""},
		{"/run/clam\x00d.ctl", ""},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			c, err := New(tt.addr)
			if tt.wantAddr == "" {
				if err == nil {
					t.Fatalf("New(%q) = %q, want an error", tt.addr, c.Addr())
				}
				if want := fmt.Sprintf("%q", tt.addr); !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name the address %s", err, want)
				}
				return
			}
			if err != nil {
				t.Fatalf("New(%q): %v", tt.addr, err)
			}
			if c.Addr() != tt.wantAddr {
				t.Errorf("Addr() = %q, want %q", c.Addr(), tt.wantAddr)
			}
		})
	}
}

func TestOptions(t *testing.T) {
	tests := []struct {
		name      string
		opts      []Option
		wantDial  time.Duration
		wantChunk int
	}{
		{name: "defaults", wantDial: DefaultDialTimeout, wantChunk: DefaultChunkSize},
		{name: "set", opts: []Option{WithDialTimeout(time.Second), WithChunkSize(1000)}, wantDial: time.Second, wantChunk: 1000},
		{name: "non-positive keep defaults", opts: []Option{WithDialTimeout(0), WithChunkSize(-1)}, wantDial: DefaultDialTimeout, wantChunk: DefaultChunkSize},
		{name: "chunk capped", opts: []Option{WithChunkSize(1 << 30)}, wantDial: DefaultDialTimeout, wantChunk: MaxChunkSize},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New("127.0.0.1:3310", tt.opts...)
			if err != nil {
				t.Fatal(err)
			}
			if c.dialTimeout != tt.wantDial || c.chunkSize != tt.wantChunk {
				t.Errorf("dial timeout %v, chunk size %d; want %v, %d", c.dialTimeout, c.chunkSize, tt.wantDial, tt.wantChunk)
			}
		})
	}
}
