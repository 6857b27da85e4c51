package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/avstation/avstation/test/harness"
)

// products compared at the milter level, in this order: the ratio of each
// is to the first.
var products = []string{"clamav-milter-unix", "clamav-milter-tcp", "avmilter-inprocess", "avmilter-station"}

// env is what every run shares: one clamd, the daemons built, the secret.
type env struct {
	clamd   *harness.Clamd
	bins    harness.Binaries
	secret  string
	sockDir string // for clamav-milter's unix socket: reachable by Postfix
	noCache bool   // cache_entries: 0 for avmilter and avstation
}

// started is one product running for one run: where the MTA connects and
// the processes to measure.
type started struct {
	network, addr string // for a milter client
	postfix       string // smtpd_milters form
	procs         []proc
	pprof         map[string]string // role: host:port of its profiler
}

// start brings up a fresh instance of product (and station) in sc.
func (e *env) start(sc *scope, product string, pprof bool) *started {
	clamd := proc{"clamd", e.clamd.PID}
	switch product {
	case "clamav-milter-unix", "clamav-milter-tcp":
		return e.startClamavMilter(sc, strings.HasSuffix(product, "unix"))
	case "avmilter-inprocess", "avmilter-station":
		st := &started{network: "tcp", pprof: map[string]string{}}
		o := harness.MilterOptions{MemoryBuffer: "8MiB", LogLevel: "info", ActivityDir: "off"}
		if product == "avmilter-station" {
			so := harness.StationOptions{Clamd: []string{e.clamd.Addr}, Secret: e.secret, LogLevel: "info"}
			if e.noCache {
				so.Extra = append(so.Extra, "  cache_entries: 0")
			}
			if pprof {
				st.pprof["station"] = fmt.Sprintf("127.0.0.1:%d", harness.FreePort(sc))
				so.Extra = append(so.Extra, "pprof_listen: "+st.pprof["station"])
			}
			station := harness.StartStationOpts(sc, e.bins.Station, so)
			o.Station, o.Secret = "http://"+station.Addr, e.secret
			st.procs = append(st.procs, proc{"station", station.PID()})
		} else {
			o.Clamd = e.clamd.Addr
			if e.noCache {
				o.Scanner = "  cache_entries: 0\n"
			}
		}
		if pprof {
			st.pprof["milter"] = fmt.Sprintf("127.0.0.1:%d", harness.FreePort(sc))
			o.Extra += "pprof_listen: " + st.pprof["milter"] + "\n"
		}
		m := harness.StartMilter(sc, e.bins.Milter, o)
		st.addr, st.postfix = m.Addr, "inet:"+m.Addr
		st.procs = append([]proc{{"milter", m.PID()}}, append(st.procs, clamd)...)
		return st
	}
	sc.Fatalf("unknown product %q", product)
	return nil
}

// startClamavMilter runs clamav-milter in the foreground with the same
// clamd, rejecting infected mail and adding its X-Virus headers as
// avmilter does, on a unix socket or on TCP.
func (e *env) startClamavMilter(sc *scope, unix bool) *started {
	bin := harness.Program(sc, "clamav-milter")
	dir := sc.TempDir()
	st := &started{}
	var sock string
	if unix {
		// Not under TempDir (mode 0700): Postfix's smtpd must reach it.
		d, err := os.MkdirTemp(e.sockDir, "cm-")
		if err != nil {
			sc.Fatalf("clamav-milter: %v", err)
		}
		sc.Cleanup(func() { os.RemoveAll(d) })
		os.Chmod(d, 0o755)
		st.network, st.addr = "unix", filepath.Join(d, "milter.sock")
		st.postfix, sock = "unix:"+st.addr, st.addr
	} else {
		port := harness.FreePort(sc)
		st.network, st.addr = "tcp", fmt.Sprintf("127.0.0.1:%d", port)
		st.postfix, sock = "inet:"+st.addr, fmt.Sprintf("inet:%d@127.0.0.1", port)
	}
	conf := strings.Join([]string{
		"MilterSocket " + sock,
		"MilterSocketMode 666",
		"FixStaleSocket yes",
		"Foreground yes",
		"ClamdSocket " + e.clamd.Addr,
		"OnClean Accept",
		"OnInfected Reject",
		"OnFail Defer",
		"AddHeader Replace",
		"ReadTimeout 120",
		"MaxFileSize 64M",
		"LogFile " + filepath.Join(dir, "clamav-milter.log"),
		"LogTime yes",
		"LogInfected Basic",
		"LogClean Off",
		"TemporaryDirectory " + dir,
		"PidFile " + filepath.Join(dir, "clamav-milter.pid"),
	}, "\n") + "\n"
	confPath := filepath.Join(dir, "clamav-milter.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		sc.Fatalf("clamav-milter: %v", err)
	}
	out, err := os.Create(filepath.Join(dir, "clamav-milter.out"))
	if err != nil {
		sc.Fatalf("clamav-milter: %v", err)
	}
	defer out.Close()
	cmd := exec.Command(bin, "-c", confPath)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		sc.Fatalf("start clamav-milter: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	sc.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, err := net.Dial(st.network, st.addr)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-exited:
			sc.Fatalf("clamav-milter exited: %s\n%s", tail(filepath.Join(dir, "clamav-milter.out")), tail(filepath.Join(dir, "clamav-milter.log")))
		default:
		}
		if time.Now().After(deadline) {
			sc.Fatalf("clamav-milter does not listen on %s: %v", st.addr, err)
		}
	}
	st.procs = []proc{{"milter", cmd.Process.Pid}, {"clamd", e.clamd.PID}}
	return st
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// reload empties clamd's cache of clean results: RELOAD, then wait until
// its log says the database is loaded again.
func reload(c *harness.Clamd) error {
	count := func() int {
		b, _ := os.ReadFile(c.LogFile)
		return strings.Count(string(b), "Database correctly reloaded")
	}
	before := count()
	conn, err := net.DialTimeout("tcp", c.TCPAddr, 2*time.Second)
	if err != nil {
		return fmt.Errorf("clamd RELOAD: %w", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte("nRELOAD\n")); err != nil {
		return fmt.Errorf("clamd RELOAD: %w", err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "RELOADING" {
		return fmt.Errorf("clamd RELOAD answered %q: %v", line, err)
	}
	for deadline := time.Now().Add(60 * time.Second); count() <= before; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			return fmt.Errorf("clamd RELOAD: no \"Database correctly reloaded\" in %s after 60 s", c.LogFile)
		}
	}
	return nil
}
