package activity

import (
	"testing"
	"time"
)

// FuzzParseTime: a --since/--until value that parses gives a time that,
// written in RFC 3339 with its zone, parses back to the same instant
// (round trip), and one written in the log's own layout parses to the
// same local wall clock. Seeds are in testdata/fuzz/FuzzParseTime.
func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"2026-11-21", "2026-11-21T14:00", "2026-11-21 14:00:05", "2026/11/21 14:25:10", "2026-11-21T14:00:00+01:00", "2026-11-21T14:00:00.123456789Z", "2026-02-30", "0000-01-01", "9999-12-31T23:59:59-23:59", "2026-11-21T24:00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tm, err := ParseTime(s)
		if err != nil {
			if !tm.IsZero() {
				t.Fatalf("%q: error %v with time %v", s, err, tm)
			}
			return
		}
		back, err := ParseTime(tm.Format(time.RFC3339Nano))
		if err != nil || !back.Equal(tm) {
			t.Fatalf("%q = %v; as %q it parses to %v, %v", s, tm, tm.Format(time.RFC3339Nano), back, err)
		}
		local := tm.In(time.Local).Truncate(time.Second)
		if y := local.Year(); y < 0 || y > 9999 {
			return // a zone moved it out of what four digits write
		}
		wall, err := ParseTime(local.Format(TimeLayout))
		if err != nil || wall.Format(TimeLayout) != local.Format(TimeLayout) {
			t.Fatalf("%q = %v; in the log layout %q it parses to %v, %v", s, tm, local.Format(TimeLayout), wall, err)
		}
	})
}
