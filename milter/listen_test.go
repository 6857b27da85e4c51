package milter

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/avstation/avstation/config"
)

func TestListenUnixSocket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "avmilter.sock")
	cfg := config.DefaultMilter()
	cfg.Listen = "unix:" + path

	// A socket left by a crashed run (nobody listening) is replaced.
	stale, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()
	ln, err := Listen(&cfg)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o660 || fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("socket mode %v, %v; want 0660 socket", fi.Mode(), err)
	}

	// A socket somebody listens on is not taken over.
	if _, err := Listen(&cfg); err == nil || !strings.Contains(err.Error(), "another process is listening") {
		t.Errorf("second Listen: %v", err)
	}
	ln.Close()

	// A regular file in the way is not removed.
	file := filepath.Join(dir, "file")
	os.WriteFile(file, []byte("x"), 0o600)
	cfg.Listen = "unix:" + file
	if _, err := Listen(&cfg); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Listen over a file: %v", err)
	}
	if _, err := os.Stat(file); err != nil {
		t.Errorf("file was removed: %v", err)
	}
}
