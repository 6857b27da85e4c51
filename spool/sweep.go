package spool

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// FilePattern names the files a Buffer spills to, as os.CreateTemp's
// pattern and as a Sweep glob.
const FilePattern = "avspool-*"

// Sweep removes what a crashed run left in dir: the entries directly in
// dir whose name matches one of patterns (filepath.Match globs on the
// name) and that were last modified before before. A pattern matches
// regular files only; one ending in "/" matches directories only, which
// are removed with everything in them. Nothing else is touched: no
// symbolic link (followed or removed), no other kind of file, nothing in a
// subdirectory that does not match. Pass time.Now() for a directory of this
// daemon alone; for a shared one (the system temp dir), a time further back
// than any scan lasts, so that another running daemon keeps its files.
//
// It returns how many entries it removed; the error joins every failure,
// each naming its path.
func Sweep(dir string, patterns []string, before time.Time) (int, error) {
	for _, p := range patterns {
		if _, err := filepath.Match(strings.TrimSuffix(p, "/"), ""); err != nil || p == "" || strings.ContainsRune(strings.TrimSuffix(p, "/"), '/') {
			return 0, fmt.Errorf("spool: sweep %s: bad pattern %q", dir, p)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, nil
		}
		return 0, fmt.Errorf("spool: sweep: %w", err)
	}
	n := 0
	var errs []error
	for _, e := range entries {
		if !e.Type().IsRegular() && !e.IsDir() {
			continue // ReadDir reports a symbolic link as one, never its target
		}
		if !matches(e.Name(), e.IsDir(), patterns) {
			continue
		}
		path := filepath.Join(dir, e.Name())
		fi, err := os.Lstat(path)
		if err != nil || !fi.ModTime().Before(before) || fi.IsDir() != e.IsDir() {
			continue // gone, in use now, or replaced since ReadDir
		}
		if e.IsDir() {
			err = removeTree(path)
		} else {
			err = os.Remove(path)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("spool: sweep: %w", err))
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

func matches(name string, dir bool, patterns []string) bool {
	for _, p := range patterns {
		glob, isDir := strings.CutSuffix(p, "/")
		if isDir != dir {
			continue
		}
		if ok, _ := filepath.Match(glob, name); ok {
			return true
		}
	}
	return false
}

// removeTree removes dir and everything in it, also when a scanner took
// the write or search permission off a directory inside. RemoveAll and
// WalkDir do not follow symbolic links.
func removeTree(dir string) error {
	if err := os.RemoveAll(dir); err == nil {
		return nil
	}
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(path, 0o700)
		}
		return nil
	})
	return os.RemoveAll(dir)
}
