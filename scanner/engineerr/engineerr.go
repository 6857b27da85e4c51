// Package engineerr holds the kinds of engine failure, as sentinel errors
// that the engines (clamd, external scanners) wrap with %w and that the
// station sorts its metrics by with errors.Is. It has no dependencies, so
// that every engine package and the scanner can import it.
package engineerr

import "errors"

var (
	// ErrTimeout: the engine did not answer in time (its own deadline, a
	// hung connection, a killed scanner process).
	ErrTimeout = errors.New("engine timeout")
	// ErrUnreachable: the engine could not be reached or went away
	// (connection refused or lost, no clamd up, a scanner that would not
	// start).
	ErrUnreachable = errors.New("engine unreachable")
	// ErrProtocol: the engine answered something that is not an answer
	// (a reply that does not parse, clamd's PROTOCOL ERROR).
	ErrProtocol = errors.New("engine protocol error")
	// ErrLimit: the engine refused the content for its size (clamd's
	// StreamMaxLength). A limit-exceeded finding, not an engine failure.
	ErrLimit = errors.New("engine size limit")
)

// Mark returns err, its text unchanged, so that errors.Is(err, kind) holds
// as well: for engines whose errors already say what happened and only lack
// the kind. A nil err stays nil; an err already of that kind is returned as
// it is.
func Mark(err, kind error) error {
	if err == nil || errors.Is(err, kind) {
		return err
	}
	return &marked{err, kind}
}

type marked struct{ err, kind error }

func (e *marked) Error() string   { return e.err.Error() }
func (e *marked) Unwrap() []error { return []error{e.err, e.kind} }
