package mimepart

import (
	"bytes"
	"strings"
	"testing"
)

// TestHeaderLineOverLimit: one header line far over max_header_bytes, in
// the message or in a part, is a limit, not an unreadable header (which
// the default policy only tags).
func TestHeaderLineOverLimit(t *testing.T) {
	long := strings.Repeat("A", 1<<20)
	for name, msg := range map[string]string{
		"message": "From: a@example.com\r\nSubject: " + long + "\r\n\r\nbody\r\n",
		"part":    "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nX-Long: " + long + "\r\n\r\nbody\r\n--b--\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			m, err := Index(bytes.NewReader([]byte(msg)), int64(len(msg)), Limits{MaxDepth: 8, MaxParts: 8, MaxHeaderBytes: 64 << 10})
			if err != nil {
				t.Fatal(err)
			}
			if m.Limit == nil || !strings.Contains(m.Limit.Detail, "max_header_bytes") {
				t.Fatalf("limit %+v, want max_header_bytes", m.Limit)
			}
		})
	}
}
