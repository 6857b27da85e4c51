package clamd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/avstation/avstation/scanner/engineerr"
)

// serveFake is startFake on a given TCP address ("127.0.0.1:0" for any), with
// a stop function for tests that take a clamd away and bring it back.
func serveFake(t *testing.T, hostport string, handle func(net.Conn)) (*fakeClamd, func()) {
	t.Helper()
	ln, err := net.Listen("tcp", hostport)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeClamd{addr: "tcp:" + ln.Addr().String()}
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
	stop := sync.OnceFunc(func() {
		ln.Close()
		f.mu.Lock()
		for _, c := range f.open {
			c.Close()
		}
		f.mu.Unlock()
		wg.Wait()
	})
	t.Cleanup(stop)
	return f, stop
}

// deadAddr returns a TCP address nothing listens on, as "tcp:HOST:PORT"
// and "HOST:PORT": dialing it is refused.
func deadAddr(t *testing.T) (addr, hostport string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hostport = ln.Addr().String()
	ln.Close()
	return "tcp:" + hostport, hostport
}

// counting wraps a scan reply function with a counter of streams answered.
func counting(n *atomic.Int32, reply func([]byte) string) func([]byte) string {
	return func(data []byte) string {
		n.Add(1)
		return reply(data)
	}
}

// hangUpAfterStream reads the command and the whole stream, then closes the
// connection without a reply, like a clamd that dies mid-scan.
func hangUpAfterStream(conn net.Conn) {
	br := bufio.NewReader(conn)
	if _, err := readCommand(br); err != nil {
		return
	}
	readStream(br)
}

// hangUpAtOnce closes the connection as soon as the command is in.
func hangUpAtOnce(conn net.Conn) {
	readCommand(bufio.NewReader(conn))
}

// quietAnswering answers PING and INSTREAM like answering, and takes a
// connection cut by the fake's stop without failing the test.
func quietAnswering(scanReply func([]byte) string) func(net.Conn) {
	return func(conn net.Conn) {
		br := bufio.NewReader(conn)
		cmd, err := readCommand(br)
		if err != nil {
			return
		}
		reply := "PONG\x00"
		if cmd == "INSTREAM" {
			s, err := readStream(br)
			if err != nil {
				return
			}
			reply = scanReply(s.data)
		}
		io.WriteString(conn, reply)
	}
}

// onlyReader hides every method of its reader but Read: not seekable.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

// logBuffer collects log output for assertions, safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) count(s string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Count(b.buf.String(), s)
}

// startPool runs p's health loop until the test ends and checks that it
// returns then.
func startPool(t *testing.T, p *Pool) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		p.Start(ctx)
		close(done)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Start did not return after its context ended")
		}
	})
}

func eicarInput() []byte { return []byte("X5O!P%@AP " + eicarMarker) }

// checkScan scans data from a bytes.Reader and checks the verdict.
func checkScan(t *testing.T, p *Pool, data []byte, wantFound bool) {
	t.Helper()
	res, err := p.Scan(t.Context(), bytes.NewReader(data))
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	if res.Found != wantFound {
		t.Fatalf("Found = %v, want %v (reply %q)", res.Found, wantFound, res.Raw)
	}
}

func TestNewPool(t *testing.T) {
	tests := []struct {
		name     string
		addrs    []string
		wantAddr string // "" when NewPool must fail
		wantErr  string
	}{
		{name: "nil", wantErr: "no address"},
		{name: "empty", addrs: []string{}, wantErr: "no address"},
		{name: "bad", addrs: []string{"127.0.0.1:3310", "clamd.ctl"}, wantErr: `"clamd.ctl"`},
		{name: "twice", addrs: []string{"127.0.0.1:3310", "tcp:127.0.0.1:3310"}, wantErr: "tcp:127.0.0.1:3310 given twice"},
		{name: "one", addrs: []string{"127.0.0.1:3310"}, wantAddr: "pool(tcp:127.0.0.1:3310)"},
		{
			name:     "two",
			addrs:    []string{"127.0.0.1:3310", "/run/clamav/clamd.ctl"},
			wantAddr: "pool(tcp:127.0.0.1:3310,unix:/run/clamav/clamd.ctl)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewPool(tt.addrs)
			if tt.wantAddr == "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("NewPool error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Addr() != tt.wantAddr {
				t.Errorf("Addr() = %q, want %q", p.Addr(), tt.wantAddr)
			}
			for _, s := range p.Status() {
				if !s.Up || s.LastError != "" || s.Since.IsZero() {
					t.Errorf("new member %+v, want up, no error, a Since", s)
				}
			}
		})
	}
}

func TestPoolRoundRobin(t *testing.T) {
	var addrs []string
	counts := make([]*atomic.Int32, 3)
	for i := range counts {
		counts[i] = new(atomic.Int32)
		f := startFake(t, "tcp", answering(t, fmt.Sprintf("ClamAV 1.4.6/%d", i+1), counting(counts[i], eicarReply), nil))
		addrs = append(addrs, f.addr)
	}
	p, err := NewPool(addrs)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		checkScan(t, p, fmt.Appendf(nil, "clean %d", i), false)
	}
	for i, n := range counts {
		if n.Load() != 10 {
			t.Errorf("member %d scanned %d of 30 streams, want 10", i, n.Load())
		}
	}
	v, err := p.Version(t.Context())
	if err != nil || v.Database != "1" {
		t.Errorf("Version = %+v, %v; want the first member's (database 1)", v, err)
	}
}

// TestPoolFailover: a member that refuses connections is marked down at the
// first scan it gets, the scan goes to the other member, and the health loop
// takes it back once it answers PING again.
func TestPoolFailover(t *testing.T) {
	const interval = 50 * time.Millisecond
	deadAt, hostport := deadAddr(t)
	var goodScans, backScans atomic.Int32
	good := startFake(t, "tcp", answering(t, "ClamAV 1.4.6/2", counting(&goodScans, eicarReply), nil))
	logs := &logBuffer{}
	p, err := NewPool([]string{deadAt, good.addr},
		WithHealthInterval(interval),
		WithLogger(slog.New(slog.NewTextHandler(logs, nil))),
		WithClientOptions(WithDialTimeout(time.Second)))
	if err != nil {
		t.Fatal(err)
	}
	startPool(t, p)

	for i := range 4 {
		checkScan(t, p, eicarInput(), true)
		checkScan(t, p, fmt.Appendf(nil, "clean %d", i), false)
	}
	if n := goodScans.Load(); n != 8 {
		t.Errorf("the member up scanned %d of 8 streams", n)
	}
	st := p.Status()
	if st[0].Up || !strings.Contains(st[0].LastError, "connection refused") || !st[1].Up {
		t.Fatalf("Status = %+v, want the first down with connection refused, the second up", st)
	}
	if v, err := p.Version(t.Context()); err != nil || v.Database != "2" {
		t.Errorf("Version = %+v, %v; want the member up's (database 2)", v, err)
	}

	time.Sleep(3 * interval) // PINGs fail meanwhile: no more log lines.
	if n := logs.count("msg=\"clamd down\""); n != 1 {
		t.Errorf("%d 'clamd down' log lines, want 1:\n%s", n, logs.buf.String())
	}
	if !p.Status()[0].Since.Equal(st[0].Since) {
		t.Error("Since moved while the member stayed down")
	}

	serveFake(t, hostport, answering(t, "ClamAV 1.4.6/1", counting(&backScans, eicarReply), nil))
	back := time.Now()
	for !p.Status()[0].Up {
		if time.Since(back) > 3*interval+100*time.Millisecond {
			t.Fatalf("member not back %v after it answers PING (interval %v): %+v", time.Since(back), interval, p.Status())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := logs.count("msg=\"clamd up\""); n != 1 {
		t.Errorf("%d 'clamd up' log lines, want 1:\n%s", n, logs.buf.String())
	}
	for i := range 4 {
		checkScan(t, p, fmt.Appendf(nil, "clean again %d", i), false)
	}
	if n := backScans.Load(); n != 2 {
		t.Errorf("the member back scanned %d of 4 streams, want 2", n)
	}
}

// TestPoolConnectionFailures: the first member fails each way a clamd can
// fail at the connection level; the scan goes to the second member when the
// content can be read again, and not otherwise.
func TestPoolConnectionFailures(t *testing.T) {
	content := []byte("0123456789 some content to scan")
	failures := []struct {
		name string
		// start returns the failing member's address.
		start func(t *testing.T) string
		// readsFirst: the client reads content before the failure shows.
		readsFirst bool
	}{
		{name: "refused", start: func(t *testing.T) string { a, _ := deadAddr(t); return a }},
		{name: "closed before reply", readsFirst: true, start: func(t *testing.T) string {
			return startFake(t, "tcp", hangUpAfterStream).addr
		}},
		{name: "closed at once", readsFirst: true, start: func(t *testing.T) string {
			return startFake(t, "tcp", hangUpAtOnce).addr
		}},
		{name: "protocol error", readsFirst: true, start: func(t *testing.T) string {
			// As clamd 1.4.6 answers in-flight scans while it shuts down.
			return startFake(t, "tcp", answering(t, "", func([]byte) string {
				return "PROTOCOL ERROR: ancillary data sent without FILDES. ERROR\x00"
			}, nil)).addr
		}},
	}
	inputs := []struct {
		name     string
		r        func() io.Reader
		want     []byte // what the second member must receive
		seekable bool
	}{
		{name: "seekable", r: func() io.Reader { return bytes.NewReader(content) }, want: content, seekable: true},
		{name: "seekable at offset", seekable: true, want: content[5:], r: func() io.Reader {
			r := bytes.NewReader(content)
			r.Seek(5, io.SeekStart)
			return r
		}},
		{name: "not seekable", r: func() io.Reader { return onlyReader{bytes.NewReader(content)} }, want: content},
	}
	for _, fl := range failures {
		for _, in := range inputs {
			t.Run(fl.name+"/"+in.name, func(t *testing.T) {
				streams := make(chan stream, 1)
				good := startFake(t, "tcp", answering(t, "", eicarReply, streams))
				p, err := NewPool([]string{fl.start(t), good.addr})
				if err != nil {
					t.Fatal(err)
				}
				res, err := p.Scan(t.Context(), in.r())
				if st := p.Status(); st[0].Up || st[0].LastError == "" || !st[1].Up {
					t.Errorf("Status = %+v, want the first down with its error, the second up", st)
				}
				if !in.seekable && fl.readsFirst {
					if !errors.Is(err, errNotReplayable) {
						t.Errorf("Scan error = %v, want one saying the content cannot be read again", err)
					}
					if n := good.conns.Load(); n != 0 {
						t.Errorf("the second member got %d connections, want none", n)
					}
					return
				}
				if err != nil || res.Found {
					t.Fatalf("Scan = %+v, %v; want clean from the second member", res, err)
				}
				if got := <-streams; !bytes.Equal(got.data, in.want) {
					t.Errorf("the second member got %q, want %q", got.data, in.want)
				}
			})
		}
	}
}

// TestPoolAnswersNotRetried: whatever clamd answers is about the content,
// not the member: it goes back as it is, and nothing else is asked.
func TestPoolAnswersNotRetried(t *testing.T) {
	tests := []struct {
		name      string
		reply     string
		wantFound bool
		wantErr   error
	}{
		{name: "ok", reply: "stream: OK"},
		{name: "found", reply: "stream: Eicar-Test-Signature FOUND", wantFound: true},
		{name: "size limit", reply: "INSTREAM size limit exceeded. ERROR", wantErr: ErrSizeLimit},
		{name: "error", reply: "stream: Can't allocate memory ERROR", wantErr: errReply},
		{name: "garbage", reply: "what?", wantErr: errReply},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var scans atomic.Int32
			reply := counting(&scans, func([]byte) string { return tt.reply + "\x00" })
			a := startFake(t, "tcp", answering(t, "", reply, nil))
			b := startFake(t, "tcp", answering(t, "", reply, nil))
			p, err := NewPool([]string{a.addr, b.addr})
			if err != nil {
				t.Fatal(err)
			}
			// Not seekable: the pool cannot know the size beforehand,
			// so the size limit is clamd's reply too.
			res, err := p.Scan(t.Context(), onlyReader{strings.NewReader("data")})
			checkReplyErr(t, err, tt.wantErr)
			if res.Found != tt.wantFound || res.Raw != tt.reply {
				t.Errorf("Scan = %+v, want Found %v, Raw %q", res, tt.wantFound, tt.reply)
			}
			if n := scans.Load(); n != 1 {
				t.Errorf("%d scans for one stream, want 1", n)
			}
			for _, s := range p.Status() {
				if !s.Up {
					t.Errorf("member %s down after an answer", s.Addr)
				}
			}
		})
	}
}

func TestPoolAllDown(t *testing.T) {
	t.Run("refused", func(t *testing.T) {
		a, _ := deadAddr(t)
		b, _ := deadAddr(t)
		p, err := NewPool([]string{a, b})
		if err != nil {
			t.Fatal(err)
		}
		res, err := p.Scan(t.Context(), bytes.NewReader(eicarInput()))
		if !errors.Is(err, ErrNoClamd) || res.Found {
			t.Fatalf("Scan = %+v, %v; want ErrNoClamd", res, err)
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "clamd pool: no clamd is up ("+a+": ") ||
			!strings.Contains(msg, "; "+b+": ") || strings.Count(msg, "connection refused") != 2 {
			t.Errorf("error %q does not name both members with their failure", msg)
		}
		if _, err := p.Version(t.Context()); !errors.Is(err, ErrNoClamd) {
			t.Errorf("Version error = %v, want ErrNoClamd", err)
		}
	})
	t.Run("no connection once down", func(t *testing.T) {
		a := startFake(t, "tcp", hangUpAfterStream)
		b := startFake(t, "tcp", hangUpAfterStream)
		p, err := NewPool([]string{a.addr, b.addr})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Scan(t.Context(), bytes.NewReader(eicarInput())); !errors.Is(err, ErrNoClamd) {
			t.Fatalf("Scan error = %v, want ErrNoClamd", err)
		}
		if a.conns.Load() != 1 || b.conns.Load() != 1 {
			t.Errorf("connections %d and %d, want one to each", a.conns.Load(), b.conns.Load())
		}
		for _, in := range []io.Reader{bytes.NewReader(eicarInput()), onlyReader{bytes.NewReader(eicarInput())}} {
			start := time.Now()
			res, err := p.Scan(t.Context(), in)
			if !errors.Is(err, ErrNoClamd) || res.Found || res.Raw != "" {
				t.Errorf("Scan = %+v, %v; want ErrNoClamd", res, err)
			}
			if d := time.Since(start); d > 100*time.Millisecond {
				t.Errorf("Scan took %v with every member down", d)
			}
		}
		if _, err := p.Version(t.Context()); !errors.Is(err, ErrNoClamd) {
			t.Errorf("Version error = %v, want ErrNoClamd", err)
		}
		if a.conns.Load() != 1 || b.conns.Load() != 1 {
			t.Errorf("connections %d and %d after the members were down, want none more", a.conns.Load(), b.conns.Load())
		}
	})
}

// TestPoolCallerDeadline: the caller's deadline is not the member's fault.
func TestPoolCallerDeadline(t *testing.T) {
	closed := make(chan error, 1)
	slow := startFake(t, "tcp", hanging(closed))
	var scans atomic.Int32
	good := startFake(t, "tcp", answering(t, "", counting(&scans, eicarReply), nil))
	p, err := NewPool([]string{slow.addr, good.addr})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := p.Scan(ctx, bytes.NewReader([]byte("data"))); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Scan error = %v, want context.DeadlineExceeded", err)
	}
	if scans.Load() != 0 {
		t.Error("the scan went to the other member after the caller's deadline")
	}
	if st := p.Status(); !st[0].Up {
		t.Errorf("member down after the caller's deadline: %+v", st[0])
	}
}

func TestPoolSizeLimit(t *testing.T) {
	const clamdLimit = 1000 // the fake's StreamMaxLength
	refuse := func(data []byte) string {
		if len(data) > clamdLimit {
			return "INSTREAM size limit exceeded. ERROR\x00"
		}
		return "stream: OK\x00"
	}
	type step struct {
		size     int
		seekable bool
		wantSent bool // whether clamd gets the stream
		wantErr  error
	}
	tests := []struct {
		name  string
		opts  []PoolOption
		steps []step
	}{
		{
			name: "configured",
			opts: []PoolOption{WithStreamMax(clamdLimit)},
			steps: []step{
				{size: 1001, seekable: true, wantErr: ErrSizeLimit},
				{size: 1000, seekable: true, wantSent: true},
				// Size unknown: clamd decides.
				{size: 1001, wantSent: true, wantErr: ErrSizeLimit},
			},
		},
		{
			name: "learned",
			steps: []step{
				{size: 2000, seekable: true, wantSent: true, wantErr: ErrSizeLimit},
				{size: 2000, seekable: true, wantErr: ErrSizeLimit},
				{size: 3000, seekable: true, wantErr: ErrSizeLimit},
				{size: 1500, seekable: true, wantSent: true, wantErr: ErrSizeLimit},
				{size: 1600, seekable: true, wantErr: ErrSizeLimit},
				{size: 1499, seekable: true, wantSent: true, wantErr: ErrSizeLimit},
				{size: 1000, seekable: true, wantSent: true},
				{size: 1000, seekable: true, wantSent: true},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var scans atomic.Int32
			f := startFake(t, "tcp", answering(t, "", counting(&scans, refuse), nil))
			p, err := NewPool([]string{f.addr}, tt.opts...)
			if err != nil {
				t.Fatal(err)
			}
			for i, s := range tt.steps {
				before := f.conns.Load()
				var r io.Reader = bytes.NewReader(make([]byte, s.size))
				if !s.seekable {
					r = onlyReader{r}
				}
				_, err := p.Scan(t.Context(), r)
				if !errors.Is(err, s.wantErr) || (s.wantErr == nil) != (err == nil) {
					t.Errorf("step %d (%d bytes): error %v, want %v", i, s.size, err, s.wantErr)
				}
				if sent := f.conns.Load() > before; sent != s.wantSent {
					t.Errorf("step %d (%d bytes): sent %v, want %v", i, s.size, sent, s.wantSent)
				}
			}
			if !p.Status()[0].Up {
				t.Error("member down after size refusals")
			}
		})
	}
}

// TestPoolConcurrent scans from several goroutines while one member goes
// away: every scan gets the right answer from the other.
func TestPoolConcurrent(t *testing.T) {
	a, stopA := serveFake(t, "127.0.0.1:0", quietAnswering(eicarReply))
	b := startFake(t, "tcp", answering(t, "", eicarReply, nil))
	p, err := NewPool([]string{a.addr, b.addr}, WithHealthInterval(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	startPool(t, p)
	const workers, perWorker = 8, 50
	var done atomic.Int32
	var stopOnce sync.Once
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				infected := i%3 == 0
				data := fmt.Appendf(nil, "clean %d/%d", w, i)
				if infected {
					data = eicarInput()
				}
				res, err := p.Scan(t.Context(), bytes.NewReader(data))
				if err != nil {
					t.Errorf("scan %d/%d: %v", w, i, err)
					continue
				}
				if res.Found != infected {
					t.Errorf("scan %d/%d: Found %v, want %v", w, i, res.Found, infected)
				}
				if done.Add(1) == workers*perWorker/4 {
					stopOnce.Do(func() { go stopA() })
				}
			}
		})
	}
	wg.Wait()
	if st := p.Status(); st[0].Up || !st[1].Up {
		t.Errorf("Status = %+v, want the stopped member down", st)
	}
}

// TestPoolStartStops: Start returns when its context ends and leaves no
// goroutine behind, with PINGs under way.
func TestPoolStartStops(t *testing.T) {
	dead, _ := deadAddr(t)
	slow := startFake(t, "tcp", hanging(make(chan error, 100)))
	p, err := NewPool([]string{dead, slow.addr}, WithHealthInterval(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	// Both down: the health loop PINGs them, the slow one never answers.
	for _, m := range p.members {
		p.markDown(m, errors.New("test"))
	}

	before := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		p.Start(ctx)
		close(done)
	}()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Start did not return after its context ended")
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines after Start returned, %d before", runtime.NumGoroutine(), before)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// neverAnswering accepts and then neither reads nor writes, like a wedged
// clamd, until the test ends.
func neverAnswering(t *testing.T) func(net.Conn) {
	return func(net.Conn) { <-t.Context().Done() }
}

// TestPoolHungMember: a member that accepts connections and never answers
// is found out by the probe PING within probe-after plus the ping timeout,
// not the caller's deadline; the scan goes to the other member, the hung one
// is down (with a timeout error), and later scans never wait on it.
func TestPoolHungMember(t *testing.T) {
	// ping as the default: streams of MiBs under -race on a loaded machine
	// keep the fake busy, and its PONG must still count.
	const probe, ping = 200 * time.Millisecond, DefaultPingTimeout
	for _, tt := range []struct {
		name string
		size int // large: the writes block as well as the reply
		n    int // scans at once (few large ones: a loaded test machine must not starve the fake's PONG)
	}{{"small", 1000, 8}, {"large", 4 << 20, 2}} {
		t.Run(tt.name, func(t *testing.T) {
			hung := startFake(t, "tcp", neverAnswering(t))
			var scans atomic.Int32
			good := startFake(t, "tcp", quietAnswering(counting(&scans, eicarReply)))
			p, err := NewPool([]string{hung.addr, good.addr}, WithHealthInterval(50*time.Millisecond),
				WithClientOptions(WithProbeAfter(probe), WithPingTimeout(ping)))
			if err != nil {
				t.Fatal(err)
			}
			startPool(t, p)
			data := bytes.Repeat([]byte("x"), tt.size)
			n := int32(tt.n)
			var wg sync.WaitGroup
			start := time.Now()
			for range tt.n {
				wg.Go(func() {
					ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
					defer cancel()
					if res, err := p.Scan(ctx, bytes.NewReader(data)); err != nil || res.Found {
						t.Errorf("Scan = %+v, %v; want clean from the member up", res, err)
					}
				})
			}
			wg.Wait()
			// One probe round finds it out; the scans on it then move at once.
			if took := time.Since(start); took > 15*time.Second {
				t.Errorf("%d scans took %v with a hung member (probe %v, ping %v)", n, took, probe, ping)
			}
			if scans.Load() != n {
				t.Errorf("the member up scanned %d of %d", scans.Load(), n)
			}
			st := p.Status()
			if st[0].Up || !strings.Contains(st[0].LastError, "PING") && !strings.Contains(st[0].LastError, "no PONG") || !st[1].Up {
				t.Fatalf("Status = %+v, want the hung member down for no PONG, the other up", st)
			}
			time.Sleep(200 * time.Millisecond) // health PINGs fail meanwhile
			if p.Status()[0].Up {
				t.Fatal("the hung member was taken back: its PING never gets PONG")
			}
			checkScan(t, p, []byte("after"), false)
			if scans.Load() != n+1 {
				t.Error("a scan after the hung member was found out did not go to the member up")
			}
		})
	}
}

// TestErrorKinds: every failure of a command carries its kind for the
// station's metrics; an answer about the content has none.
func TestErrorKinds(t *testing.T) {
	dead, _ := deadAddr(t)
	reply := func(r string) string {
		return startFake(t, "tcp", answering(t, "", func([]byte) string { return r }, nil)).addr
	}
	for _, tt := range []struct {
		name string
		addr string
		want error // nil: no kind
	}{
		{"refused", dead, engineerr.ErrUnreachable},
		{"no socket", "unix:" + filepath.Join(t.TempDir(), "none.ctl"), engineerr.ErrUnreachable},
		{"closed before reply", startFake(t, "tcp", hangUpAfterStream).addr, engineerr.ErrUnreachable},
		{"never answers", startFake(t, "tcp", neverAnswering(t)).addr, engineerr.ErrTimeout},
		{"protocol error", reply("PROTOCOL ERROR: ancillary data sent without FILDES. ERROR\x00"), engineerr.ErrProtocol},
		{"garbage", reply("hello there\x00"), engineerr.ErrProtocol},
		{"size limit", reply("INSTREAM size limit exceeded. ERROR\x00"), engineerr.ErrLimit},
		{"clamd error", reply("stream: Can't allocate memory ERROR\x00"), nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.addr, WithProbeAfter(50*time.Millisecond), WithPingTimeout(50*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Scan(t.Context(), strings.NewReader("data"))
			if err == nil {
				t.Fatal("Scan succeeded")
			}
			for _, k := range []error{engineerr.ErrTimeout, engineerr.ErrUnreachable, engineerr.ErrProtocol, engineerr.ErrLimit} {
				if got := errors.Is(err, k); got != (k == tt.want) {
					t.Errorf("%v: errors.Is(%v) = %v", err, k, got)
				}
			}
		})
	}
}

// TestPoolLastMemberIsWaitedFor: a clamd that misses its PINGs but answers
// the scan in the end (a starved machine) is not given up on when it is the
// only one up: the scan waits for it, within the caller's deadline.
func TestPoolLastMemberIsWaitedFor(t *testing.T) {
	slow := startFake(t, "tcp", func(conn net.Conn) {
		br := bufio.NewReader(conn)
		cmd, err := readCommand(br)
		if err != nil {
			return
		}
		if cmd != "INSTREAM" {
			<-t.Context().Done() // no PONG, ever
			return
		}
		if _, err := readStream(br); err != nil {
			return
		}
		time.Sleep(400 * time.Millisecond) // past probe-after plus the ping timeout
		io.WriteString(conn, "stream: OK\x00")
	})
	p, err := NewPool([]string{slow.addr}, WithHealthInterval(time.Hour),
		WithClientOptions(WithProbeAfter(50*time.Millisecond), WithPingTimeout(50*time.Millisecond)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if res, err := p.Scan(ctx, bytes.NewReader([]byte("hello"))); err != nil || res.Found {
		t.Fatalf("Scan = %+v, %v; want the only clamd's clean answer", res, err)
	}
}
