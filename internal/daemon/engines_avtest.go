//go:build avtest

package daemon

import (
	"bytes"
	"context"
	"io"

	"github.com/avstation/avstation/scanner"
	"github.com/avstation/avstation/verdict"
)

// PanicTrigger in a message makes the avtest build's panic engine panic,
// as a buggy engine or decoder would: the tests check that one message is
// tempfailed and the daemon goes on. Only binaries built with -tags avtest
// have it.
const PanicTrigger = "AVTEST-" + "PANIC-NOW"

func init() { testEngines = append(testEngines, panicEngine{}) }

type panicEngine struct{}

func (panicEngine) Name() string { return "avtest-panic" }

func (panicEngine) Scan(ctx context.Context, r io.Reader) (scanner.Detection, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return scanner.Detection{}, err
	}
	if bytes.Contains(b, []byte(PanicTrigger)) {
		panic("avtest: injected panic")
	}
	return scanner.Detection{}, nil
}

func (panicEngine) Version(context.Context) (verdict.Engine, error) {
	return verdict.Engine{Name: "avtest-panic", Version: "test"}, nil
}
