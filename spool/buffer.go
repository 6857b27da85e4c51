// Package spool holds message bytes of unknown size: in memory up to a limit,
// then in a private temporary file that is removed on Close. It is how the
// milter buffers a body and how the scanner holds a decoded part, so that
// neither grows without bound in memory.
package spool

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"sync"
	"sync/atomic"
)

// Memory bounds the bytes that all the buffers sharing it hold in memory at
// once: each buffer still spills past its own limit, and past the shared
// one too. Many large messages at once then cost disk, not memory. The
// zero value and a nil *Memory bound nothing.
type Memory struct {
	max  int64
	used atomic.Int64
}

// NewMemory returns a shared bound of max bytes; max <= 0 bounds nothing.
func NewMemory(max int64) *Memory { return &Memory{max: max} }

// InUse is the bytes held in memory now by the buffers sharing m.
func (m *Memory) InUse() int64 {
	if m == nil {
		return 0
	}
	return m.used.Load()
}

// take reserves n bytes, false when that would pass the bound.
func (m *Memory) take(n int64) bool {
	if m == nil {
		return true
	}
	if now := m.used.Add(n); m.max > 0 && now > m.max {
		m.used.Add(-n)
		return false
	}
	return true
}

func (m *Memory) give(n int64) {
	if m != nil && n != 0 {
		m.used.Add(-n)
	}
}

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
	mem      chunks
	file     *os.File
	size     int64
	closed   bool
	shared   *Memory // nil: only memLimit bounds the memory
	taken    int64   // bytes of shared held by mem
	// sum, once HashSHA256 is called on the empty buffer, is the SHA-256
	// of everything written since: the job protocol's digest of a body
	// taken as it arrives, not by reading it all again.
	sum hash.Hash
}

// New returns an empty buffer that spills to a temporary file in dir ("" for
// the system temporary directory) once it holds more than memLimit bytes.
func New(dir string, memLimit int64) *Buffer {
	return &Buffer{dir: dir, memLimit: memLimit}
}

// NewShared is New with the memory also counted against shared: the buffer
// spills as soon as either bound would be passed.
func NewShared(dir string, memLimit int64, shared *Memory) *Buffer {
	return &Buffer{dir: dir, memLimit: memLimit, shared: shared}
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
	if b.file == nil {
		if b.size+int64(len(p)) > b.memLimit || !b.shared.take(int64(len(p))) {
			if err := b.spill(); err != nil {
				return 0, err
			}
		} else {
			b.taken += int64(len(p))
		}
	}
	var n int
	var err error
	if b.file != nil {
		n, err = b.file.Write(p)
	} else {
		b.mem.write(p)
		n = len(p)
	}
	b.wrote(p[:n])
	return n, err
}

// wrote counts p, just stored, and hashes it when asked to.
func (b *Buffer) wrote(p []byte) {
	b.size += int64(len(p))
	if b.sum != nil {
		b.sum.Write(p)
	}
}

// HashSHA256 makes the buffer keep the SHA-256 of what is written to it,
// for SHA256. It does so only when called before anything is written.
func (b *Buffer) HashSHA256() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.size == 0 && !b.closed {
		b.sum = sha256.New()
	}
}

// SHA256 is the SHA-256 of everything written, when HashSHA256 was called
// on the empty buffer and it is not closed; ok is false otherwise.
func (b *Buffer) SHA256() (sum [sha256.Size]byte, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.sum == nil || b.closed {
		return sum, false
	}
	b.sum.Sum(sum[:0])
	return sum, true
}

func (b *Buffer) spill() error {
	// os.CreateTemp creates the file 0600: message bytes are nobody else's.
	f, err := os.CreateTemp(b.dir, FilePattern)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if err := b.mem.writeTo(f); err != nil {
		f.Close()
		os.Remove(f.Name())
		return fmt.Errorf("spool %s: %w", f.Name(), err)
	}
	b.file = f
	b.mem.free()
	b.release()
	return nil
}

// release gives the shared memory held back.
func (b *Buffer) release() {
	b.shared.give(b.taken)
	b.taken = 0
}

// Grow makes room in memory for n more bytes, when they fit under the
// memory limit: a writer that knows about how much is coming gets them in
// one block.
func (b *Buffer) Grow(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || b.file != nil || n <= 0 || b.size+n > b.memLimit {
		return
	}
	b.mem.grow(int(n))
}

// readChunk is what ReadFrom reads at a time once the content is on disk
// or past the memory bounds.
const readChunk = 32 << 10

// ReadFrom writes what r yields until io.EOF (io.Copy uses it). While the
// content stays in memory, r reads straight into the buffer's blocks: no
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
		if done { // near a memory bound or on disk: Write spills as needed
			n, err := io.CopyBuffer(writerOnly{b}, r, make([]byte, readChunk))
			return total + n, err
		}
	}
}

// readChunk reads once from r into the free space of the last block;
// done is true when there is no room left under the memory bounds. The
// lock is held across the read: it is a write. With the last block full
// it reads into a small array first, so that a buffer grown to the exact
// size does not take a new block just to meet io.EOF.
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
	var small [minRead]byte
	p := b.mem.spare()
	inBlock := len(p) > 0
	if !inBlock {
		p = small[:]
	}
	p = p[:min(int64(len(p)), room)]
	if !b.shared.take(int64(len(p))) {
		return 0, true, nil
	}
	m, err := r.Read(p)
	b.shared.give(int64(len(p) - m))
	b.taken += int64(m)
	if inBlock {
		b.mem.commit(m)
	} else {
		b.mem.write(p[:m])
	}
	b.wrote(p[:m])
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
	return b.mem.readAt(p, off)
}

// Reader returns a fresh reader over everything written so far.
func (b *Buffer) Reader() io.Reader { return io.NewSectionReader(b, 0, b.Size()) }

// Reset empties the buffer for reuse, removing any file.
func (b *Buffer) Reset() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	err := b.removeFile()
	b.mem.free()
	b.release()
	b.size = 0
	b.closed = false
	if b.sum != nil {
		b.sum.Reset()
	}
	return err
}

// Close releases the memory and removes the file, if any.
func (b *Buffer) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	err := b.removeFile()
	b.mem.free()
	b.release()
	b.size = 0
	b.closed = true
	b.sum = nil
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
