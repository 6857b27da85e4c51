package harness

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
)

// Restart starts a stopped clamd again with the same config, on the same
// address, and waits until it answers PING: the other half of a test that
// stops clamd to see a station go unready and come back.
func (c *Clamd) Restart(t testing.TB) {
	t.Helper()
	if c.Running() {
		t.Fatal("harness: clamd Restart while it runs; Stop it first")
	}
	out, err := os.OpenFile(filepath.Join(c.Dir, "clamd.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatalf("harness: clamd: %v", err)
	}
	defer out.Close()
	cmd := exec.Command(c.cmd.Path, "-c", filepath.Join(c.Dir, "clamd.conf"))
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("harness: restart clamd: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	// The cleanup registered at the start calls c.Stop, which now ends
	// this process.
	c.cmd, c.exited, c.once, c.PID = cmd, exited, sync.Once{}, cmd.Process.Pid
	if err := c.waitReady(clamdReadyTimeout); err != nil {
		c.Stop()
		t.Fatalf("harness: clamd did not come back: %v\n%s", err, tailFile(c.LogFile, 30))
	}
}
