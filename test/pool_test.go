package test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/avstation/avstation/test/harness"
)

// stationUp reads avmilter_station_up for one station from the milter's
// metrics; -1 when the series is missing.
func stationUp(t *testing.T, m *harness.Daemon, station string) float64 {
	t.Helper()
	return seriesValue(m.Metrics(t, m.MetricsAddr), "avmilter_station_up", map[string]string{"station": station})
}

// seriesValue is metricValue, -1 when the series is missing.
func seriesValue(text, name string, labels map[string]string) float64 {
	if v, ok := metricValue(text, name, labels); ok {
		return v
	}
	return -1
}

// waitStationUp waits until the station's gauge is want and returns how
// long that took.
func waitStationUp(t *testing.T, m *harness.Daemon, station string, want float64, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for stationUp(t, m, station) != want {
		if time.Since(start) > timeout {
			t.Fatalf("avmilter_station_up{station=%q} is %v after %v, want %v\n%s", station, stationUp(t, m, station), timeout, want, m.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start)
}

var scannedClean = regexp.MustCompile(`msg="job scanned".*status=clean`)

// cleanJobs counts the clean jobs a station logged.
func cleanJobs(st *harness.Daemon) int { return len(scannedClean.FindAllString(st.Log(), -1)) }

// TestPoolFailover: two stations, one with its clamd stopped. Every posting
// is scanned by the healthy one; the dead one shows avmilter_station_up 0
// within one probe interval; when its clamd returns it takes work again.
func TestPoolFailover(t *testing.T) {
	const probe = 2 * time.Second
	clamdA, clamdB := harness.StartClamd(t), harness.StartClamd(t)
	sink := harness.StartSink(t)
	secret := harness.WriteSecret(t, "pool-failover-secret")
	stA := harness.StartStation(t, bin.Station, "", clamdA.Addr, secret)
	stB := harness.StartStation(t, bin.Station, "", clamdB.Addr, secret)
	urlA, urlB := "http://"+stA.Addr, "http://"+stB.Addr
	m := harness.StartMilter(t, bin.Milter, harness.MilterOptions{
		Station: urlA, Stations: []string{urlB}, Secret: secret, Metrics: true,
		Extra: fmt.Sprintf("station_probe: %v\n", probe),
	})
	c := newChain(t, sink, m)
	waitStationUp(t, m, urlA, 1, 10*time.Second)

	t.Run("both up: both take work", func(t *testing.T) {
		for i := range 6 {
			s := fmt.Sprintf("pool both %d", i)
			wantCode(t, c.send(t, listRcp, s), 250)
			c.delivered(t, s)
		}
		if cleanJobs(stA) == 0 || cleanJobs(stB) == 0 {
			t.Errorf("6 postings went %d to A and %d to B; want both used", cleanJobs(stA), cleanJobs(stB))
		}
	})

	clamdA.Stop()
	stopped := time.Now()
	t.Run("clamd stopped: up 0 within one probe interval", func(t *testing.T) {
		waitStationUp(t, m, urlA, 0, 3*probe)
		// The probe runs every interval; /readyz answers from a check at
		// most a second old.
		if took := time.Since(stopped); took > probe+1500*time.Millisecond {
			t.Errorf("avmilter_station_up went 0 %v after clamd stopped; probe interval %v", took, probe)
		}
	})
	t.Run("every posting scanned by the healthy station", func(t *testing.T) {
		a, b := cleanJobs(stA), cleanJobs(stB)
		for i := range 5 {
			s := fmt.Sprintf("pool one dead %d", i)
			wantCode(t, c.send(t, listRcp, s), 250)
			if d := c.delivered(t, s); !strings.HasPrefix(strings.Join(header(d, "X-Virus-Status"), ""), "Clean") {
				t.Errorf("%s delivered with X-Virus-Status %q", s, header(d, "X-Virus-Status"))
			}
		}
		if cleanJobs(stA) != a || cleanJobs(stB) != b+5 {
			t.Errorf("with A's clamd down: A scanned %d, B %d; want 0 and 5", cleanJobs(stA)-a, cleanJobs(stB)-b)
		}
	})
	t.Run("clamd back: the station takes work again", func(t *testing.T) {
		clamdA.Restart(t)
		waitStationUp(t, m, urlA, 1, 3*probe+10*time.Second) // the station's clamd pool re-PINGs too
		a := cleanJobs(stA)
		for i := range 6 {
			s := fmt.Sprintf("pool back %d", i)
			wantCode(t, c.send(t, listRcp, s), 250)
			c.delivered(t, s)
		}
		if cleanJobs(stA) == a {
			t.Errorf("station A took no work after its clamd returned\n%s", m.Log())
		}
	})
	metrics := m.Metrics(t, m.MetricsAddr)
	for _, series := range []string{
		fmt.Sprintf(`avmilter_station_in_flight{station=%q} 0`, urlA),
		fmt.Sprintf(`avmilter_station_job_seconds_count{station=%q}`, urlB),
		`avmilter_station_failures_total{reason="connect",station=`,
	} {
		if !strings.Contains(metrics, series) {
			t.Errorf("metrics lack %s", series)
		}
	}
}

// TestKeyRotationWhileMailFlows: a primary moves from key A to key B (new
// secret file, SIGHUP) while postings flow; none fails, and the station's
// metrics say which key signed what. A primary with a key the station does
// not know is refused with a log line naming the key id.
func TestKeyRotationWhileMailFlows(t *testing.T) {
	clamd := harness.StartClamd(t)
	sink := harness.StartSink(t)
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	stationSecret := write("station", "A word-of-key-a\nB word-of-key-b\n")
	milterSecret := write("milter", "A word-of-key-a\n")
	st := harness.StartStation(t, bin.Station, "", clamd.Addr, stationSecret)
	m := harness.StartMilter(t, bin.Milter, harness.MilterOptions{Station: "http://" + st.Addr, Secret: milterSecret,
		Extra: "primary_id: lists-1\n"})
	c := newChain(t, sink, m)

	const n = 30
	var wg sync.WaitGroup
	results := make([]int, n)
	wg.Go(func() {
		for i := range n {
			s := fmt.Sprintf("rotation %d", i)
			r := harness.Send(t, c.postfix.SMTPAddr, sender, []string{listRcp}, harness.BuildMessage(sender, listRcp, s, "hello\r\n"))
			results[i] = r.Code
			time.Sleep(30 * time.Millisecond)
		}
	})
	time.Sleep(500 * time.Millisecond)
	write("milter", "B word-of-key-b\nA word-of-key-a\n")
	if err := m.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	m.WaitLog(t, 10*time.Second, "secret file reloaded", "signing_key=B")
	wg.Wait()
	for i, code := range results {
		if code != 250 {
			t.Errorf("posting %d during the rotation: %d", i, code)
		}
		c.delivered(t, fmt.Sprintf("rotation %d", i))
	}
	metrics := st.Metrics(t, st.Addr)
	a := seriesValue(metrics, "avstation_primary_jobs_total", map[string]string{"key_id": "A", "primary": "lists-1"})
	b := seriesValue(metrics, "avstation_primary_jobs_total", map[string]string{"key_id": "B", "primary": "lists-1"})
	if a < 1 || b < 1 || a+b < n {
		t.Errorf("jobs by key: A %v, B %v; want both, %d in all", a, b, n)
	}
	st.WaitLog(t, time.Second, `msg="job scanned"`, "primary=lists-1", "key_id=B")

	t.Run("unknown key id refused and named", func(t *testing.T) {
		other := write("other", "C word-of-key-c\n")
		m2 := harness.StartMilter(t, bin.Milter, harness.MilterOptions{Station: "http://" + st.Addr, Secret: other})
		c2 := newChain(t, sink, m2)
		wantCode(t, c2.send(t, listRcp, "rotation unknown key"), 451)
		st.WaitLog(t, 5*time.Second, "invalid job signature", `reason="unknown key"`, "key_id=C")
	})
}

// TestPoolHungStation: of two real stations one is frozen (SIGSTOP: the
// kernel still takes its connections, nothing answers, not even /livez).
// Every posting is delivered, none waits anything like the old share of
// scan_timeout (10s of the harness's 20s): the one that meets the frozen
// station pays station_probe_after + station_probe_timeout; the milter
// logs the station hung and marks it down; thawed, it takes work again
// (the probe, every station_probe, brings it back).
func TestPoolHungStation(t *testing.T) {
	const after, timeout = time.Second, time.Second
	clamd := harness.StartClamd(t)
	sink := harness.StartSink(t)
	secret := harness.WriteSecret(t, "pool-hung-secret")
	stA := harness.StartStation(t, bin.Station, "", clamd.Addr, secret)
	stB := harness.StartStation(t, bin.Station, "", clamd.Addr, secret)
	urlA := "http://" + stA.Addr
	m := harness.StartMilter(t, bin.Milter, harness.MilterOptions{
		Station: urlA, Stations: []string{"http://" + stB.Addr}, Secret: secret, Metrics: true,
		Extra: fmt.Sprintf("station_probe: 5s\nstation_probe_after: %v\nstation_probe_timeout: %v\n", after, timeout),
	})
	c := newChain(t, sink, m)
	waitStationUp(t, m, urlA, 1, 10*time.Second)
	wantCode(t, c.send(t, listRcp, "hung warm-up"), 250)
	c.delivered(t, "hung warm-up")

	if err := stA.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stA.Signal(syscall.SIGCONT) })
	var slowest time.Duration
	for i := range 6 {
		s := fmt.Sprintf("hung station %d", i)
		start := time.Now()
		wantCode(t, c.send(t, listRcp, s), 250)
		slowest = max(slowest, time.Since(start))
		c.delivered(t, s)
	}
	t.Logf("slowest posting with station A frozen: %v (station_probe_after %v + station_probe_timeout %v)", slowest, after, timeout)
	if most := after + timeout + 5*time.Second; slowest > most {
		t.Errorf("a posting took %v with one station hung; want at most %v, well inside half of scan_timeout", slowest, most)
	}
	m.WaitLog(t, time.Second, "station hung", "station="+urlA, "job_id=")
	// Marked down by that job (reason=hung) or by the probe of /readyz,
	// whichever met the frozen station first.
	m.WaitLog(t, time.Second, "station marked down", "station="+urlA)
	if got := seriesValue(m.Metrics(t, m.MetricsAddr), "avmilter_station_failures_total", map[string]string{"station": urlA, "reason": "hung"}); got < 1 {
		t.Errorf("avmilter_station_failures_total{reason=hung} for the frozen station = %v, want at least 1", got)
	}
	if stationUp(t, m, urlA) != 0 {
		t.Errorf("the frozen station is not marked down")
	}

	if err := stA.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitStationUp(t, m, urlA, 1, 15*time.Second)
	a := cleanJobs(stA)
	for i := range 6 {
		s := fmt.Sprintf("hung thawed %d", i)
		wantCode(t, c.send(t, listRcp, s), 250)
		c.delivered(t, s)
	}
	if cleanJobs(stA) == a {
		t.Errorf("station A took no work after it was thawed\n%s", m.Log())
	}
}
