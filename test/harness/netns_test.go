package harness

import (
	"errors"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestNetns: the namespace's end of the link answers (a connect to a port
// nothing listens on is refused by its kernel, not lost); Cut makes the
// same connect go unanswered and Restore brings the answer back; the
// cleanup removes the namespace and both veths.
func TestNetns(t *testing.T) {
	var n *Netns
	t.Run("link", func(t *testing.T) {
		n = StartNetns(t)
		if n.HostAddr == n.Addr || !netnsBase.Contains(mustAddr(t, n.Addr)) {
			t.Fatalf("addresses %s and %s, want two of %s", n.HostAddr, n.Addr, netnsBase)
		}
		addr := net.JoinHostPort(n.Addr, "9")
		refused := func() error {
			c, err := net.DialTimeout("tcp", addr, 2*time.Second)
			if err == nil {
				c.Close()
				return errors.New("connected: something listens in a namespace of our own")
			}
			if !errors.Is(err, syscall.ECONNREFUSED) {
				return err
			}
			return nil
		}
		if err := refused(); err != nil {
			t.Fatalf("before the cut, %s: %v; want refused by the namespace's kernel", addr, err)
		}
		n.Cut(t)
		if err := refused(); err == nil {
			t.Fatalf("after the cut, %s was still refused: the link carries packets", addr)
		} else {
			t.Logf("cut: %v", err)
		}
		n.Restore(t)
		// The link comes back at once, the neighbour entry may take a
		// moment: poll for the refusal.
		deadline := time.Now().Add(10 * time.Second)
		for err := refused(); err != nil; err = refused() {
			if time.Now().After(deadline) {
				t.Fatalf("after the restore, %s: %v; want refused again", addr, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	if n == nil {
		return
	}
	ip := Program(t, "ip")
	if out, _ := exec.Command(ip, "netns", "list").CombinedOutput(); strings.Contains(string(out), n.Name) {
		t.Errorf("namespace %s left after the cleanup:\n%s", n.Name, out)
	}
	if err := exec.Command(ip, "link", "show", n.HostIf).Run(); err == nil {
		t.Errorf("veth %s left after the cleanup", n.HostIf)
	}
}

func mustAddr(t *testing.T, s string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
