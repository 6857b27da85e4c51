package scanner

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/avstation/avstation/verdict"
)

// zipOf is a zip of the members, in order; a name ending in / is a
// directory.
func zipOf(t *testing.T, members ...[2]string) string {
	t.Helper()
	var b bytes.Buffer
	w := zip.NewWriter(&b)
	for _, m := range members {
		f, err := w.Create(m[0])
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte(m[1]))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// slowEngine is fakeEngine taking at least d for each archive member of
// the tests ("member ..."): the time budget runs out at the first member
// however loaded the machine is, as long as the other calls take less
// than the budget.
type slowEngine struct {
	fakeEngine
	d time.Duration
}

func (e *slowEngine) Scan(ctx context.Context, r io.Reader) (Detection, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return Detection{}, err
	}
	if bytes.HasPrefix(b, []byte("member ")) {
		time.Sleep(e.d)
	}
	return e.fakeEngine.Scan(ctx, bytes.NewReader(b))
}

// TestMessageBudgets: max_members and max_engine_time are budgets of the
// whole message. When one runs out the archive being expanded stops (no
// further member reaches the engines), the parts after it are still
// scanned, and a limit-exceeded finding names the budget. Empty members
// cost nothing.
func TestMessageBudgets(t *testing.T) {
	three := func(p string) string {
		return zipOf(t, [2]string{p + "1", "member " + p + "1"}, [2]string{p + "2", "member " + p + "2"}, [2]string{p + "3", "member " + p + "3"})
	}
	var empties [][2]string
	for i := range 2000 {
		empties = append(empties, [2]string{fmt.Sprintf("empty%04d", i), ""})
	}
	empties = append(empties, [2]string{"dir/", ""}, [2]string{"eicar.com", "EVIL inside"})
	twoArchives := multipart(textPart, attachment("a.zip", three("a")), attachment("b.zip", three("b")), attachment("late.txt", "EVIL after the archives"))
	tests := []struct {
		name   string
		opt    Options
		engine func() Engine
		msg    string
		limit  string   // the limit-exceeded detail wanted, "" none
		seen   []string // members the engines must have been asked about
		unseen []string // members they must not have been
		status verdict.Status
	}{
		{"members: hit in the second archive", Options{MaxMembers: 4}, func() Engine { return &fakeEngine{} }, twoArchives,
			"max_members 4 for the message exceeded", []string{"member a3", "member b1"}, []string{"member b2", "member b3"}, verdict.Infected},
		{"members: not hit", Options{MaxMembers: 6}, func() Engine { return &fakeEngine{} }, twoArchives,
			"", []string{"member a1", "member b3"}, nil, verdict.Infected},
		{"members: empty ones are free", Options{MaxMembers: 1}, func() Engine { return &fakeEngine{} },
			multipart(textPart, attachment("empties.zip", zipOf(t, empties...))),
			"", []string{"EVIL inside"}, []string{""}, verdict.Infected},
		{"engine time: hit", Options{MaxEngineTime: 100 * time.Millisecond}, func() Engine { return &slowEngine{d: 200 * time.Millisecond} }, twoArchives,
			"max_engine_time 100ms for the message exceeded", []string{"member a1"}, []string{"member a2", "member b1"}, verdict.Infected},
		{"engine time: not hit", Options{MaxEngineTime: time.Hour}, func() Engine { return &slowEngine{d: time.Millisecond} }, twoArchives,
			"", []string{"member a2", "member b3"}, nil, verdict.Infected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := tt.engine()
			tt.opt.CacheEntries = 0
			v := scan(t, tt.opt, e, tt.msg)
			var streams []string
			switch e := e.(type) {
			case *fakeEngine:
				streams = e.streams
			case *slowEngine:
				streams = e.streams
			}
			if v.Status != tt.status {
				t.Errorf("status %s, want %s; findings %+v", v.Status, tt.status, v.Findings)
			}
			limits := 0
			for _, f := range v.Findings {
				if f.Kind == verdict.KindLimitExceeded {
					limits++
					if tt.limit == "" || f.Detail != tt.limit {
						t.Errorf("finding %+v, want limit %q", f, tt.limit)
					}
				}
			}
			if tt.limit != "" && limits == 0 {
				t.Errorf("no limit-exceeded finding; want %q; findings %+v", tt.limit, v.Findings)
			}
			for _, s := range tt.seen {
				if !slices.Contains(streams, s) {
					t.Errorf("engines not asked about %q", s)
				}
			}
			for _, s := range tt.unseen {
				if slices.Contains(streams, s) {
					t.Errorf("engines asked about %q after the budget", s)
				}
			}
			// What follows the archives and the raw message still go to
			// the engines.
			if !slices.ContainsFunc(streams, func(s string) bool { return strings.HasPrefix(s, "From: ") }) {
				t.Error("the raw message was not scanned")
			}
			if strings.Contains(tt.msg, "late.txt") && !slices.Contains(streams, "EVIL after the archives") {
				t.Error("the part after the archives was not scanned")
			}
		})
	}
}

// TestEmptyMembersNotListed: members without content are neither sent
// to the engines nor listed, however many.
func TestEmptyMembersNotListed(t *testing.T) {
	var members [][2]string
	for _, n := range []string{"a", "b", "c", "d/", "e"} {
		members = append(members, [2]string{n, ""})
	}
	members = append(members, [2]string{"f", "content"})
	e := &fakeEngine{}
	v := scan(t, Options{CacheEntries: 0}, e, multipart(attachment("x.zip", zipOf(t, members...))))
	// The part, its one member with content, the raw message.
	if len(e.streams) != 3 {
		t.Errorf("%d engine calls, want 3", len(e.streams))
	}
	var paths []string
	for _, p := range v.Manifest {
		paths = append(paths, p.Path)
	}
	if want := []string{"1", "1/x.zip/f"}; !slices.Equal(paths, want) {
		t.Errorf("manifest %q, want %q", paths, want)
	}
}
