package external

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/avstation/avstation/internal/panics"
)

const (
	// maxOutput is how much of each of stdout and stderr is kept; the rest
	// is read and discarded so that a chatty scanner never blocks on a full
	// pipe nor fills memory.
	maxOutput = 64 << 10
	// maxRaw is how much of the output goes into Detection.Raw.
	maxRaw = 512
	// maxLine bounds the line of output quoted in an error or version.
	maxLine = 200
	// outputGrace is how long the output is still read after the scanner's
	// process group is gone: only a process that left the group (setsid)
	// can hold the pipes open that long, and it is not waited for.
	outputGrace = time.Second
)

// result is how one run ended and what it printed.
type result struct {
	code     int            // exit code, when signal is 0
	signal   syscall.Signal // the signal that ended it, or 0
	timedOut bool           // killed because the timeout (or ctx) ran out
	stdout   capture
	stderr   capture
}

// run runs path with args in dir, in a process group of its own, with stdin
// from /dev/null. When timeout or ctx runs out the whole group is killed,
// and when the scanner exits its group is killed too, so that nothing it
// started outlives the run. The error is for a scanner that could not be
// started, or a panic while reading its output (a *panics.Error); every
// other outcome is in the result.
func run(ctx context.Context, timeout time.Duration, dir, path string, args []string) (*result, error) {
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	// Pipes of our own rather than exec's: with *os.File outputs, Wait
	// returns when the scanner exits, not when the last process holding
	// its stdout (a background child) does.
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, err
	}
	res := &result{}
	var drained sync.WaitGroup
	var outPanic, errPanic error
	drained.Go(func() { outPanic = drain(&res.stdout, outR) })
	drained.Go(func() { errPanic = drain(&res.stderr, errR) })
	finish := func() {
		deadline := time.Now().Add(outputGrace)
		_ = outR.SetReadDeadline(deadline)
		_ = errR.SetReadDeadline(deadline)
		drained.Wait()
		outR.Close()
		errR.Close()
	}

	var killed atomic.Bool
	cmd := exec.CommandContext(rctx, path, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = outW, errW
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		killed.Store(true)
		return killGroup(cmd.Process.Pid)
	}
	err = cmd.Start()
	outW.Close()
	errW.Close()
	if err != nil {
		finish()
		return nil, fmt.Errorf("starting %s: %w", path, err)
	}
	_ = cmd.Wait() // the outcome is in ProcessState
	// The group's ID stays reserved while any member lives, so this reaches
	// only what the scanner left behind.
	_ = killGroup(cmd.Process.Pid)
	finish()
	if err := errors.Join(outPanic, errPanic); err != nil {
		return nil, fmt.Errorf("reading %s's output: %w", path, err)
	}

	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	switch {
	case ws.Exited():
		res.code = ws.ExitStatus()
	case ws.Signaled():
		res.signal = ws.Signal()
		res.timedOut = killed.Load()
	default:
		res.code = cmd.ProcessState.ExitCode()
	}
	return res, nil
}

// killGroup sends SIGKILL to the process group pgid.
func killGroup(pgid int) error {
	err := syscall.Kill(-pgid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return os.ErrProcessDone
	}
	return err
}

// combined is stdout followed by stderr.
func (r *result) combined() []byte {
	return append(append([]byte(nil), r.stdout.buf...), r.stderr.buf...)
}

// raw is the start of the output for Detection.Raw, cut at a character
// boundary.
func (r *result) raw() string {
	b := r.combined()
	if len(b) > maxRaw {
		b = b[:maxRaw]
		for i := 0; i < utf8.UTFMax && len(b) > 0 && !utf8.Valid(b); i++ {
			b = b[:len(b)-1]
		}
	}
	return string(b)
}

// firstLine is the first non-empty line of stdout, else of stderr: a
// version line.
func (r *result) firstLine() string {
	if l := firstLine(r.stdout.buf); l != "" {
		return l
	}
	return firstLine(r.stderr.buf)
}

// errorLine is the first non-empty line of stderr, else of stdout: what a
// failing scanner says about its failure.
func (r *result) errorLine() string {
	if l := firstLine(r.stderr.buf); l != "" {
		return l
	}
	return firstLine(r.stdout.buf)
}

// firstLineSuffix is ": " and the error line, or "" when there was no output.
func (r *result) firstLineSuffix() string {
	if l := r.errorLine(); l != "" {
		return ": " + l
	}
	return ""
}

// exitText says how the run ended: "exit code 2", "killed by signal
// SIGSEGV (segmentation fault)".
func (r *result) exitText() string {
	if r.signal != 0 {
		name, ok := signalNames[r.signal]
		if !ok {
			name = fmt.Sprintf("%d", int(r.signal))
		}
		return fmt.Sprintf("killed by signal %s (%v)", name, r.signal)
	}
	return fmt.Sprintf("exit code %d", r.code)
}

// signalNames are the signals that end a crashing or killed scanner.
var signalNames = map[syscall.Signal]string{
	syscall.SIGABRT: "SIGABRT",
	syscall.SIGBUS:  "SIGBUS",
	syscall.SIGFPE:  "SIGFPE",
	syscall.SIGHUP:  "SIGHUP",
	syscall.SIGILL:  "SIGILL",
	syscall.SIGINT:  "SIGINT",
	syscall.SIGKILL: "SIGKILL",
	syscall.SIGPIPE: "SIGPIPE",
	syscall.SIGQUIT: "SIGQUIT",
	syscall.SIGSEGV: "SIGSEGV",
	syscall.SIGSYS:  "SIGSYS",
	syscall.SIGTERM: "SIGTERM",
	syscall.SIGXCPU: "SIGXCPU",
	syscall.SIGXFSZ: "SIGXFSZ",
}

// firstLine returns the first non-blank line of b, trimmed and bounded.
func firstLine(b []byte) string {
	for line := range bytes.Lines(b) {
		l := strings.TrimSpace(string(line))
		if l == "" {
			continue
		}
		if len(l) > maxLine {
			l = l[:maxLine]
			for len(l) > 0 && !utf8.ValidString(l) {
				l = l[:len(l)-1]
			}
			l += "…"
		}
		return l
	}
	return ""
}

// drain reads r into w to the end, in a goroutine of the run's own: a read
// error only ends the output, and a panic is returned, to fail this scan
// alone.
func drain(w io.Writer, r io.Reader) error {
	return panics.Do(func() error {
		_, _ = io.Copy(w, r)
		return nil
	})
}

// capture keeps the first maxOutput bytes written to it and discards the
// rest.
type capture struct {
	buf []byte
}

func (c *capture) Write(p []byte) (int, error) {
	if room := maxOutput - len(c.buf); room > 0 {
		c.buf = append(c.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}
