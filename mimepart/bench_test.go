package mimepart

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
)

// benchMessage is a multipart/mixed message of about size bytes: a text
// part, an alternative, and base64 attachments of 64 KiB lines.
func benchMessage(size int) []byte {
	var b bytes.Buffer
	b.WriteString("From: a@example.org\r\nSubject: bench\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n")
	b.WriteString("--outer\r\nContent-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n--alt\r\nContent-Type: text/plain\r\n\r\nHello.\r\n--alt\r\nContent-Type: text/html\r\n\r\n<p>Hello.</p>\r\n--alt--\r\n")
	line := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xa5}, 57)) + "\r\n"
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, "--outer\r\nContent-Type: application/octet-stream; name=\"f%d.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n", i)
		b.WriteString(strings.Repeat(line, min(1000, (size-b.Len())/len(line)+1)))
	}
	b.WriteString("--outer--\r\n")
	return b.Bytes()
}

func BenchmarkIndex(b *testing.B) {
	for _, size := range []int{100 << 10, 5 << 20} {
		msg := benchMessage(size)
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				if _, err := Index(bytes.NewReader(msg), int64(len(msg)), testLimits()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
