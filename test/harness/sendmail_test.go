package harness

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSendmailWithoutMilter starts the private Sendmail with nothing on the
// milter's port: F=T of deploy/sendmail/avmilter.mc answers 4xx, so that
// nothing passes unfiltered; Stop leaves no process behind.
func TestSendmailWithoutMilter(t *testing.T) {
	sink := StartSink(t)
	sm := StartSendmail(t, SendmailOptions{Milter: "inet:127.0.0.1:" + strconv.Itoa(FreePort(t)), RelayTo: sink.Addr})
	t.Logf("banner: %s", sm.Banner)
	msg := BuildMessage("sender@example.com", "rcpt@example.net", "no milter", "hello\n")
	res := Send(t, sm.SMTPAddr, "sender@example.com", []string{"rcpt@example.net"}, msg)
	if res.Code/100 != 4 {
		t.Fatalf("Send = %+v, want 4xx with the milter unreachable\n%s", res, sm.LogTail(30))
	}
	t.Logf("Sendmail answered %d %s", res.Code, res.Text)
	sm.WaitLog(t, 5*time.Second, "Milter (avmilter)")
	if n := sink.Count(nil); n != 0 {
		t.Fatalf("%d messages relayed without the milter", n)
	}
	// Sendmail sees the harness's resolver (nothing leaves the machine);
	// the system's file is untouched.
	seen, err := os.ReadFile(fmt.Sprintf("/proc/%d/root/etc/resolv.conf", sm.PID))
	if err != nil || !strings.Contains(string(seen), "nameserver 127.0.0.1\n") || strings.Count(string(seen), "nameserver") != 1 {
		t.Errorf("Sendmail's resolv.conf: %v\n%s", err, seen)
	}
	if sys, _ := os.ReadFile("/etc/resolv.conf"); bytes.Contains(sys, []byte("the harness's")) {
		t.Errorf("the system's /etc/resolv.conf is the harness's")
	}
	ns := sm.namespacePIDs()
	if len(ns) == 0 {
		t.Fatalf("no process in Sendmail's mount namespace %q", sm.mntNS)
	}
	sm.Stop()
	if left := sm.namespacePIDs(); len(left) > 0 {
		t.Fatalf("processes %v of the stopped Sendmail remain", left)
	}
	if !strings.Contains(sm.Log(), "starting daemon") {
		t.Errorf("no start line in the syslog capture:\n%s", sm.Log())
	}
}

// TestAdaptDeployMC: the harness changes S= and T= of the deployment's
// line and nothing else, and refuses a file without that line.
func TestAdaptDeployMC(t *testing.T) {
	deploy := "dnl comment\nINPUT_MAIL_FILTER(`avmilter', `S=inet:7357@127.0.0.1, F=T, T=S:4m;R:4m;E:10m')\ndefine(`confMILTER_MACROS_EOM', `{msg_id}, i')dnl\n"
	tests := []struct {
		name, text, timeouts, want, wantErr string
	}{
		{"port only", deploy, "", "INPUT_MAIL_FILTER(`avmilter', `S=inet:9999@127.0.0.1, F=T, T=S:4m;R:4m;E:10m')", ""},
		{"port and timeouts", deploy, "S:5s;R:3s;E:60s", "INPUT_MAIL_FILTER(`avmilter', `S=inet:9999@127.0.0.1, F=T, T=S:5s;R:3s;E:60s')", ""},
		{"no F=T", strings.Replace(deploy, "F=T, ", "", 1), "", "", "has no line INPUT_MAIL_FILTER"},
		{"no line", "dnl nothing\n", "", "", "has no line INPUT_MAIL_FILTER"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := adaptDeployMC(tc.text, "inet:9999@127.0.0.1", tc.timeouts)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(got, "\n")
			if len(lines) != 4 || lines[1] != tc.want || lines[0] != "dnl comment" || !strings.HasPrefix(lines[2], "define(`confMILTER_MACROS_EOM'") {
				t.Errorf("got\n%s\nwant line 2 %s", got, tc.want)
			}
		})
	}
}
