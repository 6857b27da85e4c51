package harness

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
)

// Netns is a network namespace the test created, joined to the test's own
// namespace by a veth pair: HostAddr on the test's end, Addr on the
// namespace's end, a /30 of 10.231.0.0/16 that only these two veths carry.
// A process started through Wrap listens on Addr and is reachable from the
// test's namespace only over that link, which Cut and Restore take down and
// bring back like a pulled cable.
type Netns struct {
	Name     string // the `ip netns` name
	HostIf   string // the veth in the test's namespace
	NsIf     string // its peer inside Name
	HostAddr string // e.g. "10.231.4.1"
	Addr     string // e.g. "10.231.4.2"

	ip string
}

// netnsBase is the private range the namespaces' links take their /30s
// from; nothing else on the machine is expected to use it.
var netnsBase = netip.MustParsePrefix("10.231.0.0/16")

var netnsSeq struct {
	sync.Mutex
	n int
}

// StartNetns creates a network namespace and a veth pair into it, with
// names made unique by the test process's PID and a counter, and registers
// a cleanup that deletes both even when the test fails (deleting the
// namespace destroys its end of the pair, and with it the other end). It
// needs root; it fails the test, naming what it tried, when the kernel or
// the container refuses.
func StartNetns(t testing.TB) *Netns {
	t.Helper()
	ip := Program(t, "ip")
	netnsSeq.Lock()
	netnsSeq.n++
	seq := netnsSeq.n
	netnsSeq.Unlock()
	sweepNetns(ip)
	pid := os.Getpid()
	n := &Netns{
		Name: fmt.Sprintf("avtest-%d-%d", pid, seq),
		// An interface name holds at most 15 bytes: "avt" + 7-digit PID + h/n + seq.
		HostIf: fmt.Sprintf("avt%dh%d", pid, seq),
		NsIf:   fmt.Sprintf("avt%dn%d", pid, seq),
		ip:     ip,
	}
	host, peer, err := freeLinkNet(ip, pid*4+seq)
	if err != nil {
		t.Fatalf("harness: netns: %v", err)
	}
	n.HostAddr, n.Addr = host.String(), peer.String()

	if out, err := exec.Command(ip, "netns", "add", n.Name).CombinedOutput(); err != nil {
		t.Fatalf("harness: cannot create a network namespace (ip netns add %s: %v: %s): this test needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) and a kernel with network namespaces", n.Name, err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		// The host end goes with the namespace; deleting it first as
		// well covers a pair whose peer never reached the namespace.
		_ = exec.Command(ip, "link", "del", n.HostIf).Run()
		if out, err := exec.Command(ip, "netns", "del", n.Name).CombinedOutput(); err != nil {
			t.Errorf("harness: netns: ip netns del %s: %v: %s", n.Name, err, strings.TrimSpace(string(out)))
		}
	})
	bits := "/30"
	for _, args := range [][]string{
		{"link", "add", n.HostIf, "type", "veth", "peer", "name", n.NsIf, "netns", n.Name},
		{"addr", "add", n.HostAddr + bits, "dev", n.HostIf},
		{"link", "set", n.HostIf, "up"},
		{"-n", n.Name, "addr", "add", n.Addr + bits, "dev", n.NsIf},
		{"-n", n.Name, "link", "set", n.NsIf, "up"},
		{"-n", n.Name, "link", "set", "lo", "up"},
	} {
		if err := n.run(args...); err != nil {
			t.Fatalf("harness: netns %s: %v", n.Name, err)
		}
	}
	return n
}

// sweepNetns deletes the namespaces of test processes that are gone (a
// test binary killed by its -timeout runs no cleanup): those named
// avtest-PID-N whose PID is no live process. Deleting a namespace destroys
// its end of the veth pair and with it the other end.
func sweepNetns(ip string) {
	out, err := exec.Command(ip, "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		var pid, seq int
		if _, err := fmt.Sscanf(name, "avtest-%d-%d", &pid, &seq); err != nil || name != fmt.Sprintf("avtest-%d-%d", pid, seq) {
			continue
		}
		if pid != os.Getpid() && !procAlive(pid) {
			_ = exec.Command(ip, "netns", "del", name).Run()
		}
	}
}

// freeLinkNet picks a /30 of netnsBase that no interface of the test's
// namespace has an address in, starting from the one start names, so that
// test processes running at the same time take different ones.
func freeLinkNet(ip string, start int) (host, peer netip.Addr, err error) {
	out, err := exec.Command(ip, "-4", "-o", "addr", "show").CombinedOutput()
	if err != nil {
		return host, peer, fmt.Errorf("ip -4 addr show: %v: %s", err, strings.TrimSpace(string(out)))
	}
	var used []netip.Addr
	for _, f := range strings.Fields(string(out)) {
		if p, err := netip.ParsePrefix(f); err == nil && netnsBase.Contains(p.Addr()) {
			used = append(used, p.Addr())
		}
	}
	const nets = 1 << (32 - 16 - 2) // the /30s of a /16
	base := netnsBase.Addr().As4()
	for i := range nets {
		k := (start + i) % nets
		if k == 0 {
			continue // 10.231.0.0/30: keep the range's first network out of it
		}
		a := base
		a[2], a[3] = byte(k>>6), byte(k<<2)
		network := netip.AddrFrom4(a)
		taken := false
		for _, u := range used {
			if netip.PrefixFrom(network, 30).Contains(u) {
				taken = true
			}
		}
		if !taken {
			return network.Next(), network.Next().Next(), nil
		}
	}
	return host, peer, fmt.Errorf("no free /30 left in %s", netnsBase)
}

func (n *Netns) run(args ...string) error {
	if out, err := exec.Command(n.ip, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Wrap is the command line that runs argv inside the namespace. `ip netns
// exec` switches namespace and then executes argv in its own place, so the
// PID of the command is the PID of the program (a signal reaches it).
func (n *Netns) Wrap() []string { return []string{n.ip, "netns", "exec", n.Name} }

// Cut takes the namespace's end of the link down: the test's end loses its
// carrier, so packets to Addr go nowhere, as with a pulled cable. A
// connection attempt fails after the neighbour lookup gives up (seconds),
// and a connection open across the link hangs.
func (n *Netns) Cut(t testing.TB) {
	t.Helper()
	if err := n.run("-n", n.Name, "link", "set", n.NsIf, "down"); err != nil {
		t.Fatalf("harness: netns cut: %v", err)
	}
}

// Restore brings the link Cut took down back up.
func (n *Netns) Restore(t testing.TB) {
	t.Helper()
	if err := n.run("-n", n.Name, "link", "set", n.NsIf, "up"); err != nil {
		t.Fatalf("harness: netns restore: %v", err)
	}
}
