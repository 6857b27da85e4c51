// Package panics turns a panic into an error for the work that panicked.
// The scanner recovers what happens in its own goroutine; the goroutines
// that engines, probes and listeners start themselves run their work
// through Do or Call, so that a bug or a hostile input there fails that
// job or check only, never the daemon.
package panics

import (
	"fmt"
	"log/slog"
	"runtime/debug"
)

// Error is a recovered panic: its value and the stack where it happened.
// Stack is kept out of Error() so that the one log line carrying it is
// the caller's.
type Error struct {
	Value any
	Stack []byte
}

func (e *Error) Error() string { return fmt.Sprintf("panic: %v", e.Value) }

// Catch, deferred directly (defer panics.Catch(&err)), recovers a panic of
// the function deferring it into *err as an *Error.
func Catch(err *error) {
	if p := recover(); p != nil {
		*err = &Error{Value: p, Stack: debug.Stack()}
	}
}

// Do runs f; a panic in it is returned as an *Error.
func Do(f func() error) (err error) {
	defer Catch(&err)
	return f()
}

// Call runs f and returns its results; a panic in it is returned as an
// *Error with v's zero value.
func Call[T any](f func() (T, error)) (v T, err error) {
	defer Catch(&err)
	return f()
}

// Attrs are the panic and its stack for the one log line that reports it.
func (e *Error) Attrs() []any {
	return []any{slog.String("panic", fmt.Sprint(e.Value)), slog.String("stack", string(e.Stack))}
}
