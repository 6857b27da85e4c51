package mimepart

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
)

// nestedMultipart is n multiparts nested in one another, each with its own
// boundary, the innermost holding a text part.
func nestedMultipart(n int, leaf string) string {
	var b strings.Builder
	b.WriteString("Subject: deep\r\n")
	for i := range n {
		fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\n", i, i)
	}
	b.WriteString("Content-Type: text/plain\r\n\r\n" + leaf)
	for i := n - 1; i >= 0; i-- {
		fmt.Fprintf(&b, "\r\n--b%d--", i)
	}
	b.WriteString("\r\n")
	return b.String()
}

// nestedMessages is n attached messages (message/rfc822), each the body
// of the one around it.
func nestedMessages(n int, leaf string) string {
	return "Subject: deep\r\n" + strings.Repeat("Content-Type: message/rfc822\r\n\r\n", n) + "Subject: in\r\n\r\n" + leaf
}

// TestDepthCostsAConstantPerLevel: the index and the walk recurse once per
// level, on a goroutine stack that grows as needed, so nesting has no
// cliff: thousands of levels (far beyond any max_depth) cost a small,
// fixed amount of stack and heap per level, and the leaf at the bottom is
// reached. Stack is measured at the deepest point of the walk, heap as
// what the index holds but for the part paths, whose length is the depth.
func TestDepthCostsAConstantPerLevel(t *testing.T) {
	// Bytes per level. Measured: about 1 KiB of stack (stacks grow by
	// doubling, so the figure reads up to twice that; more under -race)
	// and 2 KiB of heap.
	const maxStack, maxHeap = 4 << 10, 4 << 10
	for _, tt := range []struct {
		name   string
		levels int
		msg    string
	}{
		// Each multipart level searches the rest of the message for its
		// boundary, so that case stays at 2000 levels to keep the test fast.
		{"multiparts", 2000, nestedMultipart(2000, "BOTTOM")},
		{"attached messages", 10000, nestedMessages(10000, "BOTTOM")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			raw := []byte(tt.msg)
			lim := Limits{MaxDepth: tt.levels + 1, MaxParts: tt.levels + 1, MaxHeaderBytes: 1 << 10}
			// A fresh goroutine starts with a small stack: what it grows to
			// is the recursion's.
			type result struct {
				stack, heap uint64
				leaf        string
				err         error
			}
			done := make(chan result)
			go func() {
				var r result
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				m, err := Index(bytes.NewReader(raw), int64(len(raw)), lim)
				if err != nil {
					r.err = err
					done <- r
					return
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				// Less the part paths ("1/1/…/1"), which grow with the depth
				// by design: max_depth bounds them.
				r.heap = after.HeapAlloc - min(after.HeapAlloc, before.HeapAlloc+pathBytes(m.Root))
				r.err = m.Walk(Visitor{Leaf: func(e *Entity, path string, body io.Reader, decoded bool) error {
					var deep runtime.MemStats
					runtime.ReadMemStats(&deep)
					r.stack = deep.StackInuse - min(deep.StackInuse, before.StackInuse)
					b, err := io.ReadAll(body)
					r.leaf = string(b)
					return err
				}, Limit: func(a Anomaly) { r.err = fmt.Errorf("limit %s at %s", a.Detail, a.Path) }})
				runtime.KeepAlive(m)
				done <- r
			}()
			r := <-done
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.leaf != "BOTTOM" {
				t.Fatalf("leaf %q, want the bottom of %d levels", r.leaf, tt.levels)
			}
			perStack, perHeap := r.stack/uint64(tt.levels), r.heap/uint64(tt.levels)
			t.Logf("%d levels: stack %d KiB (%d B a level), index heap %d KiB (%d B a level)", tt.levels, r.stack>>10, perStack, r.heap>>10, perHeap)
			if perStack > maxStack || perHeap > maxHeap {
				t.Errorf("%d levels cost %d B of stack and %d B of heap a level; want at most %d and %d", tt.levels, perStack, perHeap, maxStack, maxHeap)
			}
		})
	}
}

// pathBytes is the length of the paths of e and the entities within it.
func pathBytes(e *Entity) uint64 {
	var n uint64
	for stack := []*Entity{e}; len(stack) > 0; {
		e := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		n += uint64(len(e.Path))
		stack = append(stack, e.Parts...)
		if e.Attached != nil {
			stack = append(stack, e.Attached)
		}
	}
	return n
}

// TestDepthLimitCut: nesting beyond MaxDepth is a limit, not skipped in
// silence, and the parts above the cut are indexed.
func TestDepthLimitCut(t *testing.T) {
	raw := []byte(nestedMultipart(1000, "BOTTOM"))
	m, err := Index(bytes.NewReader(raw), int64(len(raw)), Limits{MaxDepth: 128, MaxParts: 1000, MaxHeaderBytes: 1 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if m.Limit == nil || m.Limit.Detail != "max_depth 128" {
		t.Fatalf("limit %+v, want max_depth 128", m.Limit)
	}
	levels := 0
	for e := m.Root; e != nil && len(e.Parts) > 0; e = e.Parts[0] {
		levels++
	}
	if levels != 128 {
		t.Errorf("%d levels indexed above the cut, want 128", levels)
	}
}
