package test

import (
	"testing"
	"time"

	"github.com/avstation/avstation/test/harness"
)

// TestStationSendsClamdTheRawMessageOnce: through real Postfix, avmilter,
// avstation and a real clamd (counted by a pass-through proxy), once the
// station has seen clamd parse mail and open archives, a clean message
// with a zip costs clamd one scan, the raw message: clamd unpacks the
// attachment and the zip itself. A zip with EICAR inside still costs the
// parts too, so that the reply names the member.
func TestStationSendsClamdTheRawMessageOnce(t *testing.T) {
	clamd := harness.StartClamd(t)
	counted := harness.StartSlowClamd(t, clamd.Addr, 0)
	sink := harness.StartSink(t)
	secret := harness.WriteSecret(t, "rawfirst-secret")
	station := harness.StartStation(t, bin.Station, "", counted.Addr, secret)
	t.Cleanup(func() {
		station.Stop()
		station.SpoolEmpty(t)
	})
	c := newChain(t, sink, harness.StartMilter(t, bin.Milter, harness.MilterOptions{Station: "http://" + station.Addr, Secret: secret}))
	station.WaitLog(t, 30*time.Second, "clamd parses mail and opens archives")
	station.WaitLog(t, 30*time.Second, "AlertExceedsMax is off") // the other start probe (the harness clamd alerts on nothing), counted before

	before := counted.Scans()
	att := harness.Attachment{Name: "report.zip", ContentType: "application/zip", Data: zipOf(t, "report.txt", []byte("quarterly figures\n"))}
	wantCode(t, c.send(t, listRcp, "clean zip once", att), 250)
	c.delivered(t, "clean zip once")
	if n := counted.Scans() - before; n != 1 {
		t.Errorf("clamd scanned %d streams for a clean message with a zip, want 1 (the raw message)", n)
	}

	before = counted.Scans()
	att = harness.Attachment{Name: "invoice.zip", ContentType: "application/zip", Data: zipOf(t, "invoice.com", harness.EICAR())}
	wantCode(t, c.send(t, listRcp, "eicar zip named", att), 550, "'Eicar", "invoice.zip/invoice.com")
	if n := counted.Scans() - before; n < 2 {
		t.Errorf("clamd scanned %d streams for a message it found EICAR in, want the parts too", n)
	}
}
