package test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/avstation/avstation/config"
	clamdclient "github.com/avstation/avstation/scanner/clamd"
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

// TestDeployClamdConf: deploy/clamav/clamd.conf turns AlertExceedsMax on,
// its limits are no lower than avstation's defaults (so avstation's own
// limits stop first), and a real clamd started with its settings accepts
// them and passes the station's limits probe.
func TestDeployClamdConf(t *testing.T) {
	text, err := os.ReadFile(filepath.Join(deployDir, "clamav", "clamd.conf"))
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for i, line := range strings.Split(string(text), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, " ")
		if !ok || settings[name] != "" {
			t.Fatalf("clamd.conf line %d: %q is not one setting given once", i+1, line)
		}
		settings[name] = strings.TrimSpace(value)
	}
	if settings["AlertExceedsMax"] != "yes" {
		t.Errorf("AlertExceedsMax = %q, want yes", settings["AlertExceedsMax"])
	}
	def := config.DefaultStation()
	size := func(name string) int64 {
		v, err := config.ParseByteSize(settings[name])
		if err != nil {
			t.Fatalf("%s %q: %v", name, settings[name], err)
		}
		return int64(v)
	}
	for _, c := range []struct {
		clamd string
		min   int64
		ours  string
	}{
		{"StreamMaxLength", int64(def.MaxMessage), "max_message_size"},
		{"StreamMaxLength", int64(def.Scanner.MaxMemberSize), "max_member_size"},
		{"MaxFileSize", int64(def.Scanner.MaxMemberSize), "max_member_size"},
		{"MaxScanSize", int64(def.Scanner.MaxExpanded), "max_expanded_bytes"},
	} {
		if got := size(c.clamd); got < c.min {
			t.Errorf("%s %s is below avstation's %s (%d bytes)", c.clamd, settings[c.clamd], c.ours, c.min)
		}
	}
	if n, _ := strconv.Atoi(settings["MaxRecursion"]); n <= def.Scanner.MaxArchiveDepth {
		t.Errorf("MaxRecursion %q is not above avstation's max_archive_depth %d", settings["MaxRecursion"], def.Scanner.MaxArchiveDepth)
	}
	if n, _ := strconv.Atoi(settings["MaxFiles"]); n < def.Scanner.MaxMembers {
		t.Errorf("MaxFiles %q is below avstation's max_members %d", settings["MaxFiles"], def.Scanner.MaxMembers)
	}
	c := harness.StartClamdOpts(t, harness.ClamdOptions{Settings: settings})
	cl, err := clamdclient.New(c.Addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if reports, err := clamdclient.ProbeLimits(ctx, cl); !reports || err != nil {
		t.Errorf("clamd with deploy/clamav/clamd.conf: probe reports=%v, %v; want it to report its limits", reports, err)
	}
}
