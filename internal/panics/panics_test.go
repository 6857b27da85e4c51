package panics

import (
	"errors"
	"strings"
	"testing"
)

func TestDoAndCall(t *testing.T) {
	plain := errors.New("plain failure")
	tests := []struct {
		name      string
		f         func() (int, error)
		wantV     int
		wantErr   error  // without a panic
		wantPanic string // the *Error's text; "" for no panic
	}{
		{"no panic", func() (int, error) { return 7, nil }, 7, nil, ""},
		{"an error, no panic", func() (int, error) { return 3, plain }, 3, plain, ""},
		{"a panic", func() (int, error) { panic("decoder bug") }, 0, nil, "panic: decoder bug"},
		{"a runtime error", func() (int, error) { var s []int; return s[len(s)], nil }, 0, nil,
			"panic: runtime error: index out of range [0] with length 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			viaDo := func() (v int, err error) {
				err = Do(func() error { var e error; v, e = tt.f(); return e })
				return v, err
			}
			for via, call := range map[string]func() (int, error){"Call": func() (int, error) { return Call(tt.f) }, "Do": viaDo} {
				v, err := call()
				pe, isPanic := errors.AsType[*Error](err)
				if tt.wantPanic == "" {
					if isPanic || err != tt.wantErr || v != tt.wantV {
						t.Errorf("%s: %v, %v; want %v, %v", via, v, err, tt.wantV, tt.wantErr)
					}
					continue
				}
				if !isPanic || pe.Error() != tt.wantPanic || v != 0 {
					t.Fatalf("%s: %v, %v; want %q", via, v, err, tt.wantPanic)
				}
				// The stack is where it panicked, not where it was caught.
				if !strings.Contains(string(pe.Stack), "panics.TestDoAndCall") {
					t.Errorf("%s: stack without the panicking function:\n%s", via, pe.Stack)
				}
			}
		})
	}
}

// TestCatchInGoroutine: Catch in a goroutine of its own keeps the panic in
// that goroutine's error, and the test process (the daemon) goes on.
func TestCatchInGoroutine(t *testing.T) {
	errc := make(chan error, 1)
	go func() {
		var err error
		defer func() { errc <- err }()
		defer Catch(&err)
		var p *struct{ n int }
		_ = p.n
	}()
	if err := <-errc; err == nil || !strings.Contains(err.Error(), "nil pointer") {
		t.Errorf("%v, want the nil dereference as an error", err)
	}
}
