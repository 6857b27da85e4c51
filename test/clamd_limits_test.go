package test

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/avstation/avstation/test/harness"
)

// TestClamdLimitsAndEncryptedAlerts: through real Postfix, avmilter,
// avstation and a real clamd set up as deploy/clamav/clamd.conf advises
// (AlertExceedsMax yes, here with a small MaxFileSize; AlertEncrypted
// yes), clamd's own alerts are outcomes, not viruses:
//   - a 2 MB attachment with EICAR at its end, past clamd's MaxFileSize
//     of 1M, is limit-exceeded: rejected by default, naming the
//     attachment and the limit, and not delivered;
//   - a password zip whose password is in the text is judged by its
//     decrypted members, not by clamd's Heuristics.Encrypted.Zip: clean
//     is delivered, EICAR inside is rejected naming Eicar.
//
// Before clamd's alerts were mapped, the first was rejected as a virus
// named "Heuristics.Limits.Exceeded.MaxFileSize" and the clean zip was
// rejected as a virus named "Heuristics.Encrypted.Zip".
func TestClamdLimitsAndEncryptedAlerts(t *testing.T) {
	clamd := harness.StartClamdOpts(t, harness.ClamdOptions{Settings: map[string]string{
		"MaxFileSize":     "1M",
		"AlertExceedsMax": "yes",
		"AlertEncrypted":  "yes",
	}})
	sink := harness.StartSink(t)
	secret := harness.WriteSecret(t, "limits-secret")
	station := harness.StartStation(t, bin.Station, "", clamd.Addr, secret)
	t.Cleanup(func() {
		station.Stop()
		station.SpoolEmpty(t)
	})
	c := newChain(t, sink, harness.StartMilter(t, bin.Milter, harness.MilterOptions{Station: "http://" + station.Addr, Secret: secret}))
	station.WaitLog(t, 30*time.Second, "clamd reports content past its limits", clamd.Addr)
	if strings.Contains(station.Log(), "AlertExceedsMax is off") {
		t.Errorf("station warns about AlertExceedsMax although clamd has it on:\n%s", station.Log())
	}

	t.Run("EICAR past clamd's MaxFileSize is limit-exceeded and rejected", func(t *testing.T) {
		data := append(bytes.Repeat([]byte("filler line of a large attachment\n"), (2<<20)/34), harness.EICAR()...)
		att := harness.Attachment{Name: "big.bin", ContentType: "application/octet-stream", Data: data}
		wantCode(t, c.send(t, listRcp, "eicar past MaxFileSize", att), 550,
			"attachment 'big.bin' could not be fully scanned", "MaxFileSize")
		c.milter.WaitLog(t, 5*time.Second, "outcome=limit-exceeded", "action=reject")
		c.waitNotDelivered(t, "eicar past MaxFileSize")
	})

	t.Run("a clean password zip with its password in the text is delivered", func(t *testing.T) {
		att := harness.Attachment{Name: "report.zip", ContentType: "application/zip",
			Data: encryptedZipOf(t, "report.txt", []byte("quarterly figures, nothing else\n"), "Figures2024")}
		msg := harness.BuildMessage(sender, listRcp, "clean password zip", "Hello,\r\nthe password is Figures2024\r\n", att)
		wantCode(t, harness.Send(t, c.postfix.SMTPAddr, sender, []string{listRcp}, msg), 250)
		d := c.delivered(t, "clean password zip")
		if st := header(d, "X-Virus-Status"); len(st) != 1 || st[0] != "Clean" {
			t.Errorf("X-Virus-Status %q, want Clean", st)
		}
	})

	t.Run("a password zip with EICAR inside is rejected naming Eicar", func(t *testing.T) {
		att := harness.Attachment{Name: "invoice.zip", ContentType: "application/zip",
			Data: encryptedZipOf(t, "invoice.com", harness.EICAR(), "Invoice2024")}
		msg := harness.BuildMessage(sender, listRcp, "eicar password zip", "Hello,\r\nthe password is Invoice2024\r\n", att)
		wantCode(t, harness.Send(t, c.postfix.SMTPAddr, sender, []string{listRcp}, msg), 550, "'Eicar")
		c.milter.WaitLog(t, 5*time.Second, "outcome=infected", "action=reject")
		c.waitNotDelivered(t, "eicar password zip")
	})
}

// TestClamdLimitsProbe: a clamd left with AlertExceedsMax off reports
// content past its limits OK; the station's start-up log and `avstation
// version` say so, and how to fix it, and say nothing against a clamd that
// has it on. Before the probe, neither said anything.
func TestClamdLimitsProbe(t *testing.T) {
	off := harness.StartClamd(t)
	on := harness.StartClamdOpts(t, harness.ClamdOptions{Settings: map[string]string{"AlertExceedsMax": "yes"}})
	secret := harness.WriteSecret(t, "probe-secret")
	const warning = "AlertExceedsMax is off"
	for _, tt := range []struct {
		name, addr string
		warns      bool
	}{{"AlertExceedsMax off", off.Addr, true}, {"AlertExceedsMax yes", on.Addr, false}} {
		t.Run(tt.name, func(t *testing.T) {
			station := harness.StartStation(t, bin.Station, "", tt.addr, secret)
			t.Cleanup(station.Stop)
			out, err := exec.Command(bin.Station, "version", "-config", station.ConfigFile()).CombinedOutput()
			if err != nil {
				t.Fatalf("avstation version: %v\n%s", err, out)
			}
			if tt.warns {
				station.WaitLog(t, 30*time.Second, "level=WARN", warning, tt.addr, "set AlertExceedsMax yes")
				if !strings.Contains(string(out), "warning: clamd "+tt.addr) || !strings.Contains(string(out), warning) {
					t.Errorf("avstation version does not warn:\n%s", out)
				}
				return
			}
			station.WaitLog(t, 30*time.Second, "clamd reports content past its limits", tt.addr)
			if strings.Contains(station.Log(), warning) || strings.Contains(string(out), warning) {
				t.Errorf("warns about a clamd with AlertExceedsMax yes:\n%s\n%s", station.Log(), out)
			}
			if !strings.Contains(string(out), "clamd "+tt.addr+" reports content past its limits") {
				t.Errorf("avstation version does not say the clamd reports its limits:\n%s", out)
			}
		})
	}
}
