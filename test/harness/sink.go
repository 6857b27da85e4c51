package harness

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"
)

// Delivered is one message the sink accepted.
type Delivered struct {
	From string   // MAIL FROM address, without angle brackets
	To   []string // RCPT TO addresses, without angle brackets
	Data []byte   // the message as received, CRLF line ends, dots unstuffed
}

// Sink is a tiny SMTP server on 127.0.0.1 that accepts every message and
// records it. Postfix relays to it; tests inspect what arrived.
type Sink struct {
	Addr string // "127.0.0.1:PORT"

	ln      net.Listener
	mu      sync.Mutex
	msgs    []Delivered
	changed chan struct{} // closed and replaced on each new message
	conns   map[net.Conn]struct{}
	closed  bool
	wg      sync.WaitGroup
}

// sinkHostname is what the sink calls itself. It must differ from the
// Postfix instances' myhostname, or Postfix's smtp client reports a mail
// loop.
const sinkHostname = "avtest-sink.localdomain"

// StartSink starts a sink on 127.0.0.1:0; t.Cleanup closes it.
func StartSink(t testing.TB) *Sink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("harness: sink: listen: %v", err)
	}
	s := &Sink{
		Addr:    ln.Addr().String(),
		ln:      ln,
		changed: make(chan struct{}),
		conns:   map[net.Conn]struct{}{},
	}
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(s.Close)
	return s
}

// Port is the sink's TCP port.
func (s *Sink) Port() int { return s.ln.Addr().(*net.TCPAddr).Port }

// Close stops the sink and waits for its sessions to end.
func (s *Sink) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.ln.Close()
	s.wg.Wait()
}

// Messages returns a copy of every message delivered so far, in order.
func (s *Sink) Messages() []Delivered {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Delivered, len(s.msgs))
	for i, m := range s.msgs {
		out[i] = Delivered{
			From: m.From,
			To:   append([]string(nil), m.To...),
			Data: append([]byte(nil), m.Data...),
		}
	}
	return out
}

// Count returns how many delivered messages match (nil matches all).
func (s *Sink) Count(match func(Delivered) bool) int {
	n := 0
	for _, m := range s.Messages() {
		if match == nil || match(m) {
			n++
		}
	}
	return n
}

// WaitFor waits until a delivered message matches (nil matches any) and
// returns the first that does. It fails the test after timeout.
func (s *Sink) WaitFor(t testing.TB, match func(Delivered) bool, timeout time.Duration) Delivered {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		ch := s.changed
		s.mu.Unlock()
		for _, m := range s.Messages() {
			if match == nil || match(m) {
				return m
			}
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("harness: sink %s: no matching message after %v (%d delivered)", s.Addr, timeout, s.Count(nil))
			return Delivered{}
		}
	}
}

// WaitCount waits until at least n delivered messages match (nil matches
// any) and returns how many do; it fails the test after timeout, with what
// progress says (the caller's summary of the state of the run). match runs
// with the sink locked: it must not call the sink.
func (s *Sink) WaitCount(t testing.TB, match func(Delivered) bool, n int, timeout time.Duration, progress func() string) int {
	t.Helper()
	got, ok := s.AwaitCount(match, n, timeout)
	if !ok {
		msg := ""
		if progress != nil {
			msg = "; " + progress()
		}
		t.Fatalf("harness: sink %s: %d matching messages after %v, want %d%s", s.Addr, got, timeout, n, msg)
	}
	return got
}

// AwaitCount is WaitCount for a goroutine other than the test's: it
// reports a timeout (ok false) instead of failing the test.
func (s *Sink) AwaitCount(match func(Delivered) bool, n int, timeout time.Duration) (got int, ok bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		ch := s.changed
		got = 0
		for _, m := range s.msgs {
			if match == nil || match(m) {
				got++
			}
		}
		s.mu.Unlock()
		if got >= n {
			return got, true
		}
		select {
		case <-ch:
		case <-deadline.C:
			return got, false
		}
	}
}

// Reset forgets the messages delivered so far.
func (s *Sink) Reset() {
	s.mu.Lock()
	s.msgs = nil
	s.mu.Unlock()
}

func (s *Sink) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.session(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			c.Close()
		}()
	}
}

func (s *Sink) deliver(m Delivered) {
	s.mu.Lock()
	s.msgs = append(s.msgs, m)
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// session speaks just enough RFC 5321 to take mail from Postfix and from
// test clients. It reads line by line, so pipelined commands work.
func (s *Sink) session(c net.Conn) {
	br := bufio.NewReader(c)
	tr := textproto.NewReader(br)
	tp := textproto.NewWriter(bufio.NewWriter(c))
	reply := func(code int, format string, args ...any) bool {
		_ = c.SetWriteDeadline(time.Now().Add(time.Minute))
		return tp.PrintfLine("%d %s", code, fmt.Sprintf(format, args...)) == nil
	}
	if !reply(220, "%s ESMTP avtest sink", sinkHostname) {
		return
	}
	var from string
	var to []string
	inTx := false
	for {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Minute))
		line, err := tr.ReadLine()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO":
			_ = c.SetWriteDeadline(time.Now().Add(time.Minute))
			if tp.PrintfLine("250-%s", sinkHostname) != nil ||
				tp.PrintfLine("250-PIPELINING") != nil ||
				tp.PrintfLine("250-8BITMIME") != nil ||
				tp.PrintfLine("250-SMTPUTF8") != nil ||
				tp.PrintfLine("250-SIZE 0") != nil ||
				tp.PrintfLine("250 ENHANCEDSTATUSCODES") != nil {
				return
			}
			from, to, inTx = "", nil, false
		case "HELO":
			from, to, inTx = "", nil, false
			if !reply(250, "%s", sinkHostname) {
				return
			}
		case "MAIL":
			from, inTx, to = pathArg(arg, "FROM:"), true, nil
			if !reply(250, "2.1.0 Ok") {
				return
			}
		case "RCPT":
			if !inTx {
				if !reply(503, "5.5.1 Error: need MAIL command") {
					return
				}
				continue
			}
			to = append(to, pathArg(arg, "TO:"))
			if !reply(250, "2.1.5 Ok") {
				return
			}
		case "DATA":
			if !inTx || len(to) == 0 {
				if !reply(503, "5.5.1 Error: need RCPT command") {
					return
				}
				continue
			}
			if !reply(354, "End data with <CR><LF>.<CR><LF>") {
				return
			}
			data, err := readDotData(br)
			if err != nil {
				return
			}
			s.deliver(Delivered{From: from, To: to, Data: data})
			from, to, inTx = "", nil, false
			if !reply(250, "2.0.0 Ok: queued as sink%d", s.Count(nil)) {
				return
			}
		case "RSET":
			from, to, inTx = "", nil, false
			if !reply(250, "2.0.0 Ok") {
				return
			}
		case "NOOP":
			if !reply(250, "2.0.0 Ok") {
				return
			}
		case "QUIT":
			reply(221, "2.0.0 Bye")
			return
		default:
			if !reply(502, "5.5.2 Error: command not recognized") {
				return
			}
		}
	}
}

// pathArg extracts the address from "FROM:<a@b> BODY=8BITMIME".
func pathArg(arg, prefix string) string {
	arg = strings.TrimSpace(arg)
	if len(arg) >= len(prefix) && strings.EqualFold(arg[:len(prefix)], prefix) {
		arg = strings.TrimSpace(arg[len(prefix):])
	}
	if strings.HasPrefix(arg, "<") {
		if i := strings.IndexByte(arg, '>'); i > 0 {
			return arg[1:i]
		}
	}
	addr, _, _ := strings.Cut(arg, " ")
	return addr
}

// readDotData reads a DATA section up to the lone "." line and undoes dot
// stuffing (RFC 5321 4.5.2), keeping line ends as sent.
func readDotData(br *bufio.Reader) ([]byte, error) {
	var buf bytes.Buffer
	for {
		line, err := br.ReadBytes('\n')
		if err != nil {
			return nil, err
		}
		if bytes.Equal(line, []byte(".\r\n")) || bytes.Equal(line, []byte(".\n")) {
			return buf.Bytes(), nil
		}
		if line[0] == '.' {
			line = line[1:]
		}
		buf.Write(line)
	}
}
