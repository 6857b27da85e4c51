package test

import (
	"strings"
	"testing"
	"time"

	"github.com/avstation/avstation/test/harness"
)

// panicTrigger is internal/daemon's PanicTrigger (avtest builds only).
const panicTrigger = "AVTEST-" + "PANIC-NOW"

// TestPanickingEngineInProcess: an engine that panics inside avmilter (the
// in-process scanner), through real Postfix and clamd: that message gets
// 451, the daemon is still up, and the next message is scanned as usual.
func TestPanickingEngineInProcess(t *testing.T) {
	tagged, err := harness.BuildDaemons("..", t.TempDir(), "avtest")
	if err != nil {
		t.Fatal(err)
	}
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
