package external

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// DirPattern names the per-run directories in TempDir (MkdirTemp puts
// random digits where the * is), for spool.Sweep.
const DirPattern = "avstation-external-*"

// makeScanDir creates a private 0700 directory for one run under base (""
// means os.TempDir()). The scanner runs in it too, so that whatever it drops
// in its working directory goes when the directory does.
func makeScanDir(base string) (string, error) {
	if base == "" {
		base = os.TempDir()
	}
	dir, err := os.MkdirTemp(base, DirPattern[:len(DirPattern)-1])
	if err != nil {
		return "", fmt.Errorf("creating temp dir: %w", err)
	}
	// MkdirTemp asks for 0700 already; this is against an odd umask.
	if err := os.Chmod(dir, 0o700); err != nil {
		_ = os.RemoveAll(dir)
		return "", fmt.Errorf("creating temp dir: %w", err)
	}
	return dir, nil
}

// removeScanDir removes dir and everything in it, also when the scanner
// left files behind or took the write or search permission off directories.
func removeScanDir(dir string) error {
	if err := os.RemoveAll(dir); err == nil {
		return nil
	}
	// Give every directory back its permissions, top down (WalkDir visits a
	// directory before it reads it), then try again. Symbolic links are not
	// followed: WalkDir reports them as links, not directories.
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(path, 0o700)
		}
		return nil
	})
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("removing temp dir (mail content may be left on disk): %w", err)
	}
	return nil
}
