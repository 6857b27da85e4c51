package test

import (
	"archive/zip"
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/avstation/avstation/test/harness"
)

const (
	sender  = "alice@example.com"
	listRcp = "dev@lists.example.org"
	nonList = "bob@example.net"
)

// chain is one real Postfix with avmilter attached, relaying to a sink.
type chain struct {
	postfix *harness.Postfix
	milter  *harness.Daemon
	sink    *harness.Sink
}

func newChain(t *testing.T, sink *harness.Sink, m *harness.Daemon) *chain {
	t.Helper()
	pf := harness.StartPostfix(t, harness.PostfixOptions{Milter: "inet:" + m.Addr, RelayTo: sink.Addr})
	t.Cleanup(func() {
		m.Stop()
		m.SpoolEmpty(t)
	})
	return &chain{postfix: pf, milter: m, sink: sink}
}

// send posts a message with a unique subject and returns Postfix's reply.
func (c *chain) send(t *testing.T, to, subject string, atts ...harness.Attachment) harness.SendResult {
	t.Helper()
	msg := harness.BuildMessage(sender, to, subject, "Hello list,\r\nsee attached.\r\n", atts...)
	r := harness.Send(t, c.postfix.SMTPAddr, sender, []string{to}, msg)
	if r.Err != nil {
		t.Fatalf("send %q: %v (postfix log:\n%s)", subject, r.Err, c.postfix.LogTail(20))
	}
	return r
}

func (c *chain) delivered(t *testing.T, subject string) harness.Delivered {
	t.Helper()
	return c.sink.WaitFor(t, withSubject(subject), 30*time.Second)
}

func withSubject(s string) func(harness.Delivered) bool {
	return func(d harness.Delivered) bool { return bytes.Contains(d.Data, []byte("Subject: "+s+"\r\n")) }
}

func eicarAttachment() harness.Attachment {
	return harness.Attachment{Name: "eicar.com", ContentType: "application/octet-stream", Data: harness.EICAR()}
}

func header(d harness.Delivered, name string) []string {
	head, _, _ := bytes.Cut(d.Data, []byte("\r\n\r\n"))
	var out []string
	for _, line := range strings.Split(string(head), "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, name) {
			out = append(out, strings.TrimSpace(v))
		}
	}
	return out
}

func wantCode(t *testing.T, r harness.SendResult, code int, texts ...string) {
	t.Helper()
	if r.Code != code {
		t.Fatalf("reply %d %q, want %d", r.Code, r.Text, code)
	}
	for _, s := range texts {
		if !strings.Contains(r.Text, s) {
			t.Errorf("reply %d %q does not contain %q", r.Code, r.Text, s)
		}
	}
}

// waitNotDelivered proves a message was not delivered: a clean message sent
// after it through the same chain arrives, and the first has not.
func (c *chain) waitNotDelivered(t *testing.T, subject string) {
	t.Helper()
	marker := subject + " (marker)"
	wantCode(t, c.send(t, listRcp, marker), 250)
	c.delivered(t, marker)
	if n := c.sink.Count(withSubject(subject)); n != 0 {
		t.Errorf("%q was delivered %d times, want 0", subject, n)
	}
}

// bin holds the daemons, built once for the whole test binary.
var bin harness.Binaries

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "avstation-bin-")
	if err == nil {
		bin, err = harness.BuildDaemons("..", dir)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if avtest.dir != "" {
		os.RemoveAll(avtest.dir)
	}
	os.Exit(code)
}

// TestEndToEnd runs list postings through real Postfix, avmilter, avstation
// and clamd, each a separate process, milter and station over TCP with a
// shared secret.
func TestEndToEnd(t *testing.T) {
	clamd := harness.StartClamd(t)
	sink := harness.StartSink(t)
	secret := harness.WriteSecret(t, "correct-horse-battery")
	station := harness.StartStation(t, bin.Station, "", clamd.Addr, secret)
	stationURL := "http://" + station.Addr
	t.Cleanup(func() {
		station.Stop()
		station.SpoolEmpty(t)
	})

	t.Run("clean posting is delivered and tagged", func(t *testing.T) {
		c := newChain(t, sink, harness.StartMilter(t, bin.Milter, harness.MilterOptions{Station: stationURL, Secret: secret}))
		wantCode(t, c.send(t, listRcp, "clean posting"), 250)
		d := c.delivered(t, "clean posting")
		if !bytes.Contains(d.Data, []byte("\r\nX-Virus-Status: Clean\r\n")) {
			t.Errorf("no header line \"X-Virus-Status: Clean\" in:\n%s", d.Data)
		}
		if got := header(d, "X-Virus-Scanned"); len(got) != 1 || !strings.HasPrefix(got[0], "avstation ") {
			t.Errorf("X-Virus-Scanned = %q", got)
		}
		c.milter.WaitLog(t, 5*time.Second, "message scanned", "outcome=clean", "action=accept", "lists=[dev]")
	})

	t.Run("EICAR posting is rejected naming list, threat and file", func(t *testing.T) {
		c := newChain(t, sink, harness.StartMilter(t, bin.Milter, harness.MilterOptions{Station: stationURL, Secret: secret}))
		r := c.send(t, listRcp, "eicar posting", eicarAttachment())
		t.Logf("Postfix answered: %d %s", r.Code, r.Text)
		wantCode(t, r, 550, "5.7.1", "to the dev list", "'Eicar", "attachment 'eicar.com'")
		line := c.milter.WaitLog(t, 5*time.Second, "message scanned", "outcome=infected", "action=reject")
		// The milter's line and the station's record meet by job id, and
		// the milter's line and Postfix's meet by queue id.
		jobID, queueID := field(line, "job_id"), field(line, "queue_id")
		if jobID == "" || queueID == "" {
			t.Fatalf("log line without job id or queue id: %s", line)
		}
		station.WaitLog(t, 5*time.Second, "job scanned", "job_id="+jobID, "status=infected")
		c.postfix.WaitLog(t, queueID+": milter-reject: END-OF-MESSAGE", 5*time.Second)
		c.waitNotDelivered(t, "eicar posting")
	})

	t.Run("EICAR in a zip in a zip is rejected naming the member", func(t *testing.T) {
		c := newChain(t, sink, harness.StartMilter(t, bin.Milter, harness.MilterOptions{Station: stationURL, Secret: secret}))
		inner := zipOf(t, "eicar.com", harness.EICAR())
		outer := zipOf(t, "docs.zip", inner)
		r := c.send(t, listRcp, "eicar in nested zips", harness.Attachment{Name: "invoice.zip", ContentType: "application/zip", Data: outer})
		wantCode(t, r, 550, "'Eicar", "attachment 'invoice.zip/docs.zip/eicar.com'")
	})

	t.Run("non-list mail passes untouched unless scan_all", func(t *testing.T) {
		c := newChain(t, sink, harness.StartMilter(t, bin.Milter, harness.MilterOptions{Station: stationURL, Secret: secret}))
		wantCode(t, c.send(t, nonList, "eicar to a person", eicarAttachment()), 250)
		d := c.delivered(t, "eicar to a person")
		if got := header(d, "X-Virus-Status"); len(got) != 0 {
			t.Errorf("non-list mail got X-Virus-Status %q", got)
		}
		all := newChain(t, sink, harness.StartMilter(t, bin.Milter, harness.MilterOptions{Station: stationURL, Secret: secret, ScanAll: true}))
		wantCode(t, all.send(t, nonList, "eicar to a person, scan_all", eicarAttachment()), 550, "'Eicar", "'eicar.com'")
	})

	t.Run("discard accepts and drops", func(t *testing.T) {
		c := newChain(t, sink, harness.StartMilter(t, bin.Milter, harness.MilterOptions{Station: stationURL, Secret: secret, Policy: "  actions: {infected: {action: discard}}\n"}))
		wantCode(t, c.send(t, listRcp, "eicar discarded", eicarAttachment()), 250)
		c.milter.WaitLog(t, 5*time.Second, "outcome=infected", "action=discard")
		c.waitNotDelivered(t, "eicar discarded")
	})

	t.Run("tag delivers with the threat in the header", func(t *testing.T) {
		c := newChain(t, sink, harness.StartMilter(t, bin.Milter, harness.MilterOptions{Station: stationURL, Secret: secret, Policy: "  actions: {infected: {action: tag}}\n"}))
		r := c.send(t, listRcp, "eicar tagged", eicarAttachment())
		wantCode(t, r, 250)
		// The queue id Postfix gave the message is the one the milter logged.
		_, queueID, ok := strings.Cut(r.Text, "queued as ")
		if !ok || queueID == "" {
			t.Fatalf("no queue id in Postfix's reply %q", r.Text)
		}
		c.milter.WaitLog(t, 5*time.Second, "message scanned", "queue_id="+queueID+" ", "outcome=infected", "action=accept")
		d := c.delivered(t, "eicar tagged")
		if got := header(d, "X-Virus-Status"); len(got) != 1 || !strings.HasPrefix(got[0], "Infected (Eicar") {
			t.Errorf("X-Virus-Status = %q, want Infected (Eicar...)", got)
		}
	})

	t.Run("station down tempfails, and the retry goes through", func(t *testing.T) {
		// A station of its own, so stopping it does not disturb the others.
		own := harness.StartStation(t, bin.Station, "", clamd.Addr, secret)
		c := newChain(t, sink, harness.StartMilter(t, bin.Milter, harness.MilterOptions{Station: "http://" + own.Addr, Secret: secret}))
		own.Stop()
		msg := harness.BuildMessage(sender, listRcp, "posting while station down", "hello\r\n")
		r := harness.Send(t, c.postfix.SMTPAddr, sender, []string{listRcp}, msg)
		wantCode(t, r, 451, "4.7.1")
		c.milter.WaitLog(t, 5*time.Second, "outcome=station-failure", "action=tempfail")
		if n := sink.Count(withSubject("posting while station down")); n != 0 {
			t.Fatalf("delivered %d while the station was down", n)
		}
		own.Restart()
		// The sending MTA retries the same message: it is accepted now.
		wantCode(t, harness.Send(t, c.postfix.SMTPAddr, sender, []string{listRcp}, msg), 250)
		c.delivered(t, "posting while station down")
		own.Stop()
		own.SpoolEmpty(t)
	})

	t.Run("wrong secret tempfails and the station scans nothing", func(t *testing.T) {
		wrong := harness.WriteSecret(t, "not-the-word")
		own := harness.StartStation(t, bin.Station, "", clamd.Addr, secret)
		c := newChain(t, sink, harness.StartMilter(t, bin.Milter, harness.MilterOptions{Station: "http://" + own.Addr, Secret: wrong}))
		wantCode(t, c.send(t, listRcp, "posting with a wrong secret", eicarAttachment()), 451, "4.7.1")
		line := own.WaitLog(t, 5*time.Second, "invalid job signature", "peer=127.0.0.1:", "reason=\"bad signature\"")
		if strings.Contains(line, "not-the-word") || strings.Contains(own.Log(), "correct-horse") {
			t.Errorf("a secret reached the station log:\n%s", own.Log())
		}
		if strings.Contains(own.Log(), "job scanned") {
			t.Errorf("the station scanned a job with a bad signature:\n%s", own.Log())
		}
		m := own.Metrics(t, own.Addr)
		// The posting and the milter's probes of the signed info: at least one.
		if v, ok := metricValue(m, "avstation_invalid_signatures_total", map[string]string{"reason": "bad signature"}); !ok || v < 1 {
			t.Errorf("invalid signature not counted:\n%s", grep(m, "avstation_"))
		}
		if !strings.Contains(m, `avstation_jobs_total{status="infected"} 0`) {
			t.Errorf("jobs counted:\n%s", grep(m, "avstation_jobs_total"))
		}
		if strings.Contains(c.milter.Log(), "not-the-word") {
			t.Errorf("the secret reached the milter log")
		}
		own.Stop()
		own.SpoolEmpty(t)
	})

	t.Run("over TLS with the station's CA", func(t *testing.T) {
		cert, key := harness.SelfSignedCert(t)
		own := harness.StartStation(t, bin.Station, "", clamd.Addr, secret, "tls_cert: "+cert, "tls_key: "+key)
		url := "https://" + own.Addr
		c := newChain(t, sink, harness.StartMilter(t, bin.Milter, harness.MilterOptions{Station: url, Secret: secret, Extra: "station_ca_file: " + cert + "\n"}))
		wantCode(t, c.send(t, listRcp, "clean posting over TLS"), 250)
		c.delivered(t, "clean posting over TLS")
		wantCode(t, c.send(t, listRcp, "eicar over TLS", eicarAttachment()), 550, "'Eicar")
		// Without the CA the milter does not trust the station: tempfail.
		untrusting := newChain(t, sink, harness.StartMilter(t, bin.Milter, harness.MilterOptions{Station: url, Secret: secret}))
		wantCode(t, untrusting.send(t, listRcp, "posting to an untrusted station"), 451, "4.7.1")
		untrusting.milter.WaitLog(t, 5*time.Second, "outcome=station-failure", "certificate")
		own.Stop()
		own.SpoolEmpty(t)
	})

	t.Run("in-process mode gives the same verdicts", func(t *testing.T) {
		c := newChain(t, sink, harness.StartMilter(t, bin.Milter, harness.MilterOptions{Clamd: clamd.Addr}))
		wantCode(t, c.send(t, listRcp, "clean posting in-process"), 250)
		d := c.delivered(t, "clean posting in-process")
		if got := header(d, "X-Virus-Status"); len(got) != 1 || got[0] != "Clean" {
			t.Errorf("X-Virus-Status = %q, want [Clean]", got)
		}
		wantCode(t, c.send(t, listRcp, "eicar in-process", eicarAttachment()), 550, "to the dev list", "'Eicar", "attachment 'eicar.com'")
		c.milter.WaitLog(t, 5*time.Second, "outcome=infected", "action=reject")
	})
}

// field returns the value of key=value in a text log line.
func field(line, key string) string {
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

func grep(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func zipOf(t *testing.T, name string, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w := zip.NewWriter(&b)
	f, err := w.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(data)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
