package external

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/avstation/avstation/internal/panics"
)

// panicWriter panics on its first write.
type panicWriter struct{}

func (panicWriter) Write([]byte) (int, error) { panic("output bug") }

// failingReader fails after its data, as a pipe closed under it does.
type failingReader struct{ io.Reader }

func (r failingReader) Read(p []byte) (int, error) {
	n, err := r.Reader.Read(p)
	if err == io.EOF {
		err = errors.New("read |0: file already closed")
	}
	return n, err
}

// TestDrain: the output reader of a run keeps what it read, takes a read
// error as the end of the output, and returns a panic as an error instead
// of ending the daemon.
func TestDrain(t *testing.T) {
	tests := []struct {
		name      string
		w         io.Writer
		r         io.Reader
		wantPanic bool
		want      string
	}{
		{"all of it", &capture{}, strings.NewReader("stdout: OK\n"), false, "stdout: OK\n"},
		{"a read error ends it", &capture{}, failingReader{strings.NewReader("partial")}, false, "partial"},
		{"a panic", panicWriter{}, strings.NewReader("x"), true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := drain(tt.w, tt.r)
			pe, isPanic := errors.AsType[*panics.Error](err)
			if isPanic != tt.wantPanic || (!tt.wantPanic && err != nil) {
				t.Fatalf("drain: %v, want a panic: %v", err, tt.wantPanic)
			}
			if isPanic && pe.Value != "output bug" {
				t.Errorf("panic %v", pe.Value)
			}
			if c, ok := tt.w.(*capture); ok && string(c.buf) != tt.want {
				t.Errorf("kept %q, want %q", c.buf, tt.want)
			}
		})
	}
}
