package harness

import (
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
	sm := StartSendmail(t, SendmailOptions{Milter: "inet:" + "127.0.0.1:" + itoa(FreePort(t)), RelayTo: sink.Addr})
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

func itoa(n int) string { return strconv.Itoa(n) }
