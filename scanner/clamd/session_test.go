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
	"sync"
	"testing"
	"time"

	"github.com/avstation/avstation/scanner/engineerr"
	"github.com/avstation/avstation/test/harness"
)

// sessions serves IDSESSION like clamd: numbered replies to each INSTREAM
// until END or the connection closes. reply may rewrite a reply (its
// number included) or return "" to close the session instead of answering.
func sessions(t testing.TB, reply func(id int, data []byte) string) func(net.Conn) {
	return func(conn net.Conn) {
		br := bufio.NewReader(conn)
		if cmd, err := readCommand(br); err != nil || cmd != "IDSESSION" {
			if err == nil {
				t.Errorf("fake clamd: first command %q, want IDSESSION", cmd)
			}
			return
		}
		for id := 1; ; id++ {
			cmd, err := readCommand(br)
			if err != nil || cmd == "END" {
				return
			}
			if cmd != "INSTREAM" {
				t.Errorf("fake clamd: %q in a session", cmd)
				return
			}
			s, err := readStream(br)
			if err != nil {
				return
			}
			r := reply(id, s.data)
			if r == "" {
				return
			}
			if _, err := io.WriteString(conn, r); err != nil {
				return
			}
		}
	}
}

func numbered(id int, data []byte) string { return fmt.Sprintf("%d: %s", id, eicarReply(data)) }

// TestSessions: scans share one IDSESSION connection, each reply read as
// its own; what cannot be trusted to be in step closes the session.
func TestSessions(t *testing.T) {
	eicar := []byte("X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + eicarMarker + "!$H+H*")
	t.Run("one connection for many scans", func(t *testing.T) {
		f := startFake(t, "tcp", sessions(t, numbered))
		c, _ := New(f.addr, WithSessions(4))
		for i := range 10 {
			body := []byte("clean")
			if i%3 == 0 {
				body = eicar
			}
			res, err := c.Scan(context.Background(), bytes.NewReader(body))
			if err != nil || res.Found != (i%3 == 0) {
				t.Fatalf("scan %d: %+v, %v", i, res, err)
			}
		}
		if n := f.conns.Load(); n != 1 {
			t.Errorf("%d connections for 10 scans, want 1", n)
		}
	})
	t.Run("a reply to another command", func(t *testing.T) {
		f := startFake(t, "tcp", sessions(t, func(id int, data []byte) string { return numbered(id+1, data) }))
		c, _ := New(f.addr, WithSessions(4))
		for range 2 {
			_, err := c.Scan(context.Background(), strings.NewReader("clean"))
			if !errors.Is(err, engineerr.ErrProtocol) {
				t.Fatalf("a reply out of step: %v, want a protocol error", err)
			}
		}
		if n := f.conns.Load(); n != 2 {
			t.Errorf("%d connections, want 2: a session out of step is not used again", n)
		}
	})
	t.Run("an error reply", func(t *testing.T) {
		f := startFake(t, "tcp", sessions(t, func(id int, data []byte) string {
			if bytes.Contains(data, []byte("big")) {
				return fmt.Sprintf("%d: INSTREAM size limit exceeded. ERROR\x00", id)
			}
			return numbered(id, data)
		}))
		c, _ := New(f.addr, WithSessions(4))
		if _, err := c.Scan(context.Background(), strings.NewReader("big")); !errors.Is(err, ErrSizeLimit) {
			t.Fatalf("size limit: %v", err)
		}
		if res, err := c.Scan(context.Background(), strings.NewReader("clean")); err != nil || res.Found {
			t.Fatalf("next scan: %+v, %v", res, err)
		}
		if n := f.conns.Load(); n != 2 {
			t.Errorf("%d connections, want 2: the session of an error is closed", n)
		}
	})
	t.Run("clamd closed the kept session", func(t *testing.T) {
		f := startFake(t, "tcp", sessions(t, func(id int, data []byte) string {
			if id > 1 {
				return "" // as clamd's IdleTimeout: closes without a word
			}
			return numbered(id, data)
		}))
		c, _ := New(f.addr, WithSessions(4))
		for i := range 3 {
			// Through a pool's replay, as the station scans: a session
			// found closed is retried on a new one.
			in, _ := newReplay(bytes.NewReader(eicar))
			res, err := c.Scan(context.Background(), in)
			if err != nil || !res.Found {
				t.Fatalf("scan %d: %+v, %v", i, res, err)
			}
			time.Sleep(10 * time.Millisecond) // the FIN arrives
		}
	})
	t.Run("a cancelled scan", func(t *testing.T) {
		hold := make(chan struct{})
		f := startFake(t, "tcp", sessions(t, func(id int, data []byte) string {
			if bytes.Contains(data, []byte("slow")) {
				<-hold
			}
			return numbered(id, data)
		}))
		defer close(hold)
		c, _ := New(f.addr, WithSessions(4))
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if _, err := c.Scan(ctx, strings.NewReader("slow")); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("cancelled scan: %v", err)
		}
		if res, err := c.Scan(context.Background(), strings.NewReader("clean")); err != nil || res.Found {
			t.Fatalf("next scan: %+v, %v", res, err)
		}
		if n := f.conns.Load(); n != 2 {
			t.Errorf("%d connections, want 2: a cancelled scan's session is closed", n)
		}
	})
}

// TestSessionsRealClamd: against a real clamd, scans at once over kept
// sessions each get the answer to their own content, and sessions are
// reused.
func TestSessionsRealClamd(t *testing.T) {
	cd := harness.StartClamd(t)
	c, err := New(cd.Addr, WithSessions(4))
	if err != nil {
		t.Fatal(err)
	}
	eicar := harness.EICAR()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 25 {
				infected := (g+i)%4 == 0
				body := fmt.Appendf(nil, "clean %d %d", g, i)
				if infected {
					body = eicar
				}
				res, err := c.Scan(context.Background(), bytes.NewReader(body))
				if err != nil || res.Found != infected {
					t.Errorf("goroutine %d scan %d (infected %v): %+v, %v", g, i, infected, res, err)
					return
				}
			}
		})
	}
	wg.Wait()
	c.sessMu.Lock()
	kept := len(c.idle)
	c.sessMu.Unlock()
	if kept == 0 || kept > 4 {
		t.Errorf("%d sessions kept, want 1 to 4", kept)
	}
}
