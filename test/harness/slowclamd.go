package harness

import (
	"bytes"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// StartSlowClamd listens on 127.0.0.1 in front of a real clamd (its
// "tcp:HOST:PORT" address) and passes everything through, except that the
// answer to an INSTREAM scan is held back for delay: a clamd busy with a
// long scan. PING and VERSION are answered at once, as a busy clamd does
// (from its main thread), so the station does not take it for a hung one.
func StartSlowClamd(t testing.TB, clamdAddr string, delay time.Duration) *SlowClamd {
	t.Helper()
	upstream := strings.TrimPrefix(clamdAddr, "tcp:")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("harness: slow clamd: %v", err)
	}
	sc := &SlowClamd{Addr: "tcp:" + ln.Addr().String()}
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				sc.proxy(c, upstream, delay, done)
			}()
		}
	}()
	t.Cleanup(func() {
		close(done)
		ln.Close()
		wg.Wait()
	})
	return sc
}

// SlowClamd is what StartSlowClamd started.
type SlowClamd struct {
	Addr  string // "tcp:127.0.0.1:PORT", the form scanner configs take
	scans atomic.Int64
}

// Scans is how many scan answers it has held back so far.
func (sc *SlowClamd) Scans() int64 { return sc.scans.Load() }

func (sc *SlowClamd) proxy(client net.Conn, upstream string, delay time.Duration, done <-chan struct{}) {
	defer client.Close()
	server, err := net.DialTimeout("tcp", upstream, 5*time.Second)
	if err != nil {
		return
	}
	defer server.Close()
	// Scans sent and not yet answered: one connection may carry many, in
	// clamd's IDSESSION mode, and each answer is held back.
	var pending atomic.Int64
	go func() {
		buf := make([]byte, 32*1024)
		for {
			n, err := client.Read(buf)
			if n > 0 {
				pending.Add(int64(bytes.Count(buf[:n], []byte("INSTREAM"))))
				if _, werr := server.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				// Half-close: clamd still answers what it was sent.
				if tc, ok := server.(*net.TCPConn); ok {
					_ = tc.CloseWrite()
				}
				return
			}
		}
	}()
	buf := make([]byte, 32*1024)
	for {
		n, err := server.Read(buf)
		if n > 0 && pending.Load() > 0 {
			pending.Add(-1)
			sc.scans.Add(1)
			select {
			case <-time.After(delay):
			case <-done:
				return
			}
		}
		if n > 0 {
			if _, err := client.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
