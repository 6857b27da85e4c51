package digest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestSHA256Hex(t *testing.T) {
	data := strings.Repeat("a line of a message\r\n", 5000) // past one read buffer
	sum := sha256.Sum256([]byte(data[:100000]))
	if got, err := SHA256Hex(strings.NewReader(data), 100000); err != nil || got != hex.EncodeToString(sum[:]) {
		t.Errorf("first 100000 bytes: %q, %v; want %x", got, err, sum)
	}
	if _, err := SHA256Hex(strings.NewReader(data), int64(len(data))+1); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("a size past the end: %v, want io.ErrUnexpectedEOF", err)
	}
}
