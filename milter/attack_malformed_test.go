package milter

import (
	"net"
	"testing"
	"time"

	"github.com/d--j/go-milter"
)

// TestMalformedPacketsDoNotCrash: go-milter v0.10.2 indexes packets it
// has not checked (wire.ReadPacket's data[0] for a zero-length packet,
// Connect, MAIL and RCPT data without their NUL) in the goroutine it
// runs each connection in, with no recover: one such packet from
// whoever reaches the milter socket took the whole daemon down. The
// connection is dropped instead (wireConn.checkPacket), and the next one
// is served. Without the check, each case panics the test binary.
func TestMalformedPacketsDoNotCrash(t *testing.T) {
	fs := &fakeScanner{v: cleanVerdictForTest()}
	addr, _, _, _ := startMilter(t, nil, fs)
	optneg := packet('O', string([]byte{0, 0, 0, 6, 0, 0, 1, 0xff, 0, 0x1f, 0xff, 0xff}))
	for _, tt := range []struct {
		name string
		send [][]byte
	}{
		{"zero-length first packet", [][]byte{{0, 0, 0, 0}}},
		{"zero-length packet after negotiation", [][]byte{optneg, {0, 0, 0, 0}}},
		{"connect without NUL", [][]byte{optneg, packet('C', "host")}},
		{"connect with only a hostname", [][]byte{optneg, packet('C', "host\x00")}},
		{"mail without NUL", [][]byte{optneg, packet('M', "<a@b>")}},
		{"rcpt without NUL", [][]byte{optneg, packet('R', "<a@b>")}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for _, b := range tt.send {
				if _, err := c.Write(b); err != nil {
					t.Fatal(err)
				}
				time.Sleep(20 * time.Millisecond)
			}
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			buf := make([]byte, 4096)
			for {
				if _, err := c.Read(buf); err != nil {
					break // dropped, as it should be
				}
			}
			// The daemon still serves.
			r := transact(t, addr, []string{"dev@lists.example.org"}, [][2]string{{"Subject", "hi"}}, "body\r\n")
			if r.act == nil || r.act.Type != milter.ActionAccept {
				t.Fatalf("after %s: %+v", tt.name, r)
			}
		})
	}
}

// FuzzMilterWire sends whatever bytes, after a real option negotiation,
// to a running avmilter server: go-milter parses them in a goroutine with
// no recover, so any packet it would index past its end crashes the fuzz
// run.
func FuzzMilterWire(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0})
	f.Add(packet('C', "host\x004\x00\x19127.0.0.1\x00"))
	f.Add(packet('C', "host\x00"))
	f.Add(append(packet('M', "<a@b>\x00"), packet('R', "<c@lists.example.org>")...))
	f.Add(append(packet('D', "Mi\x00Q1\x00"), packet('L', "Subject\x00")...))
	f.Add(append(packet('T', ""), append(packet('N', ""), packet('B', "body")...)...))
	f.Add(packet('E', ""))
	f.Add(packet('O', "\x00\x00\x00\x06"))
	f.Fuzz(func(t *testing.T, data []byte) {
		addr, _, _, _ := startMilter(t, nil, &fakeScanner{v: cleanVerdictForTest()})
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write(packet('O', string([]byte{0, 0, 0, 6, 0, 0, 1, 0xff, 0, 0x1f, 0xff, 0xff})))
		c.Write(data)
		c.(*net.TCPConn).CloseWrite()
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 4096)
		for {
			if _, err := c.Read(buf); err != nil {
				break
			}
		}
	})
}
