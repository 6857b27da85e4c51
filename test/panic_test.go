package test

import (
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/avstation/avstation/test/harness"
)

// panicTrigger is internal/daemon's PanicTrigger (avtest builds only).
const panicTrigger = "AVTEST-" + "PANIC-NOW"

// decoderPanicTrigger is scanner/archive's DecoderPanicTrigger (avtest
// builds only): a zip member named with it makes the decoder panic.
const decoderPanicTrigger = "AVTEST-" + "DECODER-PANIC"

// avtest is the daemons built with -tags avtest, once for the tests that
// need them; TestMain removes dir.
var avtest struct {
	once sync.Once
	bin  harness.Binaries
	dir  string
	err  error
}

func avtestDaemons(t *testing.T) harness.Binaries {
	t.Helper()
	avtest.once.Do(func() {
		if avtest.dir, avtest.err = os.MkdirTemp("", "avstation-avtest-"); avtest.err == nil {
			avtest.bin, avtest.err = harness.BuildDaemons("..", avtest.dir, "avtest")
		}
	})
	if avtest.err != nil {
		t.Fatal(avtest.err)
	}
	return avtest.bin
}

// TestPanickingEngineInProcess: an engine, then an archive decoder, that
// panics inside avmilter (the in-process scanner), through real Postfix and
// clamd: that message gets 451, the daemon is still up, and the next
// message is scanned as usual.
func TestPanickingEngineInProcess(t *testing.T) {
	tagged := avtestDaemons(t)
	clamd := harness.StartClamd(t)
	sink := harness.StartSink(t)
	c := newChain(t, sink, harness.StartMilter(t, tagged.Milter, harness.MilterOptions{Clamd: clamd.Addr, Metrics: true}))

	r := c.send(t, listRcp, "the engine panics", harness.Attachment{Name: "boom.txt", ContentType: "text/plain", Data: []byte(panicTrigger + "\n")})
	wantCode(t, r, 451, "4.7.1")
	line := c.milter.WaitLog(t, 5*time.Second, "message scanned", "outcome=station-failure", "action=tempfail")
	if !strings.Contains(line, "panic") {
		t.Errorf("the decision line does not say it was a panic:\n%s", line)
	}
	c.milter.WaitLog(t, 5*time.Second, "avtest: injected panic", "stack=")

	// An archive decoder's panic, in-process: the same path.
	zipped := zipOf(t, decoderPanicTrigger+".txt", []byte("minutes\n"))
	wantCode(t, c.send(t, listRcp, "the decoder panics", harness.Attachment{Name: "m.zip", ContentType: "application/zip", Data: zipped}), 451, "4.7.1")
	c.milter.WaitLog(t, 5*time.Second, "avtest: injected archive decoder panic", "stack=", "archive.(*walker).member")

	wantCode(t, c.send(t, listRcp, "after the panic"), 250)
	if got := header(c.delivered(t, "after the panic"), "X-Virus-Status"); len(got) != 1 || got[0] != "Clean" {
		t.Errorf("X-Virus-Status = %q after the panic", got)
	}
	wantCode(t, c.send(t, listRcp, "eicar after the panic", eicarAttachment()), 550, "'Eicar")
	m := c.milter.Metrics(t, c.milter.MetricsAddr)
	if !strings.Contains(m, "avmilter_panics_total") {
		t.Errorf("no avmilter_panics_total:\n%s", grep(m, "avmilter_panics"))
	}
}

// TestPanickingDecoderAtStation: the zip decoder panics in a station's
// scan (avtest build), through real Postfix, avmilter and clamd. That
// message gets 451 (station-failure), the station logs the panic once with
// its stack and the job id avmilter logged, counts it in
// avstation_panics_total{where="scan"}, and the next messages are scanned
// as usual.
//
//	go test ./test -run TestPanickingDecoderAtStation -v
func TestPanickingDecoderAtStation(t *testing.T) {
	tagged := avtestDaemons(t)
	clamd := harness.StartClamd(t)
	sink := harness.StartSink(t)
	secret := harness.WriteSecret(t, "decoder-panic-secret")
	station := harness.StartStation(t, tagged.Station, "", clamd.Addr, secret)
	c := newChain(t, sink, harness.StartMilter(t, tagged.Milter, harness.MilterOptions{Station: "http://" + station.Addr, Secret: secret}))

	zipped := zipOf(t, "docs/"+decoderPanicTrigger+".txt", []byte("minutes\n"))
	r := c.send(t, listRcp, "the decoder panics", harness.Attachment{Name: "minutes.zip", ContentType: "application/zip", Data: zipped})
	wantCode(t, r, 451, "4.7.1")
	line := c.milter.WaitLog(t, 5*time.Second, "message scanned", "outcome=station-failure", "action=tempfail")
	jobID := field(line, "job_id")
	if jobID == "" {
		t.Fatalf("no job_id in the decision line:\n%s", line)
	}
	panicLine := station.WaitLog(t, 5*time.Second, "panic recovered", "where=scan", "job_id="+jobID)
	if !strings.Contains(panicLine, "avtest: injected archive decoder panic") || !strings.Contains(panicLine, "stack=") ||
		!strings.Contains(panicLine, "archive.(*walker).member") {
		t.Errorf("the panic line lacks the panic or its stack:\n%s", panicLine)
	}
	if n := strings.Count(station.Log(), "panic recovered"); n != 1 {
		t.Errorf("%d panic lines in the station's log, want 1", n)
	}
	if got := gaugeLabel(t, station.Metrics(t, station.Addr), "avstation_panics_total", `where="scan"`); got != 1 {
		t.Errorf(`avstation_panics_total{where="scan"} = %v, want 1`, got)
	}
	c.waitNotDelivered(t, "the decoder panics")

	// The station is up and scans the next messages, zips included.
	wantCode(t, c.send(t, listRcp, "a zip after the panic", harness.Attachment{Name: "notes.zip", ContentType: "application/zip",
		Data: zipOf(t, "notes.txt", []byte("nothing\n"))}), 250)
	if got := header(c.delivered(t, "a zip after the panic"), "X-Virus-Status"); len(got) != 1 || got[0] != "Clean" {
		t.Errorf("X-Virus-Status = %q after the panic", got)
	}
	wantCode(t, c.send(t, listRcp, "zipped eicar after the panic", harness.Attachment{Name: "e.zip", ContentType: "application/zip",
		Data: zipOf(t, "eicar.com", harness.EICAR())}), 550, "'Eicar")
	station.Stop()
	station.SpoolEmpty(t)
}
