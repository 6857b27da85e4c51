package spool

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"testing/iotest"
)

func TestBufferSpillsAndRemoves(t *testing.T) {
	tests := []struct {
		name     string
		memLimit int64
		writes   []string
		onDisk   bool
	}{
		{"memory only", 100, []string{"hello ", "world"}, false},
		{"exactly at limit", 11, []string{"hello ", "world"}, false},
		{"spills on second write", 8, []string{"hello ", "world"}, true},
		{"spills on first write", 2, []string{"hello world"}, true},
		{"empty", 0, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			b := New(dir, tt.memLimit)
			var want bytes.Buffer
			for _, w := range tt.writes {
				if _, err := b.Write([]byte(w)); err != nil {
					t.Fatal(err)
				}
				want.WriteString(w)
			}
			if b.OnDisk() != tt.onDisk {
				t.Errorf("OnDisk = %v, want %v", b.OnDisk(), tt.onDisk)
			}
			if b.OnDisk() {
				fi, err := os.Stat(b.file.Name())
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode().Perm() != 0o600 {
					t.Errorf("spool file mode %v, want 0600", fi.Mode().Perm())
				}
			}
			got, err := io.ReadAll(b.Reader())
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want.Bytes()) || b.Size() != int64(want.Len()) {
				t.Errorf("read %q (size %d), want %q", got, b.Size(), want.Bytes())
			}
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
			if err := b.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
			if left, _ := os.ReadDir(dir); len(left) != 0 {
				t.Errorf("files left after Close: %v", left)
			}
			if _, err := b.Write([]byte("x")); err != ErrClosed {
				t.Errorf("Write after Close: %v, want ErrClosed", err)
			}
		})
	}
}

func TestBufferResetRemovesFile(t *testing.T) {
	dir := t.TempDir()
	b := New(dir, 1)
	b.Write([]byte("spilled"))
	if err := b.Reset(); err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("files left after Reset: %v", left)
	}
	b.Write([]byte("x"))
	if b.Size() != 1 {
		t.Errorf("size after reset and write = %d", b.Size())
	}
	b.Close()
}

// TestSharedMemory: buffers sharing a Memory spill once together they would
// hold more than it allows, even under their own limits, and give their
// share back when they spill, reset or close.
func TestSharedMemory(t *testing.T) {
	dir := t.TempDir()
	shared := NewMemory(10)
	a, b := NewShared(dir, 8, shared), NewShared(dir, 8, shared)
	a.Write([]byte("123456"))
	if a.OnDisk() || shared.InUse() != 6 {
		t.Fatalf("a: on disk %v, in use %d", a.OnDisk(), shared.InUse())
	}
	b.Write([]byte("12345")) // 11 > 10: b spills, though under its own 8
	if !b.OnDisk() || shared.InUse() != 6 {
		t.Fatalf("b: on disk %v, in use %d; want b spilled and 6 in use", b.OnDisk(), shared.InUse())
	}
	a.Write([]byte("789")) // a passes its own limit: spills, gives its 6 back
	if !a.OnDisk() || shared.InUse() != 0 {
		t.Fatalf("a past its own limit: on disk %v, in use %d", a.OnDisk(), shared.InUse())
	}
	for _, buf := range []*Buffer{a, b} {
		got, _ := io.ReadAll(buf.Reader())
		if len(got) == 0 {
			t.Errorf("spilled buffer lost its bytes")
		}
	}
	c := NewShared(dir, 8, shared)
	c.Write([]byte("1234"))
	c.Reset()
	if shared.InUse() != 0 {
		t.Errorf("after Reset %d in use", shared.InUse())
	}
	c.Write([]byte("12"))
	c.Close()
	a.Close()
	b.Close()
	if shared.InUse() != 0 {
		t.Errorf("after Close %d in use", shared.InUse())
	}
	var none *Memory
	d := NewShared(dir, 8, none)
	d.Write([]byte("1234"))
	if d.OnDisk() {
		t.Error("a nil Memory bounds nothing")
	}
	d.Close()
}

// TestChunksReadAt: every (offset, length) reads back what was written,
// across block boundaries and in writes of every size.
func TestChunksReadAt(t *testing.T) {
	var want []byte
	var c chunks
	for i := 0; len(want) < 300<<10; i++ {
		p := bytes.Repeat([]byte{byte(i)}, i*97%70000+1)
		c.write(p)
		want = append(want, p...)
	}
	if c.size != int64(len(want)) {
		t.Fatalf("size %d, want %d", c.size, len(want))
	}
	for _, off := range []int{0, 1, minBlock - 1, minBlock, 3*minBlock + 5, len(want) - 1, len(want)} {
		for _, n := range []int{1, 7, minBlock, maxBlock + 3, len(want)} {
			p := make([]byte, n)
			got, err := c.readAt(p, int64(off))
			wantN := min(n, len(want)-off)
			if got != wantN || !bytes.Equal(p[:got], want[off:off+wantN]) {
				t.Fatalf("readAt(%d, %d) = %d, %v", n, off, got, err)
			}
			if (got < n) != (err == io.EOF) {
				t.Fatalf("readAt(%d, %d): %d bytes, err %v", n, off, got, err)
			}
		}
	}
	for _, b := range c.blocks[:len(c.blocks)-1] {
		if len(b) != cap(b) {
			t.Fatalf("a block before the last is not full: %d of %d", len(b), cap(b))
		}
	}
}

// TestBufferReadFrom: io.Copy into a buffer (its ReadFrom) keeps every
// byte in order, in memory or across the spill, grown or not, and passes
// the reader's error on.
func TestBufferReadFrom(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 10000) // 160000 bytes: several chunks
	boom := errors.New("boom")
	tests := []struct {
		name     string
		memLimit int64
		grow     int64
		src      io.Reader
		want     []byte
		err      error
		onDisk   bool
	}{
		{"in memory", 1 << 20, 0, bytes.NewReader(data), data, nil, false},
		{"grown first", 1 << 20, int64(len(data)), bytes.NewReader(data), data, nil, false},
		{"spills midway", 50000, 0, bytes.NewReader(data), data, nil, true},
		{"one byte at a time", 1 << 20, 0, iotest.OneByteReader(bytes.NewReader(data[:1000])), data[:1000], nil, false},
		{"reader error", 1 << 20, 0, io.MultiReader(bytes.NewReader(data[:70000]), iotest.ErrReader(boom)), data[:70000], boom, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := New(t.TempDir(), tt.memLimit)
			defer b.Close()
			b.Grow(tt.grow)
			n, err := io.Copy(b, tt.src)
			if !errors.Is(err, tt.err) || n != int64(len(tt.want)) {
				t.Fatalf("copied %d, %v; want %d, %v", n, err, len(tt.want), tt.err)
			}
			got, _ := io.ReadAll(b.Reader())
			if !bytes.Equal(got, tt.want) || b.Size() != int64(len(tt.want)) || b.OnDisk() != tt.onDisk {
				t.Errorf("read back %d bytes (equal %v), size %d, on disk %v; want %d, on disk %v",
					len(got), bytes.Equal(got, tt.want), b.Size(), b.OnDisk(), len(tt.want), tt.onDisk)
			}
		})
	}
}

// TestReadFromSharedMemory: io.Copy into buffers sharing a Memory spills
// once the shared bound is reached, keeps every byte, and gives the
// memory back on Close.
func TestReadFromSharedMemory(t *testing.T) {
	dir := t.TempDir()
	shared := NewMemory(100 << 10)
	data := bytes.Repeat([]byte("0123456789abcdef"), 5000) // 80000 bytes
	a, b := NewShared(dir, 1<<20, shared), NewShared(dir, 1<<20, shared)
	for _, buf := range []*Buffer{a, b} {
		if n, err := io.Copy(buf, bytes.NewReader(data)); err != nil || n != int64(len(data)) {
			t.Fatalf("copied %d, %v", n, err)
		}
		got, _ := io.ReadAll(buf.Reader())
		if !bytes.Equal(got, data) {
			t.Fatal("read back different bytes")
		}
	}
	if a.OnDisk() || !b.OnDisk() || shared.InUse() != int64(len(data)) {
		t.Errorf("on disk %v, %v; in use %d; want the second spilled and %d in use", a.OnDisk(), b.OnDisk(), shared.InUse(), len(data))
	}
	a.Close()
	b.Close()
	if shared.InUse() != 0 {
		t.Errorf("after Close %d in use", shared.InUse())
	}
}

// BenchmarkBufferBody: one job body of 140 KB held in memory and let go,
// as the station does for each job and the scanner for each part.
func BenchmarkBufferBody(b *testing.B) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 140<<10/16)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		buf := New("", 1<<20)
		buf.Grow(int64(len(body)))
		if _, err := buf.ReadFrom(bytes.NewReader(body)); err != nil {
			b.Fatal(err)
		}
		buf.Close()
	}
}

// TestPooledBlocksShowOnlyTheirOwnBytes: a block a closed buffer gave back
// shows the next buffer only what that one wrote, however it was grown,
// read or spilled.
func TestPooledBlocksShowOnlyTheirOwnBytes(t *testing.T) {
	for range 4 {
		old := New(t.TempDir(), 1<<20)
		old.Grow(300 << 10)
		old.Write(bytes.Repeat([]byte("SECRET"), 50<<10))
		old.Close()

		b := New(t.TempDir(), 1<<20)
		b.Grow(200 << 10)
		if _, err := b.ReadFrom(strings.NewReader("mine")); err != nil {
			t.Fatal(err)
		}
		b.Write([]byte(" too"))
		got, _ := io.ReadAll(b.Reader())
		if string(got) != "mine too" || b.Size() != 8 {
			t.Fatalf("read %q (size %d), want %q", got[:min(len(got), 40)], b.Size(), "mine too")
		}
		b.Close()
	}
}
