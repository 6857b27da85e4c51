package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/avstation/avstation/activity"
	"github.com/avstation/avstation/config"
	"github.com/avstation/avstation/policy"
)

func TestQueueID(t *testing.T) {
	for _, tc := range []struct{ reply, want string }{
		{"2.0.0 Ok: queued as 4XyZ1b2C3d", "4XyZ1b2C3d"},
		{"2.0.0 Ok: queued as 8F2A91C3B2.", "8F2A91C3B2"},
		{"2.0.0 4BLAb1c2003 Message accepted for delivery", "4BLAb1c2003"},
		{"Ok", ""},
		{"2.0.0 Ok", ""},
		{"", ""},
	} {
		t.Run(tc.reply, func(t *testing.T) {
			if got := queueID(tc.reply); got != tc.want {
				t.Errorf("queueID(%q) = %q, want %q", tc.reply, got, tc.want)
			}
		})
	}
}

// TestConfirmActivity finds the test message's line by queue id, and only
// a line written since the test began, of the type and action the policy gives.
func TestConfirmActivity(t *testing.T) {
	start := time.Now()
	for _, tc := range []struct {
		name   string
		want   policy.Action
		events []activity.Event
		ok     bool
		errSub string
	}{
		{"tag", policy.Tag, []activity.Event{{Type: activity.Virus, Threat: "Eicar", QueueID: "Q1", Action: "accept"}}, true, ""},
		{"strip", policy.Strip, []activity.Event{{Type: activity.Stripped, Threat: "Eicar", QueueID: "Q1", Action: "accept"}}, true, ""},
		{"discard", policy.Discard, []activity.Event{{Type: activity.Virus, Threat: "Eicar", QueueID: "Q1", Action: "discard"}}, true, ""},
		{"another message", policy.Tag, []activity.Event{{Type: activity.Virus, Threat: "Eicar", QueueID: "Q2", Action: "accept"}}, false, "no line for queue Q1"},
		{"an older line", policy.Tag, []activity.Event{{Time: start.Add(-time.Hour), Type: activity.Virus, QueueID: "Q1", Action: "accept"}}, false, "no line for queue Q1"},
		{"another action", policy.Tag, []activity.Event{{Type: activity.Virus, Threat: "Eicar", QueueID: "Q1", Action: "reject"}}, false, "action=reject"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, e := range tc.events {
				e.List = "dev"
				if e.Time.IsZero() {
					e.Time = time.Now()
				}
				if err := (activity.Log{Dir: dir}).Write(e); err != nil {
					t.Fatal(err)
				}
			}
			r := &records{want: tc.want, activityDir: dir, metricsErr: errors.New("metrics_listen is not set")}
			seen, err := r.confirm("Q1", start, 200*time.Millisecond)
			if tc.ok != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.errSub) || errors.Is(err, errCannotConfirm) {
				t.Fatalf("confirm: %q, %v", seen, err)
			}
			if tc.ok && (!strings.Contains(seen, filepath.Join(dir, "dev.log")) || !strings.Contains(seen, "queue=Q1")) {
				t.Errorf("confirm says %q", seen)
			}
		})
	}
}

// TestConfirmMetrics stands the counter in for a missing activity log: a
// rise confirms, no rise does not, and no record at all cannot confirm.
func TestConfirmMetrics(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "# TYPE avmilter_messages_total counter\n"+
			"avmilter_messages_total{action=\"accept\",outcome=\"clean\"} 7\n"+
			"avmilter_messages_total{action=\"accept\",outcome=\"infected\"} %d\n", n.Load())
	}))
	defer srv.Close()
	cfg := &config.Milter{MetricsListen: strings.TrimPrefix(srv.URL, "http://")}
	var out strings.Builder

	r := newRecords(cfg, policy.Tag, &out)
	if r.metricsErr != nil || r.before != 0 {
		t.Fatalf("baseline %v, %v", r.before, r.metricsErr)
	}
	if _, err := r.confirm("", time.Now(), 200*time.Millisecond); err == nil || errors.Is(err, errCannotConfirm) || !strings.Contains(err.Error(), "stayed at 0") {
		t.Errorf("no rise: %v", err)
	}
	n.Add(1)
	seen, err := r.confirm("", time.Now(), 200*time.Millisecond)
	if err != nil || !strings.Contains(seen, "rose from 0 to 1") {
		t.Errorf("a rise: %q, %v", seen, err)
	}

	none := newRecords(&config.Milter{}, policy.Tag, &out)
	if _, err := none.confirm("Q1", time.Now(), 0); !errors.Is(err, errCannotConfirm) || !strings.Contains(err.Error(), "activity_dir is not set") {
		t.Errorf("no record kept: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close() // a port nobody listens on
	down := newRecords(&config.Milter{ActivityDir: t.TempDir(), MetricsListen: ln.Addr().String()}, policy.Tag, &out)
	if _, err := down.confirm("", time.Now(), 0); !errors.Is(err, errCannotConfirm) || !strings.Contains(err.Error(), "names no queue id") {
		t.Errorf("no queue id, metrics down: %v", err)
	}
}

// TestFindActivityUnreadable: a log or directory that cannot be read is an
// error, not "no line" (root reads any file, so they are made unreadable by
// being of the wrong kind); a directory not made yet is no line.
func TestFindActivityUnreadable(t *testing.T) {
	for _, tc := range []struct {
		name    string
		make    func(dir string) string // returns the activity_dir
		wantErr bool
	}{
		{"a log that is a directory", func(dir string) string { os.Mkdir(filepath.Join(dir, "dev.log"), 0o755); return dir }, true},
		{"activity_dir a file", func(dir string) string {
			p := filepath.Join(dir, "file")
			os.WriteFile(p, nil, 0o600)
			return p
		}, true},
		{"activity_dir not made yet", func(dir string) string { return filepath.Join(dir, "none") }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, line, _, err := findActivity(tc.make(t.TempDir()), "Q1", time.Time{})
			if (err != nil) != tc.wantErr || line != "" {
				t.Errorf("findActivity: %q, %v; want error %v", line, err, tc.wantErr)
			}
		})
	}
}
