// Package external is an engine that runs a command-line scanner on each
// stream: IceWarp's "External Filters" (an application, its parameters, the
// return values that mean a virus, "check for file deletion") and
// amavisd-new's @av_scanners.
//
// Each stream is written to a 0600 file in a private 0700 directory, the
// program runs on it in a process group of its own with a timeout, and its
// exit code says infected, clean or failed. No shell is involved: the
// arguments go to execve as they are.
package external

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/avstation/avstation/scanner"
	"github.com/avstation/avstation/scanner/engineerr"
	"github.com/avstation/avstation/verdict"
)

// Defaults of the optional settings.
const (
	// DefaultTimeout bounds one run on one file. Command-line scanners that
	// load their signature database on every run (clamscan) need 10-30 s
	// before they look at the file; a large archive adds to that.
	DefaultTimeout = 60 * time.Second
	// DefaultConcurrency bounds runs at once. A run of such a scanner can
	// take a gigabyte of memory for the database alone: two keep a list
	// server's memory bounded and still overlap the start-up of one with the
	// scan of the other.
	DefaultConcurrency = 2
	// VersionTimeout bounds the run of VersionArgs, as the scanner bounds
	// every engine's Version call.
	VersionTimeout = 5 * time.Second
)

// FilePlaceholder in an argument is replaced by the path of the file to scan.
const FilePlaceholder = "{file}"

// fileName is the temp file's fixed name. The name a sender gave the
// attachment never reaches the file system or the command line; ".bin" is an
// extension no scanner skips.
const fileName = "scan.bin"

// Config describes one command-line scanner.
type Config struct {
	// Name is the engine's name in verdicts and logs, e.g. "clamdscan".
	Name string `yaml:"name" doc:"engine name in verdicts and logs, e.g. clamdscan"`
	// Path is the absolute path of the executable.
	Path string `yaml:"path" doc:"absolute path of the scanner executable"`
	// Args are the arguments; "{file}" in any of them (also as a substring,
	// "--file={file}") is replaced by the temp file's path. No shell, ever.
	Args []string `yaml:"args" doc:"arguments; {file} is replaced by the temp file path (no shell, ever)"`
	// InfectedCodes are the exit codes that mean infected.
	InfectedCodes []int `yaml:"infected_codes" doc:"exit codes that mean infected"`
	// CleanCodes are the exit codes that mean clean. Any other exit code, a
	// signal or a timeout is an engine error.
	CleanCodes []int `yaml:"clean_codes" doc:"exit codes that mean clean; any other code, a signal or a timeout is an engine error"`
	// DeletedMeansInfected is for scanners that remove infected files: the
	// file gone after a run that exited with a clean code means infected.
	DeletedMeansInfected bool `yaml:"deleted_means_infected" doc:"the scanner deletes infected files: the file gone after a clean exit means infected"`
	// ThreatPattern is a Go regexp applied to stdout followed by stderr; its
	// first submatch (or the whole match when it has none) names the threat.
	ThreatPattern string `yaml:"threat_pattern" doc:"Go regexp on stdout+stderr whose first group names the threat"`
	// Timeout bounds one run on one file; default DefaultTimeout.
	Timeout time.Duration `yaml:"timeout" doc:"how long one run on one file may take (0: 60s)"`
	// Concurrency is how many runs may go at once; default DefaultConcurrency.
	Concurrency int `yaml:"concurrency" doc:"runs of this scanner at once (0: 2)"`
	// VersionArgs, when set, are the arguments that make Path print a version
	// line for verdicts, e.g. ["--version"].
	VersionArgs []string `yaml:"version_args" doc:"arguments that make it print its version, for verdicts"`
	// TempDir holds the per-scan directories; "" means os.TempDir(). Exclude
	// it from on-access scanning.
	TempDir string `yaml:"temp_dir" doc:"where the per-scan 0700 directories go; empty: the system temp dir"`
}

// Check returns every problem of c, each as "key: what is wrong; how to
// fix". The threat pattern is compiled here, at load, not at first use.
func (c Config) Check() []string {
	p, _ := c.check()
	return p
}

func (c Config) check() ([]string, *regexp.Regexp) {
	var problems []string
	add := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }

	if strings.TrimSpace(c.Name) == "" {
		add("name: empty; give the engine a short name for verdicts and logs, such as %q", "clamdscan")
	}
	switch fi, err := os.Stat(c.Path); {
	case c.Path == "":
		add("path: empty; set the absolute path of the scanner's executable")
	case !filepath.IsAbs(c.Path):
		add("path: %q is not absolute; write the full path (see `command -v %s`), PATH is not searched", c.Path, filepath.Base(c.Path))
	case err != nil:
		add("path: %v; install the scanner or correct the path", err)
	case !fi.Mode().IsRegular():
		add("path: %s is not a regular file; point at the executable itself", c.Path)
	case fi.Mode()&0o111 == 0 || syscall.Access(c.Path, 1 /* X_OK */) != nil:
		add("path: %s is not executable by this user; chmod +x it or check its owner", c.Path)
	}
	if !slices.ContainsFunc(c.Args, func(a string) bool { return strings.Contains(a, FilePlaceholder) }) {
		add("args: no argument contains %s; add it where the scanner takes the file to scan", FilePlaceholder)
	}
	for _, code := range c.InfectedCodes {
		if slices.Contains(c.CleanCodes, code) {
			add("infected_codes: %d is also in clean_codes; an exit code means one thing, remove it from one list", code)
		}
	}
	for _, l := range []struct {
		key   string
		codes []int
	}{{"infected_codes", c.InfectedCodes}, {"clean_codes", c.CleanCodes}} {
		for _, code := range l.codes {
			if code < 0 || code > 255 {
				add("%s: %d is not an exit code; exit codes are 0 to 255", l.key, code)
			}
		}
	}
	if len(c.CleanCodes) == 0 {
		add("clean_codes: empty; list the exit codes that mean clean (usually [0]), or no file could ever pass")
	}
	if len(c.InfectedCodes) == 0 && !c.DeletedMeansInfected {
		add("infected_codes: empty and deleted_means_infected is off; list the exit codes that mean infected, or nothing could ever be found")
	}
	var re *regexp.Regexp
	if c.ThreatPattern != "" {
		var err error
		if re, err = regexp.Compile(c.ThreatPattern); err != nil {
			add("threat_pattern: %v; write a Go regexp (RE2 syntax) whose first group is the threat name", err)
		}
	}
	if c.Timeout < 0 {
		add("timeout: %v is negative; leave it out for the default %v", c.Timeout, DefaultTimeout)
	}
	if c.Concurrency < 0 {
		add("concurrency: %d is negative; leave it out for the default %d", c.Concurrency, DefaultConcurrency)
	}
	if c.TempDir != "" {
		switch fi, err := os.Stat(c.TempDir); {
		case !filepath.IsAbs(c.TempDir):
			add("temp_dir: %q is not absolute; write the full path", c.TempDir)
		case err != nil:
			add("temp_dir: %v; create the directory or leave temp_dir out for %s", err, os.TempDir())
		case !fi.IsDir():
			add("temp_dir: %s is not a directory; point at a directory", c.TempDir)
		}
	}
	return problems, re
}

// Engine runs one command-line scanner. It implements scanner.Engine and is
// safe for concurrent use.
type Engine struct {
	c   Config
	re  *regexp.Regexp // nil: no threat names
	sem chan struct{}
}

var _ scanner.Engine = (*Engine)(nil)

// New checks c and returns its engine; the error lists every problem.
func New(c Config) (*Engine, error) {
	problems, re := c.check()
	if len(problems) > 0 {
		return nil, fmt.Errorf("external %s: invalid config:\n\t%s", c.Name, strings.Join(problems, "\n\t"))
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	c.Args = slices.Clone(c.Args)
	c.VersionArgs = slices.Clone(c.VersionArgs)
	return &Engine{c: c, re: re, sem: make(chan struct{}, c.Concurrency)}, nil
}

// Name returns the configured name.
func (e *Engine) Name() string { return e.c.Name }

// Scan writes r to a temp file and runs the scanner on it. A run that ends
// with neither an infected nor a clean exit code (or on a signal, or past the
// timeout) is an error naming the exit and the first line of output.
func (e *Engine) Scan(ctx context.Context, r io.Reader) (d scanner.Detection, err error) {
	// Bound the temp files on disk as well as the runs: wait before writing.
	select {
	case e.sem <- struct{}{}:
	case <-ctx.Done():
		return scanner.Detection{}, fmt.Errorf("external %s: waiting for a free run: %w", e.c.Name, ctx.Err())
	}
	defer func() { <-e.sem }()

	dir, err := makeScanDir(e.c.TempDir)
	if err != nil {
		return scanner.Detection{}, fmt.Errorf("external %s: %w", e.c.Name, err)
	}
	defer func() {
		if rerr := removeScanDir(dir); rerr != nil {
			// Mail content left on disk is not to be ignored: fail the scan.
			err = errors.Join(err, fmt.Errorf("external %s: %w", e.c.Name, rerr))
		}
	}()
	file := filepath.Join(dir, fileName)
	if err := writeFile(ctx, file, r); err != nil {
		return scanner.Detection{}, fmt.Errorf("external %s: writing temp file: %w", e.c.Name, err)
	}

	args := make([]string, len(e.c.Args))
	for i, a := range e.c.Args {
		args[i] = strings.ReplaceAll(a, FilePlaceholder, file)
	}
	res, err := run(ctx, e.c.Timeout, dir, e.c.Path, args)
	if err != nil {
		// It would not start: as good as an engine not there.
		return scanner.Detection{}, engineerr.Mark(fmt.Errorf("external %s: %w", e.c.Name, err), engineerr.ErrUnreachable)
	}
	d = scanner.Detection{Raw: res.raw()}
	switch {
	case ctx.Err() != nil:
		return d, fmt.Errorf("external %s: %w", e.c.Name, ctx.Err())
	case res.timedOut:
		return d, engineerr.Mark(fmt.Errorf("external %s: no answer within %v (timeout): killed%s", e.c.Name, e.c.Timeout, res.firstLineSuffix()), engineerr.ErrTimeout)
	case res.signal != 0:
		return d, fmt.Errorf("external %s: %s%s", e.c.Name, res.exitText(), res.firstLineSuffix())
	case slices.Contains(e.c.InfectedCodes, res.code):
		d.Found, d.Threat = true, e.threat(res)
		return d, nil
	case slices.Contains(e.c.CleanCodes, res.code):
		if !e.c.DeletedMeansInfected {
			return d, nil
		}
		switch _, err := os.Lstat(file); {
		case errors.Is(err, fs.ErrNotExist):
			d.Found, d.Threat = true, e.threat(res)
			return d, nil
		case err != nil:
			// Cannot tell whether it was deleted: not clean.
			return d, fmt.Errorf("external %s: checking whether the scanner deleted the file: %w", e.c.Name, err)
		}
		return d, nil
	default:
		return d, fmt.Errorf("external %s: %s%s", e.c.Name, res.exitText(), res.firstLineSuffix())
	}
}

// threat is the first submatch of the threat pattern in the output, or the
// whole match when the pattern has no group; "" without a match.
func (e *Engine) threat(res *result) string {
	if e.re == nil {
		return ""
	}
	m := e.re.FindSubmatch(res.combined())
	switch {
	case m == nil:
		return ""
	case len(m) > 1:
		return strings.TrimSpace(string(m[1]))
	default:
		return strings.TrimSpace(string(m[0]))
	}
}

// Version runs Path with VersionArgs and reports the first line of its
// output. Without VersionArgs it reports the name only. Nothing is cached:
// the scanner caches versions.
func (e *Engine) Version(ctx context.Context) (verdict.Engine, error) {
	info := verdict.Engine{Name: e.c.Name}
	if len(e.c.VersionArgs) == 0 {
		return info, nil
	}
	dir, err := makeScanDir(e.c.TempDir)
	if err != nil {
		return info, fmt.Errorf("external %s: version: %w", e.c.Name, err)
	}
	defer func() { _ = removeScanDir(dir) }()
	res, err := run(ctx, VersionTimeout, dir, e.c.Path, e.c.VersionArgs)
	switch {
	case err != nil:
		return info, fmt.Errorf("external %s: version: %w", e.c.Name, err)
	case ctx.Err() != nil:
		return info, fmt.Errorf("external %s: version: %w", e.c.Name, ctx.Err())
	case res.timedOut:
		return info, fmt.Errorf("external %s: version: no answer within %v", e.c.Name, VersionTimeout)
	case res.signal != 0 || (res.code != 0 && !slices.Contains(e.c.CleanCodes, res.code)):
		return info, fmt.Errorf("external %s: version: %s%s", e.c.Name, res.exitText(), res.firstLineSuffix())
	}
	info.Version = res.firstLine()
	if info.Version == "" {
		return info, fmt.Errorf("external %s: version: %s %s printed nothing", e.c.Name, e.c.Path, strings.Join(e.c.VersionArgs, " "))
	}
	return info, nil
}

// writeFile copies r to a new 0600 file, stopping when ctx is done.
func writeFile(ctx context.Context, name string, r io.Reader) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	// The umask cannot widen 0600, but a strange one could narrow it so
	// that the scanner, running as this user, cannot read the file.
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := io.Copy(f, ctxReader{ctx, r}); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ctxReader ends a copy when ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
