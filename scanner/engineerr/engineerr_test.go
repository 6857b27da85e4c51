package engineerr

import (
	"errors"
	"fmt"
	"io"
	"testing"
)

func TestMark(t *testing.T) {
	base := fmt.Errorf("clamd tcp:127.0.0.1:1: INSTREAM: %w", io.ErrUnexpectedEOF)
	for _, tt := range []struct {
		name string
		err  error
		kind error
	}{
		{"plain", base, ErrUnreachable},
		{"already marked", Mark(base, ErrTimeout), ErrTimeout},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := Mark(tt.err, tt.kind)
			if got.Error() != base.Error() {
				t.Errorf("text %q, want %q", got, base)
			}
			if !errors.Is(got, tt.kind) || !errors.Is(got, io.ErrUnexpectedEOF) {
				t.Errorf("%v: errors.Is kind %v / cause false", got, tt.kind)
			}
			for _, other := range []error{ErrTimeout, ErrUnreachable, ErrProtocol, ErrLimit} {
				if other != tt.kind && errors.Is(got, other) {
					t.Errorf("%v is also %v", got, other)
				}
			}
		})
	}
	if Mark(nil, ErrTimeout) != nil {
		t.Error("Mark(nil) is not nil")
	}
}
