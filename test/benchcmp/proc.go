package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// clockTick is sysconf(_SC_CLK_TCK): 100 on every Linux this runs on
// (USER_HZ is fixed at 100 for the /proc interface).
const clockTick = 100

// cpuTicks is a process's utime+stime, all threads, in clock ticks.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("cpu of %d: %w", pid, err)
	}
	// pid (comm) state ppid ...: comm may hold spaces; utime and stime
	// are fields 14 and 15, the 12th and 13th after the ')'.
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 13 {
		return 0, fmt.Errorf("cpu of %d: cannot parse /proc/%d/stat", pid, pid)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("cpu of %d: utime %q stime %q", pid, f[11], f[12])
	}
	return u + s, nil
}

// peakRSS is VmHWM in bytes.
func peakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("peak RSS of %d: %w", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int64
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kb); err != nil {
				return 0, fmt.Errorf("peak RSS of %d: VmHWM %q: %w", pid, v, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("peak RSS of %d: no VmHWM", pid)
}

// resetPeakRSS sets VmHWM back to the current RSS (clear_refs 5, Linux 4.0
// and later), so that the peak of a long-lived clamd is per run.
func resetPeakRSS(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// proc is one measured process of a run: its role (milter, station,
// clamd, loadgen) and pid.
type proc struct {
	role string
	pid  int
}

// usage is what a run cost each process.
type usage struct {
	ticks map[string]int64
	peak  map[string]int64
}

// sampler reads the processes' CPU before and after a run.
type sampler struct {
	procs  []proc
	before map[string]int64
}

func startSampling(procs []proc) (*sampler, error) {
	s := &sampler{procs: procs, before: map[string]int64{}}
	for _, p := range procs {
		if p.role == "clamd" {
			if err := resetPeakRSS(p.pid); err != nil {
				return nil, fmt.Errorf("reset clamd's peak RSS: %w", err)
			}
		}
		t, err := cpuTicks(p.pid)
		if err != nil {
			return nil, err
		}
		s.before[p.role] = t
	}
	return s, nil
}

func (s *sampler) stop() (usage, error) {
	u := usage{ticks: map[string]int64{}, peak: map[string]int64{}}
	for _, p := range s.procs {
		t, err := cpuTicks(p.pid)
		if err != nil {
			return u, err
		}
		u.ticks[p.role] = t - s.before[p.role]
		if u.peak[p.role], err = peakRSS(p.pid); err != nil {
			return u, err
		}
	}
	return u, nil
}
