package test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/d--j/go-milter"

	"github.com/avstation/avstation/jobproto"
	"github.com/avstation/avstation/test/corpus"
	"github.com/avstation/avstation/test/harness"
)

// hostileRSSBound is the most resident memory either daemon may have after
// the whole bad-input set.
const hostileRSSBound = 256 << 20

// TestHostileCorpus sends every case of the bad-input set (test/corpus
// hostile.go) as raw bytes to a running avstation as signed jobs, and to
// avmilter at the milter level (go-milter's client, as Postfix speaks it;
// avmilter hands the message to the same station). Each case must get its
// documented verdict from the station and its documented answer from the
// milter under the default policy; afterwards both daemons still answer a
// clean message, their goroutines are back near where they started, their
// resident memory is under hostileRSSBound, and their spools are empty.
//
//	go test ./test -run TestHostileCorpus -v
func TestHostileCorpus(t *testing.T) {
	cases, err := corpus.HostileCases()
	if err != nil {
		t.Fatal(err)
	}
	clamd := harness.StartClamd(t)
	secret := harness.WriteSecret(t, "hostile-secret")
	station := harness.StartStation(t, bin.Station, "", clamd.Addr, secret)
	m := harness.StartMilter(t, bin.Milter, harness.MilterOptions{Station: "http://" + station.Addr, Secret: secret, Metrics: true})
	keys, err := jobproto.LoadSecretFile(secret)
	if err != nil {
		t.Fatal(err)
	}
	client := &jobproto.Client{Stations: []string{"http://" + station.Addr}, Keys: keys}
	mc := milter.NewClient("tcp", m.Addr, milter.WithReadTimeout(60*time.Second), milter.WithWriteTimeout(60*time.Second))

	// Warm both up with a clean message, then take their baselines.
	clean := []byte("From: a@example.com\r\nTo: dev@lists.example.org\r\nSubject: clean\r\n\r\nnothing to see\r\n")
	stationAnswers(t, client, "warm-up", clean, "clean")
	milterAnswers(t, mc, "warm-up", clean, "accept")
	stationBase := daemonGauge(t, station, station.Addr, "go_goroutines")
	milterBase := daemonGauge(t, m, m.MetricsAddr, "go_goroutines")

	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			t.Logf("%d bytes: %s", len(c.Data), c.Note)
			stationAnswers(t, client, c.Name, c.Data, string(c.Want))
			milterAnswers(t, mc, c.Name, c.Data, c.Reply)
		})
	}

	t.Run("afterwards", func(t *testing.T) {
		stationAnswers(t, client, "after", clean, "clean")
		milterAnswers(t, mc, "after", clean, "accept")
		for _, d := range []struct {
			d    *harness.Daemon
			addr string
			base float64
		}{{station, station.Addr, stationBase}, {m, m.MetricsAddr, milterBase}} {
			settled(t, d.d, d.addr, d.base)
			if rss := daemonGauge(t, d.d, d.addr, "process_resident_memory_bytes"); rss > hostileRSSBound {
				t.Errorf("%s: resident memory %.0f MiB, bound %d MiB", d.addr, rss/(1<<20), hostileRSSBound>>20)
			} else {
				t.Logf("%s: resident memory %.0f MiB (bound %d MiB)", d.addr, rss/(1<<20), hostileRSSBound>>20)
			}
			// The peak too: a case may have blown up and been collected.
			peak, err := d.d.PeakRSS()
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: peak resident memory %d MiB", d.addr, peak>>20)
			if peak > hostileRSSBound {
				t.Errorf("%s: peak resident memory %d MiB, bound %d MiB", d.addr, peak>>20, hostileRSSBound>>20)
			}
			d.d.SpoolEmpty(t)
		}
	})
}

// stationAnswers sends msg to the station as a signed job and checks the
// verdict's status.
func stationAnswers(t *testing.T, c *jobproto.Client, name string, msg []byte, want string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	v, err := c.Scan(ctx, jobproto.Meta{Sender: "alice@example.com", Recipients: []string{"dev@lists.example.org"}}, bytes.NewReader(msg), int64(len(msg)))
	if err != nil {
		t.Errorf("station, %s: %v", name, err)
		return
	}
	if string(v.Status) != want {
		t.Errorf("station, %s: status %q, want %q; findings %+v", name, v.Status, want, v.Findings)
	}
}

// milterAnswers sends msg to avmilter as Postfix would (header fields one
// by one, unfolded as Postfix passes them, then the body) and checks the
// answer: "accept" or the SMTP code of the refusal.
func milterAnswers(t *testing.T, c *milter.Client, name string, msg []byte, want string) {
	t.Helper()
	got, err := milterAnswer(c, msg)
	if err != nil {
		t.Errorf("milter, %s: %v", name, err)
		return
	}
	if !strings.HasPrefix(got, want) {
		t.Errorf("milter, %s: answered %q, want %s", name, got, want)
	}
}

func milterAnswer(c *milter.Client, msg []byte) (string, error) {
	head, body := splitHeader(msg)
	return milterSession(c, "HOSTILE", head, bytes.NewReader(body))
}

// milterSession is one message's milter session as Postfix holds it: the
// envelope to dev@lists.example.org, the header fields one by one, then
// the body streamed from body; the answer as actionReply says it.
func milterSession(c *milter.Client, queueID string, head [][2]string, body io.Reader) (string, error) {
	macros := milter.NewMacroBag()
	s, err := c.Session(macros)
	if err != nil {
		return "", err
	}
	defer s.Close()
	s.Conn("hostile.example", milter.FamilyInet, 4000, "127.0.0.1")
	s.Helo("hostile.example")
	s.Mail("alice@example.com", "")
	s.Rcpt("dev@lists.example.org", "")
	macros.Set(milter.MacroQueueId, queueID)
	if _, err := s.DataStart(); err != nil {
		return "", err
	}
	for _, f := range head {
		act, err := s.HeaderField(f[0], f[1], nil)
		if err != nil {
			return "", fmt.Errorf("header %.40q: %w", f[0], err)
		}
		if act != nil && act.Type != milter.ActionContinue {
			return actionReply(act), nil
		}
	}
	act, err := s.HeaderEnd()
	if err != nil {
		return "", err
	}
	if act != nil && act.Type != milter.ActionContinue {
		return actionReply(act), nil
	}
	_, act, err = s.BodyReadFrom(body)
	if err != nil {
		return "", err
	}
	return actionReply(act), nil
}

func actionReply(act *milter.Action) string {
	switch act.Type {
	case milter.ActionAccept, milter.ActionContinue:
		return "accept"
	case milter.ActionReject:
		return "550"
	case milter.ActionTempFail:
		return "451"
	case milter.ActionRejectWithCode:
		return fmt.Sprintf("%d %s", act.SMTPCode, act.SMTPReply)
	case milter.ActionDiscard:
		return "discard"
	}
	return fmt.Sprintf("action %v", act.Type)
}

// splitHeader cuts a raw message into header fields and body, at the
// first empty line whether lines end in CRLF or a bare LF. Each value is as
// Postfix passes it to avmilter, which asks for the leading space:
// everything after the colon, continuation lines joined with "\n".
func splitHeader(msg []byte) (fields [][2]string, body []byte) {
	rest := msg
	var lines []string
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, '\n')
		line := rest
		if i >= 0 {
			line, rest = rest[:i], rest[i+1:]
		} else {
			rest = nil
		}
		l := strings.TrimSuffix(string(line), "\r")
		if l == "" {
			break
		}
		lines = append(lines, l)
	}
	body = rest
	for _, l := range lines {
		// The milter protocol carries a field as NUL-terminated strings:
		// a value ends at its first NUL.
		l, _, _ = strings.Cut(l, "\x00")
		if l == "" {
			continue
		}
		if (l[0] == ' ' || l[0] == '\t') && len(fields) > 0 {
			fields[len(fields)-1][1] += "\n" + l
			continue
		}
		k, v, _ := strings.Cut(l, ":")
		fields = append(fields, [2]string{k, v})
	}
	return fields, body
}

// daemonGauge reads one unlabelled sample from the daemon's /metrics at addr.
func daemonGauge(t *testing.T, d *harness.Daemon, addr, name string) float64 {
	t.Helper()
	v, ok := metricValue(d.Metrics(t, addr), name, nil)
	if !ok {
		t.Fatalf("%s: no %s in /metrics", addr, name)
	}
	return v
}

// settled waits for the daemon's goroutines to come back within a few of
// base: connections to clamd and HTTP keep-alives close on their own time.
func settled(t *testing.T, d *harness.Daemon, addr string, base float64) {
	t.Helper()
	const slack = 8
	var n float64
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if n = daemonGauge(t, d, addr, "go_goroutines"); n <= base+slack {
			t.Logf("%s: %v goroutines (baseline %v)", addr, n, base)
			return
		}
	}
	t.Errorf("%s: %v goroutines 30s after the bad input, baseline %v", addr, n, base)
}
