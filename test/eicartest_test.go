package test

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"

	"github.com/avstation/avstation/test/harness"
)

// TestEicarTestConfirms runs avmilter eicar-test through real Postfix for
// the policies that accept the message: it passes only when the milter's
// own record (activity log, else the metrics) shows the policy applied to
// the message Postfix queued, and fails against a Postfix with no milter.
func TestEicarTestConfirms(t *testing.T) {
	clamd := harness.StartClamd(t)
	sink := harness.StartSink(t)
	bare := harness.StartPostfix(t, harness.PostfixOptions{RelayTo: sink.Addr})

	for _, tc := range []struct {
		name, action string
		activity     bool
		metrics      bool
		confirmed    []string // in the output with the milter attached
		notApplied   string   // in the output through the bare Postfix
	}{
		{"tag, activity log", "tag", true, false, []string{"confirmed: activity log ", "/dev.log: ", " VIRUS Eicar-Test-Signature", "action=accept"}, "was not applied: no line for queue "},
		{"strip, activity log", "strip", true, false, []string{"confirmed: activity log ", " STRIPPED Eicar-Test-Signature", "action=accept"}, "was not applied: no line for queue "},
		{"discard, activity log", "discard", true, false, []string{"confirmed: activity log ", " VIRUS Eicar-Test-Signature", "action=discard"}, "was not applied: no line for queue "},
		{"tag, metrics only", "tag", false, true, []string{`confirmed: avmilter_messages_total{outcome="infected",action="accept"} rose from 0 to 1`}, "was not applied: avmilter_messages_total"},
		{"tag, no record kept", "tag", false, false, nil, "is not known: cannot confirm: activity_dir is not set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := harness.MilterOptions{Clamd: clamd.Addr, Metrics: tc.metrics, Policy: "  actions: {infected: {action: " + tc.action + "}}\n"}
			if tc.activity {
				withActivity(&o, t.TempDir())
			} else {
				withActivity(&o, "")
			}
			c := newChain(t, sink, harness.StartMilter(t, bin.Milter, o))

			out, code := eicarTest(t, c.milter.ConfigFile(), c.postfix.SMTPAddr)
			if tc.confirmed == nil {
				if code == 0 || !strings.Contains(out, tc.notApplied) {
					t.Errorf("no record kept (exit %d), want non-zero and %q:\n%s", code, tc.notApplied, out)
				}
				return
			}
			// The line found is the one of the message Postfix queued.
			_, qid, _ := strings.Cut(out, "queued as ")
			qid, _, _ = strings.Cut(qid, "\n")
			if code != 0 || qid == "" || !strings.Contains(out, "OK: accepted, and the milter applied the policy ("+tc.action+")") {
				t.Errorf("with the milter attached (exit %d):\n%s", code, out)
			}
			for _, s := range tc.confirmed {
				if !strings.Contains(out, s) {
					t.Errorf("output has no %q:\n%s", s, out)
				}
			}
			if tc.activity && !strings.Contains(out, "queue="+qid+" ") {
				t.Errorf("the confirmed line is not that of queue %s:\n%s", qid, out)
			}

			out, code = eicarTest(t, c.milter.ConfigFile(), bare.SMTPAddr)
			if code == 0 || !strings.Contains(out, "250 2.0.0 Ok: queued as ") ||
				!strings.Contains(out, "FAIL: accepted, but the policy ("+tc.action+") "+tc.notApplied) {
				t.Errorf("through a Postfix with no milter (exit %d), want non-zero and %q:\n%s", code, tc.notApplied, out)
			}
		})
	}
}

// withActivity sets the milter's activity_dir: a directory, or "" for
// none (activity_dir: off).
func withActivity(o *harness.MilterOptions, dir string) {
	o.ActivityDir = dir
	if dir == "" {
		o.ActivityDir = "off"
	}
}

func eicarTest(t *testing.T, config, smtp string) (string, int) {
	t.Helper()
	cmd := exec.Command(bin.Milter, "eicar-test", "-config", config, "--smtp", smtp, "--to", listRcp, "--wait", "2s")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if cmd.ProcessState == nil {
		t.Fatalf("eicar-test: %v", err)
	}
	t.Logf("avmilter eicar-test --smtp %s (exit %d):\n%s", smtp, cmd.ProcessState.ExitCode(), out.String())
	return out.String(), cmd.ProcessState.ExitCode()
}
