package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/avstation/avstation/test/harness"
)

// TestStationKeyRotationWhileMailFlows: the station's side of a rotation,
// with SIGHUP and no restart, while postings flow. The station adds key B
// to A; the primary moves to B; the station drops A. A secret file with an
// error on the way is refused with a log line, and the old keys stay in
// force. No posting fails, and the station's reload lines name the key
// ids in force, never a secret.
func TestStationKeyRotationWhileMailFlows(t *testing.T) {
	clamd := harness.StartClamd(t)
	sink := harness.StartSink(t)
	dir := t.TempDir()
	write := func(name, text string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	stationSecret := write("station", "A word-of-key-a\n", 0o600)
	milterSecret := write("milter", "A word-of-key-a\n", 0o600)
	st := harness.StartStation(t, bin.Station, "", clamd.Addr, stationSecret)
	m := harness.StartMilter(t, bin.Milter, harness.MilterOptions{Station: "http://" + st.Addr, Secret: milterSecret,
		Extra: "primary_id: lists-1\n"})
	c := newChain(t, sink, m)

	var stopSending atomic.Bool
	var mu sync.Mutex
	var sent []string
	var failed []string
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; !stopSending.Load(); i++ {
			s := fmt.Sprintf("station rotation %d", i)
			r := harness.Send(t, c.postfix.SMTPAddr, sender, []string{listRcp}, harness.BuildMessage(sender, listRcp, s, "hello\r\n"))
			mu.Lock()
			sent = append(sent, s)
			if r.Code != 250 {
				failed = append(failed, fmt.Sprintf("%s: %d %v", s, r.Code, r.Err))
			}
			mu.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
	})
	hup := func(d *harness.Daemon) {
		t.Helper()
		if err := d.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	// Each step waits for the last to show in a log: the station's reload,
	// or a job signed with the new key.
	st.WaitLog(t, 10*time.Second, `msg="job scanned"`, "key_id=A")

	write("station", "A word-of-key-a\nB word-of-key-b\n", 0o600)
	hup(st)
	st.WaitLog(t, 10*time.Second, "secret file reloaded", `keys="[A B]"`)

	write("milter", "B word-of-key-b\nA word-of-key-a\n", 0o600)
	hup(m)
	m.WaitLog(t, 10*time.Second, "secret file reloaded", "signing_key=B")
	st.WaitLog(t, 10*time.Second, `msg="job scanned"`, "key_id=B")

	// A file the station must not take (readable by others, and with a
	// key no primary has): refused, the ring A B stays, and mail signed
	// with B goes on.
	write("station", "C word-of-key-c\n", 0o644)
	hup(st)
	st.WaitLog(t, 10*time.Second, "secret file not reloaded; the old keys stay in force", "chmod 600")
	waitMoreJobs(t, st, "key_id=B", 2)

	write("station", "B word-of-key-b\n", 0o600)
	hup(st)
	st.WaitLog(t, 10*time.Second, "secret file reloaded", "keys=[B]")
	// A few postings with the station on B alone.
	waitMoreJobs(t, st, "key_id=B", 5)
	stopSending.Store(true)
	wg.Wait()

	if len(failed) > 0 {
		t.Errorf("%d of %d postings failed during the rotation: %v", len(failed), len(sent), failed)
	}
	for _, s := range sent {
		c.delivered(t, s)
	}
	for _, word := range []string{"word-of-key-a", "word-of-key-b", "word-of-key-c"} {
		if strings.Contains(st.Log(), word) {
			t.Errorf("the station's log shows the secret %q", word)
		}
	}
	t.Logf("%d postings through the rotation, none failed", len(sent))

	t.Run("key A refused after it was dropped", func(t *testing.T) {
		old := write("old", "A word-of-key-a\n", 0o600)
		m2 := harness.StartMilter(t, bin.Milter, harness.MilterOptions{Station: "http://" + st.Addr, Secret: old})
		c2 := newChain(t, sink, m2)
		wantCode(t, c2.send(t, listRcp, "station rotation old key"), 451)
		st.WaitLog(t, 5*time.Second, "invalid job signature", `reason="unknown key"`, "key_id=A")
	})
}

// waitMoreJobs waits until the station has scanned n more jobs whose log
// line has sub than it had when called.
func waitMoreJobs(t *testing.T, st *harness.Daemon, sub string, n int) {
	t.Helper()
	count := func() int {
		k := 0
		for _, line := range strings.Split(st.Log(), "\n") {
			if strings.Contains(line, `msg="job scanned"`) && strings.Contains(line, sub) {
				k++
			}
		}
		return k
	}
	want := count() + n
	deadline := time.Now().Add(30 * time.Second)
	for count() < want {
		if time.Now().After(deadline) {
			t.Fatalf("the station scanned %d jobs with %s in 30s, want %d\n%s", count(), sub, want, st.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
