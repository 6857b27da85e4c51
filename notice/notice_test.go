package notice

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func testMessage() Message {
	var h BodyHash
	h.Write([]byte("The virus scanner reported Eicar.\r\n"))
	return Message{MessageID: "<avstation.1.ab@example.org>", Recipients: []string{"owner-dev@lists.example.org", "av-admin@example.org"}, Body: h.Sum()}
}

func TestVerify(t *testing.T) {
	key := NewKey()
	now := time.Unix(1_800_000_000, 0)
	msg := testMessage()
	good := key.Mark("quarantine", msg, now)
	mac := strings.Fields(good)[3]
	tamper := func(f func(m *Message)) Message {
		m := msg
		m.Recipients = append([]string(nil), msg.Recipients...)
		f(&m)
		return m
	}
	tests := []struct {
		name  string
		value string
		msg   Message
		err   error // nil: verifies
	}{
		{"as marked", good, msg, nil},
		{"folded by the MTA", strings.Replace(good, " ", "\r\n\t", 2), msg, nil},
		{"recipients in another order, case and <>", good, tamper(func(m *Message) {
			m.Recipients = []string{"<AV-Admin@example.org>", " owner-dev@lists.example.org"}
		}), nil},
		{"Message-ID folded", good, tamper(func(m *Message) { m.MessageID = " <avstation.1.ab@example.org>\r\n" }), nil},
		{"another Message-ID", good, tamper(func(m *Message) { m.MessageID = "<avstation.2.ab@example.org>" }), ErrSignature},
		{"no Message-ID", good, tamper(func(m *Message) { m.MessageID = "" }), ErrMalformed},
		{"a recipient added", good, tamper(func(m *Message) { m.Recipients = append(m.Recipients, "dev@lists.example.org") }), ErrSignature},
		{"a recipient changed", good, tamper(func(m *Message) { m.Recipients[1] = "dev@lists.example.org" }), ErrSignature},
		{"another body", good, tamper(func(m *Message) { m.Body[0] ^= 1 }), ErrSignature},
		{"another kind", strings.Replace(good, "quarantine", "notification", 1), msg, ErrSignature},
		{"another time", strings.Replace(good, "1800000000", "1800000001", 1), msg, ErrSignature},
		{"another key", NewKey().Mark("quarantine", msg, now), msg, ErrSignature},
		{"upper-case MAC", strings.Replace(good, mac, strings.ToUpper(mac), 1), msg, ErrMalformed},
		{"short MAC", strings.Replace(good, mac, mac[:62], 1), msg, ErrMalformed},
		{"bearer token of old", "notification 0123456789abcdef0123456789abcdef", msg, ErrMalformed},
		{"kind only", "quarantine", msg, ErrMalformed},
		{"version 2", strings.Replace(good, " v1 ", " v2 ", 1), msg, ErrMalformed},
		{"signed time", strings.Replace(good, "1800000000", "+1800000000", 1), msg, ErrMalformed},
		{"extra field", good + " x", msg, ErrMalformed},
		{"kind not a word", strings.Replace(good, "quarantine", "quar-antine", 1), msg, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := key.Verify(tt.value, tt.msg)
			if tt.err == nil {
				if err != nil || st.Kind != "quarantine" || !st.Time.Equal(now) || st.MessageID != "<avstation.1.ab@example.org>" {
					t.Fatalf("Verify = %+v, %v", st, err)
				}
				return
			}
			if !errors.Is(err, tt.err) {
				t.Fatalf("Verify error %v, want %v", err, tt.err)
			}
			if strings.Contains(err.Error(), mac) || strings.Contains(err.Error(), fmt.Sprintf("%x", key.secret)) {
				t.Errorf("error %q holds the MAC or the key", err)
			}
		})
	}
}

func TestGuard(t *testing.T) {
	g := NewGuard(NewKey())
	now := time.Unix(1_800_000_000, 0)
	msg := func(id string) Message { m := testMessage(); m.MessageID = id; return m }
	mark := func(id string, at time.Time) string { return g.Key().Mark("notification", msg(id), at) }
	tests := []struct {
		name  string
		value string
		id    string
		at    time.Time // when it comes back
		err   error
	}{
		{"first time", mark("<1@x>", now), "<1@x>", now.Add(2 * time.Second), nil},
		{"the same notice again", mark("<1@x>", now), "<1@x>", now.Add(3 * time.Second), ErrReplayed},
		{"the same Message-ID, marked anew", mark("<1@x>", now.Add(time.Second)), "<1@x>", now.Add(3 * time.Second), ErrReplayed},
		{"another notice", mark("<2@x>", now), "<2@x>", now.Add(Window), nil},
		{"too late", mark("<3@x>", now), "<3@x>", now.Add(Window + time.Second), ErrExpired},
		{"from the future", mark("<4@x>", now.Add(2*skew)), "<4@x>", now, ErrExpired},
		{"a replay after the first has been forgotten", mark("<1@x>", now), "<1@x>", now.Add(2 * Window), ErrExpired},
		{"forged", "notification v1 1800000000 " + strings.Repeat("0", 64), "<5@x>", now, ErrSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := g.Accept(tt.value, msg(tt.id), tt.at)
			if tt.err == nil && err != nil || tt.err != nil && !errors.Is(err, tt.err) {
				t.Fatalf("Accept = %v, want %v", err, tt.err)
			}
		})
	}
}

func TestGuardCapacity(t *testing.T) {
	g := NewGuard(NewKey())
	g.capacity = 3
	now := time.Unix(1_800_000_000, 0)
	accept := func(id string, marked, at time.Time) error {
		m := testMessage()
		m.MessageID = id
		_, err := g.Accept(g.Key().Mark("notification", m, marked), m, at)
		return err
	}
	for i := range 3 {
		if err := accept(fmt.Sprintf("<%d@x>", i), now, now); err != nil {
			t.Fatal(err)
		}
	}
	// Full of live entries: refused (scanned), never an old one forgotten.
	if err := accept("<9@x>", now, now); !errors.Is(err, ErrFull) {
		t.Fatalf("a fourth notice within the window: %v, want ErrFull", err)
	}
	if err := accept("<0@x>", now, now); !errors.Is(err, ErrReplayed) {
		t.Fatalf("a replay when full: %v, want ErrReplayed", err)
	}
	// Once the first have expired there is room again.
	later := now.Add(Window + time.Minute)
	if err := accept("<9@x>", later, later); err != nil {
		t.Fatalf("after the window: %v", err)
	}
	if len(g.seen) != 1 {
		t.Errorf("%d Message-IDs remembered, want 1", len(g.seen))
	}
}

func FuzzVerify(f *testing.F) {
	key := NewKey()
	msg := testMessage()
	f.Add(key.Mark("quarantine", msg, time.Unix(1_800_000_000, 0)), msg.MessageID)
	f.Add("notification", "")
	f.Add("notification v1 99999999999999999999 00", "<x>")
	f.Fuzz(func(t *testing.T, value, id string) {
		m := msg
		m.MessageID = id
		st, err := key.Verify(value, m)
		if err == nil && (st.MessageID == "" || st.Kind == "") {
			t.Fatalf("verified %q with an empty stamp %+v", value, st)
		}
		if err == nil && key.Mark(st.Kind, m, st.Time) != strings.Join(strings.Fields(value), " ") {
			t.Fatalf("verified %q, which is not a mark made with the key", value)
		}
	})
}
