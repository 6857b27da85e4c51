package main

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/avstation/avstation/test/harness"
)

// postfixProducts are postfix mode's: the ratio of each is to the first.
var postfixProducts = []string{"postfix-alone", "clamav-milter-unix", "avmilter-station", "avmilter-inprocess"}

var sinkOnce sync.Once
var sink *harness.Sink

// postfixRun sends n 1 KB postings to a list address through a fresh
// private Postfix with smtp-source, sessions at once, one message a
// connection. smtp-source sends the same body every time; Postfix's
// Received line (with the queue id) still makes each message distinct. The
// station's and avmilter's own caches are off so that the repeated body
// part is scanned every time.
func (e *env) postfixRun(root *scope, product string, sessions, n, round int) run {
	sinkOnce.Do(func() { sink = harness.StartSink(root) })
	source := harness.Program(root, "smtp-source")
	sc := root.child(product)
	defer sc.close()
	if err := reload(e.clamd); err != nil {
		sc.Fatal(err)
	}
	var procs []proc
	milter := ""
	if product != "postfix-alone" {
		e.noCache = true
		st := e.start(sc, product, false)
		e.noCache = false
		procs, milter = st.procs, st.postfix
	}
	pf := harness.StartPostfix(sc, harness.PostfixOptions{Milter: milter, RelayTo: sink.Addr})
	smp, err := startSampling(procs)
	if err != nil {
		sc.Fatal(err)
	}
	pfBefore := postfixTicks(pf)
	var out bytes.Buffer
	cmd := exec.Command(source, "-s", fmt.Sprint(sessions), "-m", fmt.Sprint(n), "-l", "1024", "-S", "bench",
		"-f", "bench@example.com", "-t", "dev@lists.example.org", "-M", "bench.example", pf.SMTPAddr)
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	runErr := cmd.Run()
	elapsed := time.Since(start)
	u, err := smp.stop()
	if err != nil {
		sc.Fatal(err)
	}
	u.ticks["postfix"] = postfixTicks(pf) - pfBefore
	if ps := cmd.ProcessState; ps != nil {
		u.ticks["loadgen"] = (ps.UserTime() + ps.SystemTime()).Milliseconds() * clockTick / 1000
	}
	name := fmt.Sprintf("1KB-s%d", sessions)
	r := run{Mode: "postfix", Workload: name, Product: product, Round: round, Messages: n, Seconds: elapsed.Seconds(),
		MsgPerSec: float64(n) / elapsed.Seconds()}
	if runErr != nil {
		r.Failed, r.FirstFail, r.MsgPerSec = n, fmt.Sprintf("smtp-source: %v: %s", runErr, lastLine(out.String())), 0
	}
	r.CPUms, r.PeakRSSMB = perMessage(u, n)
	log.Printf("round %d postfix %s %s: %.1f msg/s, cpu ms/msg %v %s", round, name, product, r.MsgPerSec, fmtMap(r.CPUms), r.FirstFail)
	return r
}

// postfixTicks is the CPU of a private Postfix so far: its live processes
// (told apart by MAIL_CONFIG in their environment) and what its master has
// reaped of the processes that exited (cutime, cstime).
func postfixTicks(pf *harness.Postfix) int64 {
	want := []byte("MAIL_CONFIG=" + pf.ConfigDir)
	ents, _ := os.ReadDir("/proc")
	var total int64
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil || !bytes.Contains(append(env, 0), append(want, 0)) {
			continue
		}
		if t, err := cpuTicks(pid); err == nil {
			total += t
		}
		if pid == pf.MasterPID {
			total += childTicks(pid)
		}
	}
	return total
}

// childTicks is cutime+cstime (fields 16 and 17 of /proc/PID/stat).
func childTicks(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 15 {
		return 0
	}
	cu, _ := strconv.ParseInt(f[13], 10, 64)
	cs, _ := strconv.ParseInt(f[14], 10, 64)
	return cu + cs
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	return s[strings.LastIndexByte(s, '\n')+1:]
}

func version(program string) (string, error) {
	p, err := harness.Lookup(program)
	if err != nil {
		return "", err
	}
	out, err := exec.Command(p, "--version").Output()
	return strings.TrimSpace(string(out)), err
}

// profile runs workload w (unmeasured, messages made as they go) through avmilter → avstation and through avmilter in-process,
// and saves a CPU profile of each daemon of each over secs seconds, with
// `go tool pprof -top` of each next to it.
func (e *env) profile(root *scope, dir string, secs int, w workload) []string {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		root.Fatal(err)
	}
	goBin, err := harness.Lookup("go")
	if err != nil {
		root.Fatal(err)
	}
	var files []string
	for _, product := range []string{"avmilter-station", "avmilter-inprocess"} {
		sc := root.child(product)
		st := e.start(sc, product, true)
		stop := make(chan struct{})
		var sent, failed int64
		var load sync.WaitGroup
		load.Go(func() { sent, failed = until(st.network, st.addr, w, stop) })
		var wg sync.WaitGroup
		for role, addr := range st.pprof {
			path := filepath.Join(dir, fmt.Sprintf("%s-%s.%s.pprof", product, w.Name, role))
			files = append(files, path)
			wg.Go(func() {
				if err := fetchProfile(addr, secs, path); err != nil {
					root.Errorf("profile of %s %s: %v", product, role, err)
					return
				}
				top, err := exec.Command(goBin, "tool", "pprof", "-top", "-nodecount=25", path).CombinedOutput()
				if err != nil {
					root.Errorf("go tool pprof %s: %v\n%s", path, err, top)
					return
				}
				// By cumulative time too: which of our functions the flat
				// runtime and syscall entries are spent under.
				cum, err := exec.Command(goBin, "tool", "pprof", "-top", "-cum", "-nodecount=40", "-focus=avstation", path).CombinedOutput()
				if err != nil {
					root.Errorf("go tool pprof -cum %s: %v\n%s", path, err, cum)
					return
				}
				top = append(top, append([]byte("\n-cum, functions under avstation's packages:\n"), cum...)...)
				os.WriteFile(strings.TrimSuffix(path, ".pprof")+".top.txt", top, 0o644)
				fmt.Printf("\n### CPU profile: %s, %s, %s (%d s)\n\n```\n%s```\n", product, role, w.Name, secs, top)
			})
		}
		wg.Wait()
		close(stop)
		load.Wait()
		log.Printf("profiled %s: %d messages sent (%d failed) during the profile", product, sent, failed)
		sc.close()
	}
	return files
}

func fetchProfile(addr string, secs int, path string) error {
	c := &http.Client{Timeout: time.Duration(secs+30) * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, secs))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
