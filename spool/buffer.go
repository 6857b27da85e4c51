// Package spool holds message bytes of unknown size: in memory up to a limit,
// then in a private temporary file that is removed on Close. It is how the
// milter buffers a body and how the scanner holds a decoded part, so that
// neither grows without bound in memory.
package spool

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// Buffer collects bytes written to it. Up to MemLimit bytes stay in memory;
// past that everything moves to a file created 0600 in Dir. A Buffer is not
// safe for concurrent writes; reads may run alongside Close. Close it to release memory and remove the file;
// Close is idempotent.
type Buffer struct {
	// mu lets a reader that outlives its use (an HTTP transport still
	// sending a request body after the response came) see ErrClosed
	// instead of racing Close.
	mu       sync.RWMutex
	dir      string
	memLimit int64
	mem      bytes.Buffer
	file     *os.File
	size     int64
	closed   bool
}

// New returns an empty buffer that spills to a temporary file in dir ("" for
// the system temporary directory) once it holds more than memLimit bytes.
func New(dir string, memLimit int64) *Buffer {
	return &Buffer{dir: dir, memLimit: memLimit}
}

// ErrClosed is returned by writes to a closed buffer.
var ErrClosed = errors.New("spool: buffer closed")

// Write appends p, spilling to disk when the memory limit is passed.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, ErrClosed
	}
	if b.file == nil && b.size+int64(len(p)) > b.memLimit {
		if err := b.spill(); err != nil {
			return 0, err
		}
	}
	var n int
	var err error
	if b.file != nil {
		n, err = b.file.Write(p)
	} else {
		n, err = b.mem.Write(p)
	}
	b.size += int64(n)
	return n, err
}

func (b *Buffer) spill() error {
	// os.CreateTemp creates the file 0600: message bytes are nobody else's.
	f, err := os.CreateTemp(b.dir, FilePattern)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if _, err := f.Write(b.mem.Bytes()); err != nil {
		f.Close()
		os.Remove(f.Name())
		return fmt.Errorf("spool %s: %w", f.Name(), err)
	}
	b.file = f
	b.mem = bytes.Buffer{}
	return nil
}

// Grow makes room in memory for n more bytes, when they fit under the
// memory limit: a writer that knows about how much is coming saves the
// buffer's doublings and their copies.
func (b *Buffer) Grow(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || b.file != nil || n <= 0 || b.size+n > b.memLimit {
		return
	}
	b.mem.Grow(int(n))
}

// readChunk is what ReadFrom reads at a time.
const readChunk = 32 << 10

// ReadFrom writes what r yields until io.EOF (io.Copy uses it). While the
// content stays in memory, r reads straight into the buffer's memory: no
// intermediate copy. The error is r's or the spill's.
func (b *Buffer) ReadFrom(r io.Reader) (int64, error) {
	var total int64
	for {
		n, done, err := b.readChunk(r)
		total += n
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
		if done { // near the memory limit or on disk: Write spills as needed
			n, err := io.CopyBuffer(writerOnly{b}, r, make([]byte, readChunk))
			return total + n, err
		}
	}
}

// readChunk reads once from r into the memory's free space; done is true
// when there is no room left under the memory limit. The lock is held
// across the read: it is a write. With little free space it reads into a
// small array first, so that a buffer grown to the exact size does not
// grow again just to meet io.EOF.
func (b *Buffer) readChunk(r io.Reader) (n int64, done bool, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, true, ErrClosed
	}
	room := b.memLimit - b.size
	if b.file != nil || room < minRead {
		return 0, true, nil
	}
	var p []byte
	var small [minRead]byte
	if b.mem.Available() < minRead {
		p = small[:]
	} else {
		p = b.mem.AvailableBuffer()
		p = p[:min(int64(cap(p)), room)]
	}
	m, err := r.Read(p)
	if m > 0 && len(p) == minRead && b.mem.Available() < m {
		b.mem.Grow(int(min(readChunk, room)))
	}
	b.mem.Write(p[:m]) // onto itself from AvailableBuffer: bytes.Buffer's documented pattern
	b.size += int64(m)
	return int64(m), false, err
}

// minRead is the least free space ReadFrom reads into.
const minRead = 512

// writerOnly hides ReadFrom from io.CopyBuffer.
type writerOnly struct{ io.Writer }

// Size is the number of bytes written.
func (b *Buffer) Size() int64 {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.size
}

// OnDisk reports whether the buffer spilled to a file.
func (b *Buffer) OnDisk() bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.file != nil
}

// ReadAt reads the buffered bytes; it may be used while no Write is going on.
func (b *Buffer) ReadAt(p []byte, off int64) (int, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return 0, ErrClosed
	}
	if b.file != nil {
		return b.file.ReadAt(p, off)
	}
	return bytes.NewReader(b.mem.Bytes()).ReadAt(p, off)
}

// Reader returns a fresh reader over everything written so far.
func (b *Buffer) Reader() io.Reader { return io.NewSectionReader(b, 0, b.Size()) }

// Reset empties the buffer for reuse, removing any file.
func (b *Buffer) Reset() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	err := b.removeFile()
	b.mem.Reset()
	b.size = 0
	b.closed = false
	return err
}

// Close releases the memory and removes the file, if any.
func (b *Buffer) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	err := b.removeFile()
	b.mem = bytes.Buffer{}
	b.size = 0
	b.closed = true
	return err
}

func (b *Buffer) removeFile() error {
	if b.file == nil {
		return nil
	}
	name := b.file.Name()
	err := errors.Join(b.file.Close(), os.Remove(name))
	b.file = nil
	if err != nil {
		return fmt.Errorf("spool: removing %s: %w", name, err)
	}
	return nil
}
