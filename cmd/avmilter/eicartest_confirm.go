package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/avstation/avstation/activity"
	"github.com/avstation/avstation/config"
	"github.com/avstation/avstation/policy"
)

// records are the milter's own records that can confirm an accepting
// policy was applied to the test message: its activity log (one line per
// infected message, with the queue id) or, failing that, the delta of its
// avmilter_messages_total counter.
type records struct {
	want        policy.Action
	activityDir string
	metricsURL  string
	before      float64 // the counter before the test message
	metricsErr  error   // why the counter cannot be used
}

func newRecords(cfg *config.Milter, want policy.Action, stdout io.Writer) *records {
	r := &records{want: want, activityDir: cfg.ActivityDir}
	if cfg.MetricsListen == "" {
		r.metricsErr = errors.New("metrics_listen is not set")
		return r
	}
	r.metricsURL = "http://" + loopbackFor(cfg.MetricsListen) + "/metrics"
	r.before, r.metricsErr = r.counter()
	if r.metricsErr != nil && r.activityDir == "" {
		fmt.Fprintf(stdout, "note: %v\n", r.metricsErr)
	}
	return r
}

// errCannotConfirm marks a confirmation that could not be tried, as
// against one that found the policy not applied.
var errCannotConfirm = errors.New("cannot confirm")

// confirm waits up to wait for the milter's record of the message the MTA
// queued as qid, at or after start, and says what it saw.
func (r *records) confirm(qid string, start time.Time, wait time.Duration) (string, error) {
	switch {
	case r.activityDir != "" && qid != "":
		return r.fromActivity(qid, start, wait)
	case r.metricsErr == nil:
		return r.fromMetrics(wait)
	case r.activityDir != "":
		return "", fmt.Errorf("%w: the MTA's reply names no queue id to look for in the activity log, and the metrics cannot stand in: %v", errCannotConfirm, r.metricsErr)
	}
	return "", fmt.Errorf("%w: activity_dir is not set and %v: the milter keeps no record of the message to confirm it from; set activity_dir", errCannotConfirm, r.metricsErr)
}

// wantEvent is the activity log's type and action for an accepting policy.
func (r *records) wantEvent() (typ, action string) {
	switch r.want {
	case policy.Strip:
		return activity.Stripped, string(policy.AcceptMsg)
	case policy.Discard:
		return activity.Virus, string(policy.DiscardMsg)
	}
	return activity.Virus, string(policy.AcceptMsg) // tag
}

func (r *records) fromActivity(qid string, start time.Time, wait time.Duration) (string, error) {
	since := start.Truncate(time.Second) // the log has whole seconds
	deadline := time.Now().Add(wait)
	for {
		file, line, e, err := findActivity(r.activityDir, qid, since)
		if err != nil {
			return "", fmt.Errorf("%w: %w", errCannotConfirm, err)
		}
		if line != "" {
			typ, action := r.wantEvent()
			if e.Type != typ || e.Action != action {
				return "", fmt.Errorf("activity log %s: %s: the milter recorded %s with action=%s, the policy (%s) gives %s with action=%s",
					file, line, e.Type, e.Action, r.want, typ, action)
			}
			return fmt.Sprintf("activity log %s: %s", file, line), nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no line for queue %s in the activity logs in %s after %v: is the milter attached to this MTA (smtpd_milters), with this config?",
				qid, r.activityDir, wait)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// findActivity looks through every list's log in dir for the event of the
// message queued as qid, written at since or later.
func findActivity(dir, qid string, since time.Time) (file, line string, e activity.Event, err error) {
	// ReadDir, not Glob: Glob says nothing of a directory it cannot read
	// (0700, another user's), and that must not read as "no line".
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return "", "", e, nil // no event written yet
	}
	if err != nil {
		return "", "", e, fmt.Errorf("activity log: %w", err)
	}
	for _, de := range entries {
		if !strings.HasSuffix(de.Name(), ".log") {
			continue
		}
		name := filepath.Join(dir, de.Name())
		f, err := os.Open(name)
		if err != nil {
			return "", "", e, fmt.Errorf("activity log: %w", err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			ev, perr := activity.ParseLine(strings.TrimSuffix(filepath.Base(name), ".log"), sc.Text())
			if perr == nil && ev.QueueID == qid && !ev.Time.Before(since) {
				f.Close()
				return name, sc.Text(), ev, nil
			}
		}
		serr := sc.Err()
		f.Close()
		if serr != nil {
			return "", "", e, fmt.Errorf("activity log %s: %w", name, serr)
		}
	}
	return "", "", e, nil
}

func (r *records) fromMetrics(wait time.Duration) (string, error) {
	deadline := time.Now().Add(wait)
	series := r.series()
	for {
		now, err := r.counter()
		if err != nil {
			return "", fmt.Errorf("%w: %w", errCannotConfirm, err)
		}
		if now > r.before {
			return fmt.Sprintf("%s rose from %v to %v on %s (no activity_dir is set, so this counter is the only record: "+
				"another infected message in the same seconds would count too, and tag and strip both count as action=accept)",
				series, r.before, now, r.metricsURL), nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("%s stayed at %v on %s for %v: the milter did not count the message; is it attached to this MTA (smtpd_milters)?",
				series, now, r.metricsURL, wait)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (r *records) series() string {
	_, action := r.wantEvent()
	return fmt.Sprintf(`avmilter_messages_total{outcome="infected",action=%q}`, action)
}

// counter reads the series from the milter's /metrics; a series not yet
// there counts 0.
func (r *records) counter() (float64, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(r.metricsURL)
	if err != nil {
		return 0, fmt.Errorf("reading the milter's metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("reading the milter's metrics: GET %s: %s", r.metricsURL, resp.Status)
	}
	_, action := r.wantEvent()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "avmilter_messages_total{") || !strings.Contains(line, `outcome="infected"`) ||
			!strings.Contains(line, `action="`+action+`"`) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, fmt.Errorf("reading the milter's metrics: %q: %w", line, err)
		}
		return v, nil
	}
	return 0, sc.Err()
}

// loopbackFor is a listen address as a client dials it: a wildcard host
// becomes 127.0.0.1.
func loopbackFor(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
