// Command demo is the quickstart (`make demo`): it starts a private clamd,
// an avstation, an avmilter and a Postfix on loopback, posts a clean and an
// EICAR message to a list address, and shows what happened to each. The
// host's own mail setup is not touched: every daemon runs from .demo/ with
// its own config, and all are stopped at the end (or on ^C with -keep).
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/avstation/avstation/test/harness"
)

func main() {
	keep := flag.Bool("keep", false, "keep the chain running until ^C")
	dir := flag.String("dir", ".demo", "where the demo keeps its configs and logs")
	flag.Parse()
	r := newRunner(*dir)
	code := 0
	func() {
		defer func() {
			if p := recover(); p != nil {
				if _, ok := p.(fatal); !ok {
					panic(p)
				}
				code = 1
			}
		}()
		demo(r, *keep)
	}()
	r.cleanup()
	os.Exit(code)
}

func demo(r *runner, keep bool) {
	say("building avmilter and avstation")
	binDir := filepath.Join(r.root, "bin")
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		r.Fatalf("%v", err)
	}
	bin, err := harness.BuildDaemons(".", binDir)
	if err != nil {
		r.Fatalf("%v", err)
	}
	var dbs []string
	for _, pat := range []string{"/var/lib/clamav/*.cvd", "/var/lib/clamav/*.cld"} {
		m, _ := filepath.Glob(pat)
		dbs = append(dbs, m...)
	}
	if len(dbs) > 0 {
		say("starting clamd with the real signature database (%d files; loading takes a minute) and a test signature for EICAR", len(dbs))
	} else {
		say("starting clamd with a generated EICAR test signature (no real database in /var/lib/clamav: freshclam has not run)")
	}
	clamd := harness.StartClamdWith(r, dbs...)
	sink := harness.StartSink(r)
	secret := harness.WriteSecret(r, "demo-secret-word")
	station := harness.StartStation(r, bin.Station, "", clamd.Addr, secret)
	say("avstation listening on http://%s (job protocol, /livez, /readyz, /metrics)", station.Addr)
	activityDir := filepath.Join(r.root, "activity")
	milter := harness.StartMilter(r, bin.Milter, harness.MilterOptions{Station: "http://" + station.Addr, Secret: secret, Metrics: true,
		ActivityDir: activityDir})
	say("avmilter listening on inet:%s, metrics on http://%s/metrics", milter.Addr, milter.MetricsAddr)
	pf := harness.StartPostfix(r, harness.PostfixOptions{Milter: "inet:" + milter.Addr, RelayTo: sink.Addr})
	say("Postfix (private instance) listening on %s with smtpd_milters = inet:%s, relaying to a sink on %s", pf.SMTPAddr, milter.Addr, sink.Addr)

	const from, to = "alice@example.com", "dev@lists.example.org"
	fmt.Println()
	say("posting a clean message to the list %s", to)
	clean := harness.BuildMessage(from, to, "Meeting notes", "Hello list,\r\nnotes attached.\r\n",
		harness.Attachment{Name: "notes.txt", ContentType: "text/plain", Data: []byte("nothing to see here\n")})
	res := harness.Send(r, pf.SMTPAddr, from, []string{to}, clean)
	show("Postfix answered", res)
	d := sink.WaitFor(r, func(d harness.Delivered) bool { return bytes.Contains(d.Data, []byte("Subject: Meeting notes")) }, 30*time.Second)
	say("delivered to the sink with: %s", strings.Join(headers(d.Data, "X-Virus-"), " | "))

	fmt.Println()
	say("posting a message with the EICAR test file attached as eicar.com")
	infected := harness.BuildMessage(from, to, "Invoice", "Please see the invoice.\r\n",
		harness.Attachment{Name: "eicar.com", Data: harness.EICAR()})
	show("Postfix answered", harness.Send(r, pf.SMTPAddr, from, []string{to}, infected))

	fmt.Println()
	say("avmilter's decisions (%s):", milter.LogFile)
	for _, l := range lines(milter.Log(), "message scanned") {
		fmt.Println("    " + l)
	}
	say("avstation's records of the same jobs (%s):", station.LogFile)
	for _, l := range lines(station.Log(), "job scanned") {
		fmt.Println("    " + l)
	}
	say("avmilter metrics:")
	for _, l := range lines(milter.Metrics(r, milter.MetricsAddr), "avmilter_messages_total{") {
		if !strings.HasSuffix(l, " 0") {
			fmt.Println("    " + l)
		}
	}
	fmt.Println()
	say("the list activity report: avmilter report -config %s --list dev", milter.ConfigFile())
	report, _ := exec.Command(bin.Milter, "report", "-config", milter.ConfigFile(), "--list", "dev").CombinedOutput()
	fmt.Print(indent(string(report)))
	if fields := strings.Fields(string(report)); len(fields) > 4 && strings.HasPrefix(fields[4], "job=") {
		job := strings.TrimPrefix(fields[4], "job=")
		say("the station's record of that job: avstation show -config %s %s", station.ConfigFile(), job)
		rec, _ := exec.Command(bin.Station, "show", "-config", station.ConfigFile(), job).CombinedOutput()
		fmt.Print(indent(string(rec)))
	}
	say("Postfix's log (it goes away with its private instance):")
	fmt.Print(indent(pf.LogTail(6)))
	if keep {
		say("the chain keeps running; try: swaks --server %s --to %s --attach - <<< 'hello'   (^C stops it)", pf.SMTPAddr, to)
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
		<-ch
	}
	say("stopping the demo daemons; configs and logs stay in %s", r.root)
}

func indent(s string) string {
	if s == "" {
		return ""
	}
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ") + "\n"
}

func say(format string, args ...any) { fmt.Printf("==> "+format+"\n", args...) }

func show(what string, r harness.SendResult) {
	if r.Err != nil {
		say("%s: error %v", what, r.Err)
		return
	}
	say("%s: %d %s", what, r.Code, r.Text)
}

func headers(msg []byte, prefix string) []string {
	head, _, _ := bytes.Cut(msg, []byte("\r\n\r\n"))
	var out []string
	for _, l := range strings.Split(string(head), "\r\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

func lines(text, sub string) []string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return out
}

// runner lets the test harness run outside `go test`: it provides the few
// testing.TB methods the harness uses. Directories go under root and are
// kept so that the logs can be read after the demo.
type runner struct {
	testing.TB // not set: only the methods below are called
	root       string
	n          int
	cleanups   []func()
}

type fatal struct{}

func newRunner(root string) *runner {
	abs, err := filepath.Abs(root)
	if err != nil {
		abs = root
	}
	os.RemoveAll(abs)
	if err := os.MkdirAll(abs, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	return &runner{root: abs}
}

func (r *runner) Helper()                 {}
func (r *runner) Name() string            { return "demo" }
func (r *runner) Cleanup(f func())        { r.cleanups = append(r.cleanups, f) }
func (r *runner) Logf(f string, a ...any) { fmt.Printf("    "+f+"\n", a...) }
func (r *runner) Errorf(f string, a ...any) {
	fmt.Fprintf(os.Stderr, "demo: "+f+"\n", a...)
}
func (r *runner) Fatalf(f string, a ...any) {
	fmt.Fprintf(os.Stderr, "demo failed: "+f+"\n", a...)
	panic(fatal{})
}
func (r *runner) Fatal(a ...any) {
	fmt.Fprintln(os.Stderr, append([]any{"demo failed:"}, a...)...)
	panic(fatal{})
}

func (r *runner) TempDir() string {
	r.n++
	d := filepath.Join(r.root, fmt.Sprintf("d%02d", r.n))
	if err := os.MkdirAll(d, 0o755); err != nil {
		r.Fatalf("%v", err)
	}
	return d
}

func (r *runner) cleanup() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
}
