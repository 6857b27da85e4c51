package test

import (
	"bytes"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/avstation/avstation/test/harness"
)

// The zero-loss run: how many postings, which of them carry EICAR, and
// when (in clean postings delivered) each outage begins.
const (
	zlPostings   = 1000
	zlEicarEvery = 20 // one in 20: 5%
	zlKillA      = 150
	zlCutB       = 300
	zlKillMilter = 600
	zlCut        = 20 * time.Second
	zlWindow     = 250    // postings on their way at most
	zlPort       = "7358" // each station has a namespace of its own
)

// zlRig is the zero-loss setup: a sending Postfix relaying to the primary
// Postfix, whose avmilter has a pool of two stations, each in a network
// namespace of its own behind a veth link, each with its own clamd.
type zlRig struct {
	nsA, nsB         *harness.Netns
	stA, stB         *harness.Daemon
	urlA, urlB       string
	milter           *harness.Daemon
	primary, sending *harness.Postfix
	sink             *harness.Sink
	injected         atomic.Int64 // postings the sending Postfix has taken
}

// TestZeroLoss is issue 13's "zero loss" run. A sending Postfix relays 1000
// list postings (5% EICAR) to the primary Postfix + avmilter, whose two
// stations sit in two network namespaces, reachable only over veth links.
// While the mail flows, station A is killed with SIGKILL; then station B's
// link is cut for 20 s (with A dead: every posting is tempfailed and the
// sending Postfix retries), restored, and A restarted; then avmilter itself
// is killed with SIGKILL in the middle of the run and restarted. At the
// end every clean posting has been delivered exactly once, every EICAR
// posting bounced with a 5xx and delivered never, the sending Postfix's
// queue is empty, and each delivered copy carries X-Virus-Status: Clean and
// was accepted by a clean verdict that a station logged.
//
// The clamds run in the test's namespace and listen on unix sockets, which
// the stations reach across the namespace boundary: a cut link cuts the
// milter from a station, not a station from its engine.
func TestZeroLoss(t *testing.T) {
	start := time.Now()
	r := startZeroLossRig(t)
	postings := zlBuildPostings(t)
	injected := r.inject(t, postings)
	r.outages(t)

	// The run is over when both queues are empty: every posting is in
	// the sending Postfix's queue once injected, a bounce enters it
	// before the bounced posting leaves, and the primary has taken a
	// posting before the sending Postfix drops it.
	injected.Wait()
	r.waitQueueEmpty(t, r.sending, "sending", 2*time.Minute)
	r.waitQueueEmpty(t, r.primary, "primary", time.Minute)

	s := r.check(t, postings)
	// Stopped with SIGTERM, each daemon must have left nothing behind, the
	// restarted ones included (they sweep what the killed run left).
	for _, d := range []*harness.Daemon{r.milter, r.stA, r.stB} {
		d.Stop()
		d.SpoolEmpty(t)
	}
	t.Logf("zero loss: %d clean delivered once, %d EICAR rejected, %d lost, %d duplicated, %d tempfailed and retried (%d deferrals), queue empty; %d delivered unscanned; %v",
		s.once, s.rejected, s.lost, s.duplicated, s.retried, s.deferrals, s.unscanned, time.Since(start).Round(time.Second))
}

func startZeroLossRig(t *testing.T) *zlRig {
	t.Helper()
	r := &zlRig{nsA: harness.StartNetns(t), nsB: harness.StartNetns(t)}
	secret := harness.WriteSecret(t, "zero-loss-secret")
	station := func(ns *harness.Netns) *harness.Daemon {
		sock := filepath.Join(t.TempDir(), "clamd.sock")
		harness.StartClamdOpts(t, harness.ClamdOptions{Settings: map[string]string{"LocalSocket": sock}})
		return harness.StartStationOpts(t, bin.Station, harness.StationOptions{
			Addr: ns.Addr + ":" + zlPort, Clamd: []string{"unix:" + sock}, Secret: secret, Netns: ns,
			LogLevel: "info", Extra: []string{"allow_plain_http: true"},
		})
	}
	r.stA, r.stB = station(r.nsA), station(r.nsB)
	r.urlA, r.urlB = "http://"+r.stA.Addr, "http://"+r.stB.Addr
	r.sink = harness.StartSink(t)
	// The milter's settings for list mail as README gives them, with
	// stations across a link (plain HTTP allowed explicitly: the link is
	// the test's own) and probes quick enough for a short run. Every body
	// goes to a spool file (memory_buffer 64 bytes), so that the killed
	// milter leaves files for its restart to sweep.
	r.milter = harness.StartMilter(t, bin.Milter, harness.MilterOptions{
		Station: r.urlA, Stations: []string{r.urlB}, Secret: secret, Metrics: true, LogLevel: "info", MemoryBuffer: "64",
		Extra: "allow_plain_http: true\nstation_probe: 1s\nstation_connect_timeout: 2s\n",
	})
	// Long queue ids: never reused, so that each id names one
	// transaction across the three logs. Postfix's own error limits, not
	// the harness's (1000): an smtpd whose milter died answers 451 to
	// every later MAIL FROM of its session, and the limit is what ends
	// such a session, as it would on a real primary.
	r.primary = harness.StartPostfix(t, harness.PostfixOptions{
		Milter: "inet:" + r.milter.Addr, RelayTo: r.sink.Addr, MilterDefaultAction: "tempfail",
		Main: map[string]string{"enable_long_queue_ids": "yes", "smtpd_soft_error_limit": "10", "smtpd_hard_error_limit": "20"},
	})
	r.sending = harness.StartPostfix(t, harness.PostfixOptions{RelayTo: r.primary.SMTPAddr, Main: map[string]string{
		"myhostname":            "sender.localdomain", // not the primary's: Postfix refuses to relay to itself
		"enable_long_queue_ids": "yes",
		"queue_run_delay":       "1s",
		"minimal_backoff_time":  "1s",
		"maximal_backoff_time":  "2s",
	}})
	waitStationUp(t, r.milter, r.urlA, 1, 15*time.Second)
	waitStationUp(t, r.milter, r.urlB, 1, 15*time.Second)
	return r
}

// zlPosting is one posting of the run.
type zlPosting struct {
	id    string // its Message-ID, without angle brackets
	eicar bool
	msg   []byte
}

func zlBuildPostings(t *testing.T) []zlPosting {
	t.Helper()
	ps := make([]zlPosting, zlPostings)
	seen := map[string]bool{}
	for i := range ps {
		var atts []harness.Attachment
		p := &ps[i]
		if p.eicar = i%zlEicarEvery == zlEicarEvery/2; p.eicar {
			atts = append(atts, eicarAttachment())
		}
		p.msg = harness.BuildMessage(sender, listRcp, fmt.Sprintf("zero loss %d", i), fmt.Sprintf("Posting %d of the zero-loss run.\r\n", i), atts...)
		p.id = messageID(p.msg)
		if p.id == "" || seen[p.id] {
			t.Fatalf("posting %d: Message-ID %q missing or not unique", i, p.id)
		}
		seen[p.id] = true
	}
	return ps
}

// inject posts every posting to the sending Postfix over SMTP from four
// clients, in the background; each must be accepted (250). At most
// zlWindow postings are on their way (injected, not yet delivered or
// bounced to the sink) at any time, so that the outages, which wait for
// counts of deliveries, always fall in the middle of the run however fast
// the machine is. The caller waits on the group before it looks at the
// results.
func (r *zlRig) inject(t *testing.T, ps []zlPosting) *sync.WaitGroup {
	var wg sync.WaitGroup
	next := make(chan *zlPosting)
	for range 4 {
		wg.Go(func() {
			for p := range next {
				res := harness.Send(t, r.sending.SMTPAddr, sender, []string{listRcp}, p.msg)
				if res.Err != nil || res.Code != 250 {
					t.Errorf("the sending Postfix did not take posting %s: %d %s %v", p.id, res.Code, res.Text, res.Err)
				}
				r.injected.Add(1)
			}
		})
	}
	wg.Go(func() {
		defer close(next)
		for i := range ps {
			if got, ok := r.sink.AwaitCount(isDone, i-zlWindow, 2*time.Minute); !ok {
				t.Errorf("injection stopped at posting %d: only %d postings done after 2m", i, got)
				return
			}
			next <- &ps[i]
		}
	})
	return &wg
}

// outages kills station A, cuts station B's link for zlCut and restores
// it, restarts A, then kills and restarts avmilter; each step waits for
// its count of clean postings delivered, so that each lands in the middle
// of the run whatever the machine's speed.
func (r *zlRig) outages(t *testing.T) {
	wait := func(n int) { r.sink.WaitCount(t, isListPosting, n, 2*time.Minute, r.progress) }

	wait(zlKillA)
	r.stA.Kill()
	t.Logf("station A killed (SIGKILL) after %d clean postings delivered", r.sink.Count(isListPosting))

	wait(zlCutB)
	r.nsB.Cut(t)
	cutAt := time.Now()
	t.Logf("station B's link cut after %d clean postings delivered", r.sink.Count(isListPosting))
	// With A dead and B cut off, no station is up: tempfail, and the
	// sending Postfix keeps retrying.
	waitStationUp(t, r.milter, r.urlB, 0, zlCut)
	r.milter.WaitLog(t, 2*zlCut, `msg="message scanned"`, "outcome=station-failure", "action=tempfail")
	during := r.sink.Count(isListPosting)
	time.Sleep(time.Until(cutAt.Add(zlCut))) // the outage's length, not a wait for an event
	r.nsB.Restore(t)
	t.Logf("station B's link restored after %v (%d clean postings delivered during the cut, from the primary's queue)",
		time.Since(cutAt).Round(time.Second), r.sink.Count(isListPosting)-during)
	waitStationUp(t, r.milter, r.urlB, 1, 20*time.Second)
	r.stA.Restart()
	waitStationUp(t, r.milter, r.urlA, 1, 20*time.Second)

	wait(zlKillMilter)
	r.milter.Kill()
	t.Logf("avmilter killed (SIGKILL) after %d clean postings delivered: %d postings of the %d not yet done, %d of them not yet sent",
		r.sink.Count(isListPosting), zlPostings-r.sink.Count(isDone), zlPostings, zlPostings-r.injected.Load())
	// Postfix notices (a reset in a session or a refused connect) and
	// tempfails; only then does the milter come back.
	r.primary.WaitLog(t, "inet:"+r.milter.Addr, 30*time.Second)
	r.milter.Restart()
	// It sweeps its spool before it listens: the second such line is
	// the restart's.
	var sweeps []string
	for _, line := range strings.Split(r.milter.Log(), "\n") {
		if strings.Contains(line, `msg="start-up sweep"`) && strings.Contains(line, "setting=spool_dir") {
			sweeps = append(sweeps, line)
		}
	}
	if len(sweeps) != 2 {
		t.Fatalf("avmilter restarted with %d start-up sweeps of its spool in its log, want 2:\n%s", len(sweeps), strings.Join(sweeps, "\n"))
	}
	t.Logf("avmilter restarted: the killed run left %s spool files", field(sweeps[1], "removed"))
}

// progress says where the run stands, for a timeout's message.
func (r *zlRig) progress() string {
	qs, _ := r.sending.QueueFiles()
	qp, _ := r.primary.QueueFiles()
	return fmt.Sprintf("%d clean postings and %d bounces at the sink, %d messages in the sending Postfix's queue, %d in the primary's\n--- sending Postfix (tail)\n%s\n--- primary Postfix (tail)\n%s",
		r.sink.Count(isListPosting), r.sink.Count(isBounce), qs, qp, r.sending.LogTail(15), r.primary.LogTail(15))
}

func isListPosting(d harness.Delivered) bool {
	return d.From == sender && slices.Contains(d.To, listRcp)
}

// isDone: a posting delivered, or the bounce of one.
func isDone(d harness.Delivered) bool { return isListPosting(d) || isBounce(d) }

// isBounce: the sending Postfix's non-delivery notices come from the null
// sender, back to the poster.
func isBounce(d harness.Delivered) bool { return d.From == "" && slices.Contains(d.To, sender) }

func (r *zlRig) waitQueueEmpty(t *testing.T, pf *harness.Postfix, name string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		n, err := pf.QueueFiles()
		if err != nil {
			t.Fatalf("%s Postfix's queue: %v", name, err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the %s Postfix still has %d messages queued after %v: %s", name, n, timeout, r.progress())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// messageID is the value of the message's top-level Message-ID field
// (not of a message quoted inside it, as a bounce quotes the original).
func messageID(msg []byte) string {
	head, _, _ := bytes.Cut(msg, []byte("\r\n\r\n"))
	for _, line := range strings.Split(string(head), "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, "Message-ID") {
			return strings.Trim(strings.TrimSpace(v), "<>")
		}
	}
	return ""
}

// zlSummary is what the checks counted.
type zlSummary struct {
	once, rejected, lost, duplicated, unscanned int
	retried, deferrals                          int
}

var (
	pfCleanupID = regexp.MustCompile(`\]: ([0-9A-Za-z]+): message-id=<([^>]*)>`)
	pfStatus    = regexp.MustCompile(`\]: ([0-9A-Za-z]+): to=<([^>]*)>,.* status=(sent|deferred|bounced) \((.*)\)$`)
	pfPrimaryID = regexp.MustCompile(`by avtest\.localdomain \(Postfix\) with ESMTP id ([0-9A-Za-z]+)`)
)

// check asserts the outcome of the run and counts it.
func (r *zlRig) check(t *testing.T, ps []zlPosting) zlSummary {
	var s zlSummary
	atSink := map[string][]harness.Delivered{}
	for _, d := range r.sink.Messages() {
		if isListPosting(d) {
			atSink[messageID(d.Data)] = append(atSink[messageID(d.Data)], d)
		}
	}
	known := map[string]bool{}
	for _, p := range ps {
		known[p.id] = true
		n := len(atSink[p.id])
		switch {
		case p.eicar && n == 0:
		case p.eicar:
			t.Errorf("EICAR posting %s delivered %d times", p.id, n)
		case n == 1:
			s.once++
		case n == 0:
			s.lost++
			t.Errorf("clean posting %s lost: never delivered", p.id)
		default:
			s.duplicated++
			t.Errorf("clean posting %s delivered %d times", p.id, n)
		}
	}
	for id := range atSink {
		if !known[id] {
			t.Errorf("the sink has a list posting with Message-ID %q that was never sent", id)
		}
	}
	s.rejected, s.retried, s.deferrals = r.checkSendingLog(t, ps)
	s.unscanned = r.checkScanned(t, atSink)
	if s.once != zlPostings-zlPostings/zlEicarEvery || s.rejected != zlPostings/zlEicarEvery {
		t.Errorf("%d clean postings delivered once (want %d), %d EICAR postings rejected (want %d)",
			s.once, zlPostings-zlPostings/zlEicarEvery, s.rejected, zlPostings/zlEicarEvery)
	}
	if s.retried == 0 {
		t.Errorf("no posting was tempfailed: the outages did not reach the mail")
	}
	return s
}

// checkSendingLog reads the sending Postfix's log: each posting's final
// status (sent for a clean one, bounced with a 5xx naming EICAR for an
// infected one) and how many postings were deferred and retried.
func (r *zlRig) checkSendingLog(t *testing.T, ps []zlPosting) (rejected, retried, deferrals int) {
	log := r.sending.Log()
	qidOf := map[string]string{} // Message-ID → queue id
	for _, m := range pfCleanupID.FindAllStringSubmatch(log, -1) {
		qidOf[m[2]] = m[1]
	}
	type status struct {
		final, reply string
		finals       int
		deferred     bool
	}
	byQID := map[string]*status{}
	for _, line := range strings.Split(log, "\n") {
		m := pfStatus.FindStringSubmatch(line)
		if m == nil || m[2] != listRcp {
			continue
		}
		st := byQID[m[1]]
		if st == nil {
			st = &status{}
			byQID[m[1]] = st
		}
		if m[3] == "deferred" {
			st.deferred = true
			deferrals++
			continue
		}
		st.final, st.reply = m[3], m[4]
		st.finals++
	}
	for _, p := range ps {
		st := byQID[qidOf[p.id]]
		switch {
		case qidOf[p.id] == "" || st == nil:
			t.Errorf("posting %s: no delivery status in the sending Postfix's log", p.id)
			continue
		case st.finals != 1:
			t.Errorf("posting %s (%s): %d final statuses in the sending Postfix's log", p.id, qidOf[p.id], st.finals)
		case p.eicar && (st.final != "bounced" || !strings.Contains(st.reply, "said: 550 5.7.1") || !strings.Contains(st.reply, harness.EicarSignature)):
			t.Errorf("EICAR posting %s: status=%s (%s), want bounced by a 550 5.7.1 naming %s", p.id, st.final, st.reply, harness.EicarSignature)
		case p.eicar:
			rejected++
		case st.final != "sent":
			t.Errorf("clean posting %s: status=%s (%s)", p.id, st.final, st.reply)
		}
		if st.deferred {
			retried++
		}
	}
	return rejected, retried, deferrals
}

// checkScanned proves each delivered copy was scanned clean: it carries
// X-Virus-Status: Clean; the queue id the primary Postfix gave it (its
// Received field) has the milter's line "message scanned outcome=clean
// action=accept"; and that line's job id has a station's "job scanned
// status=clean". It returns how many copies fall short.
func (r *zlRig) checkScanned(t *testing.T, atSink map[string][]harness.Delivered) int {
	accepted := map[string][]string{} // primary queue id → job ids of clean accepts
	for _, line := range strings.Split(r.milter.Log(), "\n") {
		if strings.Contains(line, `msg="message scanned"`) && strings.Contains(line, "outcome=clean") && strings.Contains(line, "action=accept") {
			accepted[field(line, "queue_id")] = append(accepted[field(line, "queue_id")], field(line, "job_id"))
		}
	}
	cleanJob := map[string]bool{}
	for _, st := range []*harness.Daemon{r.stA, r.stB} {
		for _, line := range strings.Split(st.Log(), "\n") {
			if scannedClean.MatchString(line) {
				cleanJob[field(line, "job_id")] = true
			}
		}
	}
	unscanned := 0
	for id, copies := range atSink {
		for _, d := range copies {
			status := header(d, "X-Virus-Status")
			var qid string
			if m := pfPrimaryID.FindSubmatch(d.Data); m != nil {
				qid = string(m[1])
			}
			jobs := accepted[qid]
			if len(status) != 1 || status[0] != "Clean" || qid == "" || len(jobs) != 1 || !cleanJob[jobs[0]] {
				unscanned++
				t.Errorf("posting %s delivered without a clean scan: X-Virus-Status %q, primary queue id %q, milter's clean accepts %q, station's clean job: %v",
					id, status, qid, jobs, len(jobs) == 1 && cleanJob[jobs[0]])
			}
		}
	}
	return unscanned
}
