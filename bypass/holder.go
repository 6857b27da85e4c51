package bypass

import (
	"sync"
	"sync/atomic"
)

// Holder holds the current list for concurrent readers and swaps it on
// reload. Readers call List for every message and never block; a reload
// builds a whole new List and swaps the pointer, so a message is matched
// against the old list or the new one, never a mix.
type Holder struct {
	path   string
	reload sync.Mutex // one reload at a time, so the last file read wins
	cur    atomic.Pointer[List]
}

// NewHolder loads the bypass file at path. The path "" means no bypass file:
// the list is empty and never matches, and Reload does nothing. A missing or
// bad file is an error, so a daemon does not start with a list it was not
// given.
func NewHolder(path string) (*Holder, error) {
	h := &Holder{path: path}
	if path == "" {
		h.cur.Store(newList(""))
		return h, nil
	}
	l, err := Load(path)
	if err != nil {
		return nil, err
	}
	h.cur.Store(l)
	return h, nil
}

// Path is the file the holder loads, "" for none.
func (h *Holder) Path() string { return h.path }

// List is the current list. It never returns nil.
func (h *Holder) List() *List { return h.cur.Load() }

// Reload reads the file again and, if every line is good, replaces the
// current list. On error the old list stays in force and the error (an *Error
// listing every bad line, or the I/O error) is returned for the log.
func (h *Holder) Reload() error {
	if h.path == "" {
		return nil
	}
	h.reload.Lock()
	defer h.reload.Unlock()
	l, err := Load(h.path)
	if err != nil {
		return err
	}
	h.cur.Store(l)
	return nil
}
