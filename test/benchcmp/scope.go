package main

import (
	"fmt"
	"log"
	"os"
	"sync"
	"testing"
)

// scope lets this program use test/harness, whose Start functions take a
// testing.TB: they start processes, make directories and register cleanups
// through it. A scope collects the cleanups of one run (or of the whole
// program) and runs them, last first, when it is closed; a fatal harness
// error panics with fatal, which main reports after closing every scope.
//
// The embedded testing.TB is nil: it only supplies the interface's
// unexported method. Every method the harness calls is defined here; one
// it does not call would panic, which a harness change would show at once.
type scope struct {
	testing.TB
	name string
	base string // TempDir's parent

	closing  sync.Mutex // held while close runs
	mu       sync.Mutex
	cleanups []func()
	closed   bool
	failed   bool
}

// fatal is the panic value of Fatal and its kin.
type fatal struct{ msg string }

func newScope(name, base string) *scope { return &scope{name: name, base: base} }

// child is a scope for one run, closed with s if still open then: an
// interrupt (root.close) stops the daemons of the run under way too, not
// only those of the whole program.
func (s *scope) child(name string) *scope {
	c := newScope(name, s.base)
	s.Cleanup(c.close)
	return c
}

func (s *scope) Helper()      {}
func (s *scope) Name() string { return s.name }
func (s *scope) Failed() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.failed }
func (s *scope) Log(a ...any) { log.Print(append([]any{s.name + ": "}, a...)...) }
func (s *scope) Logf(f string, a ...any) {
	log.Printf(s.name+": "+f, a...)
}

func (s *scope) Error(a ...any) { s.Log(a...); s.fail() }
func (s *scope) Errorf(f string, a ...any) {
	s.Logf(f, a...)
	s.fail()
}
func (s *scope) fail() { s.mu.Lock(); s.failed = true; s.mu.Unlock() }

func (s *scope) FailNow()       { panic(fatal{s.name + ": failed"}) }
func (s *scope) Fatal(a ...any) { panic(fatal{s.name + ": " + fmt.Sprint(a...)}) }
func (s *scope) Fatalf(f string, a ...any) {
	panic(fatal{s.name + ": " + fmt.Sprintf(f, a...)})
}

// Cleanup registers f; on a closed scope it runs f at once, so that what
// is started after an interrupt closed the scopes is stopped as it starts.
func (s *scope) Cleanup(f func()) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		f()
		return
	}
	s.cleanups = append(s.cleanups, f)
	s.mu.Unlock()
}

// TempDir makes a new directory under base; close removes it (a cleanup
// registered first runs last, after the processes using it have stopped).
func (s *scope) TempDir() string {
	d, err := os.MkdirTemp(s.base, "run-")
	if err != nil {
		s.Fatalf("temp dir: %v", err)
	}
	s.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// close runs the cleanups, last registered first. It may be called twice,
// and from two goroutines (main's end and an interrupt): the second waits
// for the first to finish, so that neither exits with a daemon stopping.
func (s *scope) close() {
	s.closing.Lock()
	defer s.closing.Unlock()
	s.mu.Lock()
	c := s.cleanups
	s.cleanups, s.closed = nil, true
	s.mu.Unlock()
	for i := len(c) - 1; i >= 0; i-- {
		c[i]()
	}
}
