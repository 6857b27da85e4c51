package spool

import (
	"io"
	"sync"
)

// chunks holds bytes in memory as a list of blocks that are never moved:
// growing by appending a block, unlike a bytes.Buffer that doubles and
// copies, so that a body held in memory costs its size (and at most one
// partly filled block), not twice its size plus the garbage of every
// copy. With hundreds of bodies held at once that difference is the
// milter's memory.
type chunks struct {
	blocks [][]byte
	size   int64
}

// Block sizes double from minBlock, so that a small message costs little,
// up to maxBlock.
const (
	minBlock = 4 << 10
	maxBlock = 64 << 10
)

// fullBlocks are maxBlock blocks given back by buffers that no longer
// need them, for the next: a large body or part then costs neither a fresh
// zeroed allocation nor garbage (both were a tenth of the station's CPU on
// 100 KB attachments). Only bytes written are ever read, so what a block
// held before is never seen.
var fullBlocks = sync.Pool{New: func() any { b := make([]byte, 0, maxBlock); return &b }}

// newBlock is an empty block of capacity n: a pooled one for maxBlock.
func newBlock(n int) []byte {
	if n == maxBlock {
		return (*fullBlocks.Get().(*[]byte))[:0]
	}
	return make([]byte, 0, n)
}

// free gives the pooled blocks back and forgets every block. The caller
// holds no slice of them any more.
func (c *chunks) free() {
	for _, b := range c.blocks {
		if cap(b) == maxBlock {
			b = b[:0]
			fullBlocks.Put(&b)
		}
	}
	*c = chunks{}
}

func (c *chunks) write(p []byte) {
	for len(p) > 0 {
		if len(c.blocks) == 0 || len(c.last()) == cap(c.last()) {
			n := minBlock
			if len(c.blocks) > 0 {
				n = min(2*cap(c.last()), maxBlock)
			}
			c.blocks = append(c.blocks, newBlock(n))
		}
		last := &c.blocks[len(c.blocks)-1]
		k := copy((*last)[len(*last):cap(*last)], p)
		*last = (*last)[:len(*last)+k]
		p = p[k:]
		c.size += int64(k)
	}
}

func (c *chunks) last() []byte { return c.blocks[len(c.blocks)-1] }

// grow makes room for the next n bytes written: for up to maxBlock, one
// block of exactly n when the last has less room; for more, pooled
// maxBlock blocks from the next on, as write would take them.
func (c *chunks) grow(n int) {
	if len(c.blocks) > 0 && cap(c.last())-len(c.last()) >= n {
		return
	}
	if n >= maxBlock {
		n = maxBlock
	}
	c.blocks = append(c.blocks, newBlock(n))
}

// spare is the free space of the last block (empty when it is full or
// there is none), for a reader to fill; commit then counts what it read.
func (c *chunks) spare() []byte {
	if len(c.blocks) == 0 {
		return nil
	}
	last := c.last()
	return last[len(last):cap(last)]
}

func (c *chunks) commit(n int) {
	last := &c.blocks[len(c.blocks)-1]
	*last = (*last)[:len(*last)+n]
	c.size += int64(n)
}

// readAt is io.ReaderAt over the bytes written.
func (c *chunks) readAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, io.ErrUnexpectedEOF
	}
	if off >= c.size {
		return 0, io.EOF
	}
	n := 0
	start := int64(0)
	for _, b := range c.blocks {
		end := start + int64(len(b))
		if off < end && n < len(p) {
			k := copy(p[n:], b[off-start:])
			n += k
			off += int64(k)
		}
		start = end
		if n == len(p) {
			return n, nil
		}
	}
	return n, io.EOF
}

// writeTo writes every block to w in order.
func (c *chunks) writeTo(w io.Writer) error {
	for _, b := range c.blocks {
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}
