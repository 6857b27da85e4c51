//go:build avtest

package archive

import (
	"archive/zip"
	"bytes"
	"context"
	"io"
	"testing"
)

// TestDecoderPanicHook: the avtest build's zip decoder panics on a member
// named with DecoderPanicTrigger, and only on it.
func TestDecoderPanicHook(t *testing.T) {
	for _, tt := range []struct {
		name      string
		wantPanic bool
	}{
		{"plain.txt", false},
		{"docs/" + DecoderPanicTrigger + ".txt", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			zw := zip.NewWriter(&b)
			f, _ := zw.Create(tt.name)
			f.Write([]byte("content"))
			zw.Close()
			defer func() {
				if p := recover(); (p != nil) != tt.wantPanic {
					t.Errorf("panic %v, want one: %v", p, tt.wantPanic)
				}
			}()
			Walk(context.Background(), Zip, bytes.NewReader(b.Bytes()), int64(b.Len()), Limits{}, nil,
				func(m Member, r io.Reader) error { return nil })
		})
	}
}
