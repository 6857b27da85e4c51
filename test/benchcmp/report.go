package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// roles in the order the tables show them.
var roles = []string{"milter", "station", "clamd", "postfix", "loadgen"}

// run is one measured run: a workload through one product.
type run struct {
	Mode      string             `json:"mode"` // milter or postfix
	Workload  string             `json:"workload"`
	Product   string             `json:"product"`
	Round     int                `json:"round"`
	Messages  int                `json:"messages"`
	Failed    int                `json:"failed"`
	FirstFail string             `json:"first_failure,omitempty"`
	Seconds   float64            `json:"seconds"`
	MsgPerSec float64            `json:"msg_per_s"`
	P50ms     float64            `json:"p50_ms,omitempty"`
	P99ms     float64            `json:"p99_ms,omitempty"`
	CPUms     map[string]float64 `json:"cpu_ms_per_msg"` // by role
	PeakRSSMB map[string]float64 `json:"peak_rss_mb"`    // by role
}

// summary is the median over rounds of one workload and product.
type summary struct {
	Mode      string             `json:"mode"`
	Workload  string             `json:"workload"`
	Product   string             `json:"product"`
	Rounds    int                `json:"rounds"`
	Failed    int                `json:"failed"`
	MsgPerSec float64            `json:"msg_per_s"`
	Range     [2]float64         `json:"msg_per_s_range"`
	P50ms     float64            `json:"p50_ms,omitempty"`
	P99ms     float64            `json:"p99_ms,omitempty"`
	CPUms     map[string]float64 `json:"cpu_ms_per_msg"`
	PeakRSSMB map[string]float64 `json:"peak_rss_mb"`
	Ratio     float64            `json:"ratio"`    // msg/s over the baseline's
	Baseline  string             `json:"baseline"` // clamav-milter-unix, or postfix-alone
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// summarize takes the medians of the runs of each mode, workload and
// product, in the order they first ran, with the ratio to baseline.
func summarize(runs []run, baseline map[string]string) []summary {
	type key struct{ mode, workload, product string }
	var order []key
	by := map[key][]run{}
	for _, r := range runs {
		k := key{r.Mode, r.Workload, r.Product}
		if _, ok := by[k]; !ok {
			order = append(order, k)
		}
		by[k] = append(by[k], r)
	}
	var out []summary
	for _, k := range order {
		rs := by[k]
		s := summary{Mode: k.mode, Workload: k.workload, Product: k.product, Rounds: len(rs), Baseline: baseline[k.mode],
			CPUms: map[string]float64{}, PeakRSSMB: map[string]float64{}}
		var rate, p50, p99 []float64
		cpu, rss := map[string][]float64{}, map[string][]float64{}
		for _, r := range rs {
			s.Failed += r.Failed
			rate, p50, p99 = append(rate, r.MsgPerSec), append(p50, r.P50ms), append(p99, r.P99ms)
			for role, v := range r.CPUms {
				cpu[role] = append(cpu[role], v)
			}
			for role, v := range r.PeakRSSMB {
				rss[role] = append(rss[role], v)
			}
		}
		s.MsgPerSec, s.P50ms, s.P99ms = median(rate), median(p50), median(p99)
		s.Range = [2]float64{slices.Min(rate), slices.Max(rate)}
		for role, v := range cpu {
			s.CPUms[role] = median(v)
		}
		for role, v := range rss {
			s.PeakRSSMB[role] = median(v)
		}
		out = append(out, s)
	}
	for i := range out {
		for _, b := range out {
			if b.Mode == out[i].Mode && b.Workload == out[i].Workload && b.Product == out[i].Baseline && b.MsgPerSec > 0 {
				out[i].Ratio = out[i].MsgPerSec / b.MsgPerSec
			}
		}
	}
	return out
}

// table writes one Markdown table per mode and workload, with a column
// for each process measured in it.
func table(w io.Writer, sums []summary) {
	for i := 0; i < len(sums); {
		j := i
		for j < len(sums) && sums[j].Mode == sums[i].Mode && sums[j].Workload == sums[i].Workload {
			j++
		}
		group := sums[i:j]
		present, presentRSS := rolesIn(group, func(s summary) map[string]float64 { return s.CPUms }),
			rolesIn(group, func(s summary) map[string]float64 { return s.PeakRSSMB })
		s := group[0]
		fmt.Fprintf(w, "\n### %s mode, %s (medians of %d rounds; ratio: msg/s over %s)\n\n", s.Mode, s.Workload, s.Rounds, s.Baseline)
		cols := []string{"product", "msg/s", "range", "p50 ms", "p99 ms"}
		for _, r := range present {
			cols = append(cols, "CPU ms/msg "+r)
		}
		for _, r := range presentRSS {
			cols = append(cols, "peak RSS MB "+r)
		}
		cols = append(cols, "failed", "ratio")
		fmt.Fprintf(w, "| %s |\n|%s\n", strings.Join(cols, " | "), strings.Repeat("---|", len(cols)))
		for _, s := range group {
			cells := []string{s.Product, f1(s.MsgPerSec), f1(s.Range[0]) + "–" + f1(s.Range[1]), f2(s.P50ms), f2(s.P99ms)}
			for _, r := range present {
				cells = append(cells, opt(s.CPUms, r, f2))
			}
			for _, r := range presentRSS {
				cells = append(cells, opt(s.PeakRSSMB, r, f1))
			}
			cells = append(cells, fmt.Sprint(s.Failed), fmt.Sprintf("%.2f", s.Ratio))
			fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
		}
		i = j
	}
}

// rolesIn lists the roles, in table order, that any of group measured.
func rolesIn(group []summary, m func(summary) map[string]float64) []string {
	var present []string
	for _, r := range roles {
		for _, s := range group {
			if _, ok := m(s)[r]; ok {
				present = append(present, r)
				break
			}
		}
	}
	return present
}

func opt(m map[string]float64, k string, f func(float64) string) string {
	if v, ok := m[k]; ok {
		return f(v)
	}
	return "–"
}

func f1(v float64) string { return fmt.Sprintf("%.1f", v) }
func f2(v float64) string { return fmt.Sprintf("%.2f", v) }
