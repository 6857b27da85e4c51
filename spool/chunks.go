package spool

import "io"

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

func (c *chunks) write(p []byte) {
	for len(p) > 0 {
		if len(c.blocks) == 0 || len(c.last()) == cap(c.last()) {
			n := minBlock
			if len(c.blocks) > 0 {
				n = min(2*cap(c.last()), maxBlock)
			}
			c.blocks = append(c.blocks, make([]byte, 0, n))
		}
		last := &c.blocks[len(c.blocks)-1]
		k := copy((*last)[len(*last):cap(*last)], p)
		*last = (*last)[:len(*last)+k]
		p = p[k:]
		c.size += int64(k)
	}
}

func (c *chunks) last() []byte { return c.blocks[len(c.blocks)-1] }

// grow makes the next n bytes written go into one block: a new block of
// exactly n when the last has less room.
func (c *chunks) grow(n int) {
	if len(c.blocks) > 0 && cap(c.last())-len(c.last()) >= n {
		return
	}
	c.blocks = append(c.blocks, make([]byte, 0, n))
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
