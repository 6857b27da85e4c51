package clamd

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// fakeClamd is a clamd stand-in: every connection is served by handle.
type fakeClamd struct {
	addr  string // for New
	conns atomic.Int32

	mu   sync.Mutex
	open []net.Conn
}

// startFake listens on 127.0.0.1:0 ("tcp") or on a socket in t.TempDir()
// ("unix") and serves each connection with handle until the test ends.
func startFake(t testing.TB, network string, handle func(net.Conn)) *fakeClamd {
	t.Helper()
	var ln net.Listener
	var err error
	f := &fakeClamd{}
	switch network {
	case "tcp":
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		if err == nil {
			f.addr = "tcp:" + ln.Addr().String()
		}
	case "unix":
		path := filepath.Join(t.TempDir(), "clamd.ctl")
		ln, err = net.Listen("unix", path)
		f.addr = "unix:" + path
	}
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			f.conns.Add(1)
			f.mu.Lock()
			f.open = append(f.open, conn)
			f.mu.Unlock()
			wg.Go(func() {
				defer conn.Close()
				handle(conn)
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		f.mu.Lock()
		for _, c := range f.open {
			c.Close()
		}
		f.mu.Unlock()
		wg.Wait()
	})
	return f
}

// stream is what the fake received for one INSTREAM.
type stream struct {
	command string
	chunks  []int // lengths of the data chunks, without the final zero one
	data    []byte
}

// readCommand reads one z-prefixed command and returns it without "z" and NUL.
func readCommand(br *bufio.Reader) (string, error) {
	cmd, err := br.ReadString(0)
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(cmd, "z") {
		return "", fmt.Errorf("command %q without z prefix", cmd)
	}
	return cmd[1 : len(cmd)-1], nil
}

// readStream reads INSTREAM chunks up to the zero-length one (clamd(8)).
func readStream(r io.Reader) (stream, error) {
	var s stream
	for {
		var n uint32
		if err := binary.Read(r, binary.BigEndian, &n); err != nil {
			return s, fmt.Errorf("chunk length: %w", err)
		}
		if n == 0 {
			return s, nil
		}
		chunk := make([]byte, n)
		if _, err := io.ReadFull(r, chunk); err != nil {
			return s, fmt.Errorf("chunk of %d bytes: %w", n, err)
		}
		s.chunks = append(s.chunks, int(n))
		s.data = append(s.data, chunk...)
	}
}

// answering serves PING, VERSION and INSTREAM like clamd, sending each
// received stream on streams and answering it with scanReply.
func answering(t testing.TB, version string, scanReply func([]byte) string, streams chan<- stream) func(net.Conn) {
	return func(conn net.Conn) {
		br := bufio.NewReader(conn)
		cmd, err := readCommand(br)
		if err != nil {
			t.Errorf("fake clamd: %v", err)
			return
		}
		var reply string
		switch cmd {
		case "PING":
			reply = "PONG\x00"
		case "VERSION":
			reply = version + "\x00"
		case "INSTREAM":
			s, err := readStream(br)
			if err != nil {
				t.Errorf("fake clamd: %v", err)
				return
			}
			s.command = cmd
			if streams != nil {
				streams <- s
			}
			reply = scanReply(s.data)
		default:
			reply = "UNKNOWN COMMAND\x00"
		}
		if _, err := io.WriteString(conn, reply); err != nil {
			t.Errorf("fake clamd: %v", err)
		}
	}
}

const eicarMarker = "EICAR-STANDARD-ANTIVIRUS-TEST-FILE"

func eicarReply(data []byte) string {
	if bytes.Contains(data, []byte(eicarMarker)) {
		return "stream: Eicar-Test-Signature.UNOFFICIAL FOUND\x00"
	}
	return "stream: OK\x00"
}

// endless is content that never ends: a scan of it must stop on clamd's
// early reply or on a write error, whatever the socket buffers hold.
type endless struct{}

func (endless) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
