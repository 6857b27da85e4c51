package bypass

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	// Write and rename, as an editor or config management does, so that a
	// concurrent Reload never reads a half-written file.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func matches(h *Holder, sender string) bool {
	_, ok := h.List().Match(Message{Sender: sender, EnvelopeTrusted: true})
	return ok
}

func TestHolderNoFile(t *testing.T) {
	h, err := NewHolder("")
	if err != nil {
		t.Fatal(err)
	}
	if h.List() == nil || h.List().Len() != 0 {
		t.Fatalf("List = %v", h.List())
	}
	if err := h.Reload(); err != nil {
		t.Errorf("Reload: %v", err)
	}
	if _, ok := h.List().Match(Message{Sender: "a@example.org", Client: netip.MustParseAddr("192.0.2.1"), AuthUser: "bob", EnvelopeTrusted: true}); ok {
		t.Error("empty list matched")
	}
}

func TestHolderMissingFile(t *testing.T) {
	h, err := NewHolder(filepath.Join(t.TempDir(), "nope"))
	if h != nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("NewHolder = %v, %v", h, err)
	}
}

func TestHolderBadFileAtStart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bypass")
	writeFile(t, path, "nonsense\n")
	h, err := NewHolder(path)
	var pe *Error
	if h != nil || !errors.As(err, &pe) {
		t.Errorf("NewHolder = %v, %v", h, err)
	}
}

func TestHolderReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bypass")
	writeFile(t, path, "*@old.example\n")
	h, err := NewHolder(path)
	if err != nil {
		t.Fatal(err)
	}
	if !matches(h, "a@old.example") || matches(h, "a@new.example") {
		t.Fatal("initial list wrong")
	}

	steps := []struct {
		name    string
		text    string // "" removes the file
		wantErr string
		old     bool // old.example bypassed afterwards
		new     bool // new.example bypassed afterwards
	}{
		{"good file replaces", "*@new.example\n", "", false, true},
		{"bad file keeps old list", "*@old.example\nnot valid\n", "bypass " + path + `: line 2: "not valid" is not an address, *@domain, IP, CIDR or auth:USER`, false, true},
		{"removed file keeps old list", "", "bypass: open " + path + ": no such file or directory", false, true},
		{"fixed file applies", "*@old.example\n*@new.example\n", "", true, true},
		{"emptied file applies", "# nothing bypassed\n", "", false, false},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if st.text == "" {
				if err := os.Remove(path); err != nil {
					t.Fatal(err)
				}
			} else {
				writeFile(t, path, st.text)
			}
			err := h.Reload()
			if got := fmt.Sprint(err); (st.wantErr == "" && err != nil) || (st.wantErr != "" && got != st.wantErr) {
				t.Errorf("Reload error\n got %v\nwant %s", err, st.wantErr)
			}
			if got := matches(h, "a@old.example"); got != st.old {
				t.Errorf("old.example bypassed = %v, want %v", got, st.old)
			}
			if got := matches(h, "a@new.example"); got != st.new {
				t.Errorf("new.example bypassed = %v, want %v", got, st.new)
			}
		})
	}
}

// Readers match while the file is rewritten and reloaded; each reader must
// see one whole list (both entries of a version, never one of each).
func TestHolderConcurrentReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bypass")
	version := func(i int) string {
		return fmt.Sprintf("*@v%d.example\n10.0.%d.0/24\n", i, i)
	}
	writeFile(t, path, version(0))
	h, err := NewHolder(path)
	if err != nil {
		t.Fatal(err)
	}
	const reloads = 50
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				l := h.List()
				// Find which version this list is, then check it is whole.
				var v = -1
				for i := 0; i <= reloads; i++ {
					if _, ok := l.Match(Message{Sender: fmt.Sprintf("x@v%d.example", i), EnvelopeTrusted: true}); ok {
						v = i
						break
					}
				}
				if v < 0 {
					t.Error("list matched no version")
					return
				}
				if _, ok := l.Match(Message{Client: netip.AddrFrom4([4]byte{10, 0, byte(v), 1})}); !ok || l.Len() != 2 {
					t.Errorf("version %d list is not whole", v)
					return
				}
			}
		})
	}
	for i := 1; i <= reloads; i++ {
		writeFile(t, path, version(i))
		if err := h.Reload(); err != nil {
			t.Error(err)
		}
		if i%10 == 0 { // a bad file in between changes nothing
			writeFile(t, path, "bad line\n")
			if err := h.Reload(); err == nil {
				t.Error("bad file reloaded without error")
			}
		}
	}
	close(stop)
	wg.Wait()
	if !matches(h, fmt.Sprintf("x@v%d.example", reloads)) {
		t.Error("last good version not in force")
	}
}
