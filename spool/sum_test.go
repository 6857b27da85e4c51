package spool

import (
	"bytes"
	"crypto/sha256"
	"io"
	"testing"
	"testing/iotest"
)

// TestBufferSHA256: a buffer asked to hash while empty gives the SHA-256
// of exactly the bytes it holds, whether they came by Write or ReadFrom,
// stayed in memory, spilled midway or were shared out; one asked too late,
// or closed, gives none; Reset starts the sum afresh.
func TestBufferSHA256(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 10000) // 160000 bytes
	tests := []struct {
		name     string
		memLimit int64
		shared   *Memory
		fill     func(*Buffer)
	}{
		{"writes in memory", 1 << 20, nil, func(b *Buffer) { writeIn(b, data, 1000) }},
		{"writes that spill", 50000, nil, func(b *Buffer) { writeIn(b, data, 7000) }},
		{"writes past shared memory", 1 << 20, NewMemory(30000), func(b *Buffer) { writeIn(b, data, 4096) }},
		{"ReadFrom in memory", 1 << 20, nil, func(b *Buffer) { io.Copy(b, readerOnly{bytes.NewReader(data)}) }},
		{"ReadFrom that spills", 50000, nil, func(b *Buffer) { io.Copy(b, iotest.HalfReader(bytes.NewReader(data))) }},
		{"ReadFrom then writes", 1 << 20, nil, func(b *Buffer) {
			io.Copy(b, readerOnly{bytes.NewReader(data[:70000])})
			writeIn(b, data[70000:], 333)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := NewShared(t.TempDir(), tt.memLimit, tt.shared)
			defer b.Close()
			b.HashSHA256()
			tt.fill(b)
			held, _ := io.ReadAll(b.Reader())
			if !bytes.Equal(held, data) {
				t.Fatalf("held %d bytes, want %d", len(held), len(data))
			}
			if sum, ok := b.SHA256(); !ok || sum != sha256.Sum256(held) {
				t.Errorf("SHA256 = %x, %v; want %x of what it holds", sum, ok, sha256.Sum256(held))
			}
			if err := b.Reset(); err != nil {
				t.Fatal(err)
			}
			b.Write([]byte("again"))
			if sum, ok := b.SHA256(); !ok || sum != sha256.Sum256([]byte("again")) {
				t.Errorf("after Reset: SHA256 = %x, %v; want that of what was written since", sum, ok)
			}
			b.Close()
			if _, ok := b.SHA256(); ok {
				t.Error("a closed buffer gives a sum")
			}
		})
	}

	late := New(t.TempDir(), 1<<20)
	defer late.Close()
	late.Write([]byte("first"))
	late.HashSHA256() // too late: "first" was not hashed
	late.Write([]byte("second"))
	if sum, ok := late.SHA256(); ok {
		t.Errorf("a buffer asked to hash after a write gives %x", sum)
	}
}

// readerOnly hides WriteTo from io.Copy, which then uses Buffer.ReadFrom.
type readerOnly struct{ io.Reader }

func writeIn(b *Buffer, data []byte, n int) {
	for len(data) > 0 {
		k := min(n, len(data))
		b.Write(data[:k])
		data = data[k:]
	}
}
