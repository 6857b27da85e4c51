package harness

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestEICAR(t *testing.T) {
	e := EICAR()
	if len(e) != 68 {
		t.Fatalf("EICAR is %d bytes, want 68", len(e))
	}
	if !bytes.HasPrefix(e, []byte("X5O!P%@AP")) || !bytes.HasSuffix(e, []byte("$H+H*")) {
		t.Fatalf("EICAR = %q", e)
	}
}

// instream scans data with clamd's INSTREAM command over a raw connection
// (clamd(8): "zINSTREAM\0", then chunks of 4-byte big-endian length + data,
// a zero-length chunk to end; the reply is NUL-terminated).
func instream(t *testing.T, addr string, data []byte) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial clamd: %v", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	var buf bytes.Buffer
	buf.WriteString("zINSTREAM\x00")
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(data)))
	buf.Write(n[:])
	buf.Write(data)
	buf.Write([]byte{0, 0, 0, 0})
	if _, err := c.Write(buf.Bytes()); err != nil {
		t.Fatalf("write clamd: %v", err)
	}
	reply, err := bufio.NewReader(c).ReadString(0)
	if err != nil && err != io.EOF {
		t.Fatalf("read clamd: %v", err)
	}
	return strings.TrimRight(reply, "\x00")
}

func TestClamdFindsEICAR(t *testing.T) {
	start := time.Now()
	c := StartClamd(t)
	t.Logf("StartClamd took %v", time.Since(start))
	if !strings.HasPrefix(c.Addr, "tcp:127.0.0.1:") {
		t.Fatalf("Addr = %q", c.Addr)
	}

	tests := []struct {
		name string
		data []byte
		want string // prefix of the signature; "" means OK
	}{
		{"eicar raw", EICAR(), EicarSignature},
		{"eicar in mail", BuildMessage("a@example.com", "b@example.com", "virus", "see attachment",
			Attachment{Name: "eicar.com", Data: EICAR()}), EicarSignature},
		{"clean", []byte("hello, world\n"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reply := instream(t, c.TCPAddr, tt.data)
			// "stream: NAME FOUND" or "stream: OK".
			if tt.want == "" {
				if reply != "stream: OK" {
					t.Fatalf("reply %q, want stream: OK", reply)
				}
				return
			}
			name, ok := strings.CutSuffix(strings.TrimPrefix(reply, "stream: "), " FOUND")
			if !ok || !strings.HasPrefix(name, tt.want) {
				t.Fatalf("reply %q, want %s… FOUND", reply, tt.want)
			}
			if !strings.HasSuffix(name, ".UNOFFICIAL") {
				t.Logf("note: signature %q has no .UNOFFICIAL suffix", name)
			}
		})
	}

	pid := c.PID
	c.Stop()
	if c.Running() || procAlive(pid) {
		t.Fatalf("clamd %d still running after Stop", pid)
	}
	c.Stop() // twice is fine
}

func TestSinkDirect(t *testing.T) {
	s := StartSink(t)
	body := "line one\n.leading dot\n..two dots\n.\nend"
	msg := BuildMessage("from@example.com", "to@example.org", "sink test", body)
	res := Send(t, s.Addr, "from@example.com", []string{"to@example.org", "cc@example.org"}, msg)
	if res.Err != nil || res.Code != 250 {
		t.Fatalf("Send = %+v", res)
	}
	got := s.WaitFor(t, nil, time.Second)
	if got.From != "from@example.com" || strings.Join(got.To, ",") != "to@example.org,cc@example.org" {
		t.Fatalf("envelope %q %q", got.From, got.To)
	}
	if !bytes.Equal(got.Data, msg) {
		t.Fatalf("data differs:\n got %q\nwant %q", got.Data, msg)
	}
	if n := s.Count(func(d Delivered) bool { return d.From == "nobody@x" }); n != 0 {
		t.Fatalf("Count = %d", n)
	}
}

func TestSendReportsRefusal(t *testing.T) {
	// A server that refuses RCPT: Send reports it without failing the test.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		fmt.Fprint(c, "220 x ESMTP\r\n")
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			switch {
			case strings.HasPrefix(line, "EHLO"):
				fmt.Fprint(c, "250-x\r\n250 PIPELINING\r\n")
			case strings.HasPrefix(line, "MAIL"):
				fmt.Fprint(c, "250 ok\r\n")
			case strings.HasPrefix(line, "RCPT"):
				fmt.Fprint(c, "550 5.1.1 no such user\r\n")
			default:
				fmt.Fprint(c, "221 bye\r\n")
				return
			}
		}
	}()
	res := Send(t, ln.Addr().String(), "a@example.com", []string{"b@example.com"}, []byte("Subject: x\r\n\r\nx\r\n"))
	if res.Code != 550 || res.Text != "5.1.1 no such user" || res.Err == nil {
		t.Fatalf("Send = %+v", res)
	}
}

func TestBuildMessageAttachments(t *testing.T) {
	data := bytes.Repeat([]byte{0, 1, 2, 255}, 100)
	msg := BuildMessage("a@example.com", "b@example.com", "Grüße", "body",
		Attachment{Name: "a.bin", Data: data},
		Attachment{Name: "ü.txt", ContentType: "text/plain", Data: []byte("x")})
	s := string(msg)
	for _, want := range []string{
		"Content-Type: multipart/mixed; boundary=",
		"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=",
		"Content-Disposition: attachment; filename=a.bin",
		"filename*=utf-8''%C3%BC.txt",
		"Content-Transfer-Encoding: base64",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("message lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(strings.ReplaceAll(s, "\r\n", ""), "\n") {
		t.Errorf("bare LF in message")
	}
}

func TestPostfixRelaysToSink(t *testing.T) {
	sink := StartSink(t)

	// Two instances at once, started in parallel.
	var wg sync.WaitGroup
	pfs := make([]*Postfix, 2)
	durs := make([]time.Duration, 2)
	for i := range pfs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			pfs[i] = StartPostfix(t, PostfixOptions{RelayTo: sink.Addr})
			durs[i] = time.Since(start)
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("StartPostfix took %v and %v (in parallel)", durs[0], durs[1])
	if pfs[0].SMTPAddr == pfs[1].SMTPAddr || pfs[0].QueueDir == pfs[1].QueueDir {
		t.Fatalf("instances share %s / %s", pfs[0].SMTPAddr, pfs[0].QueueDir)
	}

	body := "Hello through Postfix.\n.a line with a leading dot\n\nbye\n"
	for i, pf := range pfs {
		subject := fmt.Sprintf("relay test %d", i)
		msg := BuildMessage("sender@example.com", "rcpt@example.net", subject, body,
			Attachment{Name: "data.bin", Data: []byte("some attachment bytes")})
		sent := time.Now()
		res := Send(t, pf.SMTPAddr, "sender@example.com", []string{"rcpt@example.net"}, msg)
		if res.Err != nil || res.Code != 250 || !strings.HasPrefix(res.Text, "2.0.0 Ok: queued as ") {
			t.Fatalf("instance %d: Send = %+v\n%s", i, res, pf.LogTail(20))
		}
		got := sink.WaitFor(t, func(d Delivered) bool {
			return bytes.Contains(d.Data, []byte("Subject: "+subject+"\r\n"))
		}, 10*time.Second)
		t.Logf("instance %d: relayed to the sink in %v", i, time.Since(sent))
		if got.From != "sender@example.com" || len(got.To) != 1 || got.To[0] != "rcpt@example.net" {
			t.Fatalf("envelope %q %q", got.From, got.To)
		}
		// Postfix prepends Received: (and nothing else here); the message as
		// sent must follow byte for byte.
		if !bytes.HasSuffix(got.Data, msg) {
			t.Fatalf("delivered data does not end with the message sent:\n%s", got.Data)
		}
		if !bytes.HasPrefix(got.Data, []byte("Received: from avtest-client.localdomain")) {
			t.Fatalf("no Received header first:\n%s", got.Data)
		}
	}
	if n := sink.Count(nil); n != 2 {
		t.Fatalf("sink has %d messages, want 2", n)
	}
	for _, pf := range pfs {
		line := pf.WaitLog(t, "status=sent", 5*time.Second)
		if !strings.Contains(line, "relay=127.0.0.1["+sink.Addr[len("127.0.0.1:"):]) &&
			!strings.Contains(line, "relay=127.0.0.1[127.0.0.1]:"+sink.Addr[len("127.0.0.1:"):]) {
			t.Fatalf("delivery not to the sink: %s", line)
		}
	}

	// Stop one and check that its processes and files go.
	pf := pfs[0]
	pid := pf.MasterPID
	pf.Stop()
	if procAlive(pid) {
		t.Fatalf("master %d alive after Stop", pid)
	}
	if left := procsWithEnv("MAIL_CONFIG=" + pf.ConfigDir); len(left) > 0 {
		t.Fatalf("processes %v of the stopped instance remain", left)
	}
	// The other still works.
	res := Send(t, pfs[1].SMTPAddr, "s@example.com", []string{"r@example.net"}, BuildMessage("s@example.com", "r@example.net", "after", "x"))
	if res.Code != 250 {
		t.Fatalf("second instance after first stopped: %+v", res)
	}
	sink.WaitFor(t, func(d Delivered) bool { return bytes.Contains(d.Data, []byte("Subject: after\r\n")) }, 10*time.Second)
}

func TestPostfixMasterCF(t *testing.T) {
	cf, err := postfixMasterCF("127.0.0.1:2525")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(cf, "\n127.0.0.1:2525 inet n - n - - smtpd\n") {
		t.Errorf("no smtpd on 127.0.0.1:2525:\n%s", cf)
	}
	for _, line := range strings.Split(cf, "\n") {
		f := strings.Fields(line)
		if line == "" || line[0] == ' ' || line[0] == '\t' || line[0] == '#' {
			continue
		}
		if len(f) >= 8 && f[4] != "n" {
			t.Errorf("chroot not n: %q", line)
		}
	}
	if !strings.Contains(cf, "\npostlog unix-dgram n - n - 1 postlogd\n") {
		t.Errorf("no postlog service")
	}
}

// TestMain checks that the tests leave no processes of theirs behind.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if left := leftovers(); len(left) > 0 {
			fmt.Fprintf(os.Stderr, "harness tests left processes running: %v\n", left)
			code = 1
		}
	}
	os.Exit(code)
}

// leftovers lists clamd processes and Postfix instances that this test
// binary started and that still run.
func leftovers() []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		env, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		cl := strings.ReplaceAll(string(cmdline), "\x00", " ")
		for _, dir := range StartedDirs() {
			if strings.Contains(string(env), "MAIL_CONFIG="+dir+"/") || strings.Contains(cl, dir+"/") {
				var pid int
				fmt.Sscan(e.Name(), &pid)
				if procAlive(pid) {
					out = append(out, e.Name()+": "+cl)
				}
				break
			}
		}
	}
	return out
}

func TestPostfixMilterDefaultAction(t *testing.T) {
	sink := StartSink(t)
	// Nothing listens on the milter port: Postfix applies
	// milter_default_action.
	milter := fmt.Sprintf("inet:127.0.0.1:%d", FreePort(t))
	tests := []struct {
		action   string
		wantCode int
	}{
		{"", 451}, // default tempfail
		{"accept", 250},
		{"reject", 554}, // refused in the greeting
	}
	for _, tt := range tests {
		t.Run("action="+tt.action, func(t *testing.T) {
			pf := StartPostfix(t, PostfixOptions{Milter: milter, RelayTo: sink.Addr, MilterDefaultAction: tt.action, ContentTimeout: 5 * time.Second})
			subject := "milter " + tt.action
			res := Send(t, pf.SMTPAddr, "s@example.com", []string{"r@example.net"}, BuildMessage("s@example.com", "r@example.net", subject, "x"))
			if res.Code != tt.wantCode {
				t.Fatalf("Send = %+v, want code %d\n%s", res, tt.wantCode, pf.LogTail(20))
			}
			t.Logf("reply: %d %s (err %v)", res.Code, res.Text, res.Err)
			if tt.wantCode == 250 {
				sink.WaitFor(t, func(d Delivered) bool { return bytes.Contains(d.Data, []byte("Subject: "+subject+"\r\n")) }, 10*time.Second)
			}
		})
	}
}

func TestReplaceSettings(t *testing.T) {
	conf := "Foreground yes\nStreamMaxLength 64M\nMaxFileSize 64M"
	for _, tc := range []struct {
		name     string
		settings map[string]string
		want     string
	}{
		{"none", nil, conf},
		{"replace", map[string]string{"StreamMaxLength": "512M"}, "Foreground yes\nStreamMaxLength 512M\nMaxFileSize 64M"},
		{"append, sorted", map[string]string{"ReadTimeout": "300", "MaxThreads": "2", "MaxFileSize": "1G"},
			"Foreground yes\nStreamMaxLength 64M\nMaxFileSize 1G\nMaxThreads 2\nReadTimeout 300"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := replaceSettings(conf, tc.settings); got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}
