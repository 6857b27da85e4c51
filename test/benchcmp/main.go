// Command benchcmp is `make bench`: it measures avmilter (in-process, and
// with avstation over TCP) against clamav-milter on this machine, with the
// same clamd, interleaved over several rounds, and prints the medians as
// Markdown tables (and JSON with -json). It is a measuring tool of the
// repository, not part of the product.
//
// Milter mode plays the MTA with a go-milter client, one milter
// connection per message, every message distinct (random content, so
// clamd's cache of clean results never hits), clamd's cache emptied
// (RELOAD) and a fresh milter and station before each run. Postfix mode
// sends 1 KB postings to a list address through a private Postfix with
// smtp-source: Postfix alone, with clamav-milter, with avmilter.
//
//	go run ./test/benchcmp -rounds 3 -json bench.json
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/avstation/avstation/test/harness"
)

type options struct {
	rounds    int
	n         int
	mode      string
	workloads []workload
	products  []string
	jsonPath  string
	pprofDir  string
	pprofSecs int
	pprofLoad workload
	pfN       int
	pfSess    []int
}

func parseFlags() (options, error) {
	var o options
	var wl, pr, sess string
	flag.IntVar(&o.rounds, "rounds", 3, "interleaved rounds; the tables show the median of each")
	flag.IntVar(&o.n, "n", 0, "messages per milter-mode run of the 1 KB workloads (the 100 KB zip gets n/4, the 5 MB zip n/100, at least 3); 0: each workload's own (1500 to 3000 for 1 KB, 600 for 100 KB, 12 for 5 MB)")
	flag.StringVar(&o.mode, "mode", "both", "milter, postfix or both")
	flag.StringVar(&wl, "workloads", "", "comma-separated milter-mode workloads; empty: all of "+workloadNames())
	flag.StringVar(&pr, "products", "", "comma-separated milter-mode products; empty: all of "+strings.Join(products, ","))
	flag.StringVar(&o.jsonPath, "json", "", "also write every run and the medians as JSON to this file")
	var pw string
	flag.StringVar(&o.pprofDir, "pprof", "", "after the rounds, profile avmilter and avstation (CPU) under the -pprof-workload into this directory; empty: no profiles")
	flag.StringVar(&pw, "pprof-workload", "100KB-zip-c10", "the workload run while profiling: one of "+workloadNames())
	flag.IntVar(&o.pprofSecs, "pprof-seconds", 10, "length of each CPU profile")
	flag.IntVar(&o.pfN, "postfix-n", 2000, "messages per postfix-mode run")
	flag.StringVar(&sess, "postfix-sessions", "10", "comma-separated smtp-source session counts for postfix mode")
	flag.Parse()
	if o.rounds < 1 {
		return o, fmt.Errorf("-rounds %d: at least 1", o.rounds)
	}
	if o.mode != "milter" && o.mode != "postfix" && o.mode != "both" {
		return o, fmt.Errorf("-mode %q: milter, postfix or both", o.mode)
	}
	i := slices.IndexFunc(workloads, func(w workload) bool { return w.Name == pw })
	if i < 0 {
		return o, fmt.Errorf("-pprof-workload: %q is not one of %s", pw, workloadNames())
	}
	o.pprofLoad = workloads[i]
	o.workloads = workloads
	if wl != "" {
		o.workloads = nil
		for _, name := range strings.Split(wl, ",") {
			i := slices.IndexFunc(workloads, func(w workload) bool { return w.Name == name })
			if i < 0 {
				return o, fmt.Errorf("-workloads: %q is not one of %s", name, workloadNames())
			}
			o.workloads = append(o.workloads, workloads[i])
		}
	}
	if o.n > 0 {
		// Bigger messages take longer: fewer of them, as in the defaults.
		for i, w := range o.workloads {
			switch {
			case w.Size >= 1<<20:
				o.workloads[i].N = max(o.n/100, 3)
			case w.Size >= 100<<10:
				o.workloads[i].N = max(o.n/4, 5)
			default:
				o.workloads[i].N = o.n
			}
		}
	}
	o.products = products
	if pr != "" {
		o.products = strings.Split(pr, ",")
		for _, p := range o.products {
			if !slices.Contains(products, p) {
				return o, fmt.Errorf("-products: %q is not one of %s", p, strings.Join(products, ","))
			}
		}
	}
	for _, s := range strings.Split(sess, ",") {
		var v int
		if _, err := fmt.Sscan(s, &v); err != nil || v < 1 {
			return o, fmt.Errorf("-postfix-sessions: %q is not a count", s)
		}
		o.pfSess = append(o.pfSess, v)
	}
	return o, nil
}

func workloadNames() string {
	var n []string
	for _, w := range workloads {
		n = append(n, w.Name)
	}
	return strings.Join(n, ",")
}

func main() {
	log.SetFlags(log.Ltime)
	log.SetPrefix("benchcmp: ")
	o, err := parseFlags()
	if err != nil {
		log.Fatal(err)
	}
	base, err := os.MkdirTemp("", "avbench-")
	if err != nil {
		log.Fatal(err)
	}
	os.Chmod(base, 0o755) // Postfix's smtpd reaches clamav-milter's socket below it
	root := newScope("bench", base)
	code := 0
	defer func() { os.Exit(code) }()
	defer os.RemoveAll(base)
	defer root.close()
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(fatal)
			if !ok {
				panic(r)
			}
			log.Print(f.msg)
			code = 1
		}
	}()
	// ^C: stop what this program started, then end.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		log.Print("interrupted: stopping the daemons")
		root.close()
		os.RemoveAll(base)
		os.Exit(130)
	}()
	report := bench(root, base, o)
	if o.jsonPath != "" {
		b, _ := json.MarshalIndent(report, "", "  ")
		if err := os.WriteFile(o.jsonPath, append(b, '\n'), 0o644); err != nil {
			log.Fatal(err)
		}
		log.Printf("wrote %s", o.jsonPath)
	}
	if root.Failed() {
		code = 1
	}
}

// output is the JSON document: the machine, the settings, each run, the
// medians, and the profiles' files.
type output struct {
	Machine  map[string]string `json:"machine"`
	Rounds   int               `json:"rounds"`
	Runs     []run             `json:"runs"`
	Summary  []summary         `json:"summary"`
	Profiles []string          `json:"profiles,omitempty"`
}

func bench(root *scope, base string, o options) output {
	modRoot, err := harness.ModuleRoot()
	if err != nil {
		root.Fatal(err)
	}
	binDir := filepath.Join(base, "bin")
	if err := os.Mkdir(binDir, 0o755); err != nil {
		root.Fatal(err)
	}
	bins, err := harness.BuildDaemons(modRoot, binDir)
	if err != nil {
		root.Fatal(err)
	}
	e := &env{clamd: harness.StartClamd(root), bins: bins, secret: harness.WriteSecret(root, "bench-secret"), sockDir: base}
	out := output{Machine: machine(e), Rounds: o.rounds}
	log.Printf("machine: %v", out.Machine)
	for round := 1; round <= o.rounds; round++ {
		if o.mode != "postfix" {
			for _, w := range o.workloads {
				msgsFor := w
				for _, p := range rotate(o.products, round-1) {
					out.Runs = append(out.Runs, e.milterRun(root, msgsFor, p, round))
				}
			}
		}
		if o.mode != "milter" {
			for _, s := range o.pfSess {
				for _, p := range rotate(postfixProducts, round-1) {
					out.Runs = append(out.Runs, e.postfixRun(root, p, s, o.pfN, round))
				}
			}
		}
	}
	out.Summary = summarize(out.Runs, map[string]string{"milter": products[0], "postfix": postfixProducts[0]})
	fmt.Printf("\n## make bench: %s\n", describe(out.Machine))
	table(os.Stdout, out.Summary)
	if o.pprofDir != "" {
		out.Profiles = e.profile(root, o.pprofDir, o.pprofSecs, o.pprofLoad)
	}
	return out
}

// rotate starts the order at the k-th product, so that no product always
// runs first (or just after the same one) in a round.
func rotate(p []string, k int) []string {
	k %= len(p)
	return append(slices.Clone(p[k:]), p[:k]...)
}

// milterRun is one measured run: messages made first (not timed), clamd's
// cache emptied, the product started fresh, the messages driven through
// it while its processes' CPU is counted.
func (e *env) milterRun(root *scope, w workload, product string, round int) run {
	msgs := make([]string, w.N)
	for i := range msgs {
		msgs[i] = message(w)
	}
	sc := root.child(product)
	defer sc.close()
	if err := reload(e.clamd); err != nil {
		sc.Fatal(err)
	}
	st := e.start(sc, product, false)
	procs := append(st.procs, proc{"loadgen", os.Getpid()})
	smp, err := startSampling(procs)
	if err != nil {
		sc.Fatal(err)
	}
	res := drive(st.network, st.addr, msgs, w.Conc)
	u, err := smp.stop()
	if err != nil {
		sc.Fatal(err)
	}
	if err := checkRejects(st.network, st.addr); err != nil {
		sc.Fatalf("%s does not scan: %v", product, err)
	}
	r := run{Mode: "milter", Workload: w.Name, Product: product, Round: round, Messages: res.N, Failed: res.Failed, FirstFail: res.First,
		Seconds: res.Elapsed.Seconds(), MsgPerSec: float64(res.N-res.Failed) / res.Elapsed.Seconds(),
		P50ms: percentile(res.Lat, 50), P99ms: percentile(res.Lat, 99)}
	r.CPUms, r.PeakRSSMB = perMessage(u, res.N)
	log.Printf("round %d %s %s: %.1f msg/s, p50 %.2f ms, p99 %.2f ms, cpu ms/msg %v, failed %d %s",
		round, w.Name, product, r.MsgPerSec, r.P50ms, r.P99ms, fmtMap(r.CPUms), r.Failed, r.FirstFail)
	return r
}

func perMessage(u usage, n int) (cpu, rss map[string]float64) {
	cpu, rss = map[string]float64{}, map[string]float64{}
	for role, t := range u.ticks {
		cpu[role] = float64(t) * 1000 / clockTick / float64(max(n, 1))
	}
	for role, b := range u.peak {
		if role != "loadgen" {
			rss[role] = float64(b) / (1 << 20)
		}
	}
	return cpu, rss
}

func fmtMap(m map[string]float64) string {
	var s []string
	for _, r := range roles {
		if v, ok := m[r]; ok {
			s = append(s, fmt.Sprintf("%s=%.2f", r, v))
		}
	}
	return strings.Join(s, " ")
}

// machine describes where the figures come from.
func machine(e *env) map[string]string {
	m := map[string]string{"cpus": fmt.Sprint(runtime.NumCPU()), "go": runtime.Version(), "os": runtime.GOOS + "/" + runtime.GOARCH}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				m["cpu"] = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m["kernel"] = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		m["loadavg_at_start"] = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	m["started"] = time.Now().UTC().Format(time.RFC3339)
	for _, p := range []string{"clamd", "clamav-milter"} {
		if v, err := version(p); err == nil {
			m[p] = v
		}
	}
	return m
}

func describe(m map[string]string) string {
	return fmt.Sprintf("%s CPUs (%s), Linux %s, %s, %s, clamav-milter %s, load average at start %s",
		m["cpus"], m["cpu"], m["kernel"], m["go"], m["clamd"], m["clamav-milter"], m["loadavg_at_start"])
}
