package clamd

import (
	"context"
	"strings"
	"testing"
)

// BenchmarkScan is what one scan of a 1 KB stream costs the client, on a
// kept session and on a connection of its own, against a fake clamd in the
// same process (its CPU is in the figures too; clamd's own is not):
//
//	go test ./scanner/clamd -run '^$' -bench Scan -benchmem
func BenchmarkScan(b *testing.B) {
	data := strings.Repeat("a line of the body\r\n", 50)
	for _, mode := range []string{"session", "connection"} {
		b.Run(mode, func(b *testing.B) {
			var f *fakeClamd
			var opts []Option
			if mode == "session" {
				f = startFake(b, "unix", sessions(b, numbered))
				opts = append(opts, WithSessions(1))
			} else {
				f = startFake(b, "unix", answering(b, "ClamAV 1.4.6", eicarReply, nil))
			}
			c, err := New(f.addr, opts...)
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			for b.Loop() {
				res, err := c.Scan(ctx, strings.NewReader(data))
				if err != nil || res.Found {
					b.Fatalf("scan: %+v, %v", res, err)
				}
			}
		})
	}
}
