package main

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strings"
	"time"

	"github.com/avstation/avstation/config"
	"github.com/avstation/avstation/milter"
	"github.com/avstation/avstation/policy"
)

// eicar is the EICAR anti-virus test file, joined from two halves so that
// this source file is not itself the test string.
func eicar() []byte {
	return []byte(`X5O!P%@AP[4\PZX54(P^)7CC)7}$` + `EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`)
}

// eicarTestCmd is "avmilter eicar-test --smtp HOST:PORT --to LIST-ADDRESS":
// it posts the EICAR test file through the real MTA, as IceWarp's "Send
// EICAR Virus Test Message" button does, and says whether the MTA handled
// it as the policy says. A refusal is seen in the MTA's reply; a policy
// that accepts (tag, strip, discard) is confirmed from the milter's own
// record of that message, found by the queue id in the MTA's reply. Exit 0
// only when it was.
func eicarTestCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("avmilter eicar-test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", defaultConfig, "configuration file (for the policy the test expects and where the milter records it)")
	addr := fs.String("smtp", "127.0.0.1:25", "the MTA's SMTP address")
	to := fs.String("to", "", "a list address (required)")
	from := fs.String("from", "eicar-test@localhost", "envelope and header sender")
	wait := fs.Duration("wait", 5*time.Second, "how long to wait for the milter's record of an accepted test message")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *to == "" {
		fmt.Fprintln(stderr, "avmilter eicar-test: --to LIST-ADDRESS is required")
		return 2
	}
	want := policy.Reject
	var cfg *config.Milter
	if c, err := config.LoadMilter(*path); err == nil {
		lists := milter.ListsFor(c)
		name, ok := lists.Match(*to)
		if !ok && !lists.Held(*to) && !c.ScanAll {
			fmt.Fprintf(stdout, "FAIL: %s is not a list address in %s: its mail is not scanned\n", *to, *path)
			return 1
		}
		cfg, want = c, c.Policies.For(name).Actions.Infected.Action
	} else {
		fmt.Fprintf(stdout, "note: %s not read (%v); expecting the default policy (reject)\n", *path, firstLine(err))
	}
	var rec *records
	if cfg != nil {
		rec = newRecords(cfg, want, stdout)
	}
	start := time.Now()
	code, text, err := sendEICAR(*addr, *from, *to)
	if err != nil {
		fmt.Fprintf(stdout, "FAIL: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s answered: %d %s\n", *addr, code, text)
	switch {
	case want == policy.Reject && code/100 == 5, want == policy.Tempfail && code/100 == 4:
		fmt.Fprintf(stdout, "OK: the EICAR test message was refused, as the policy (%s) says\n", want)
		return 0
	case code/100 == 2 && (want == policy.Discard || want == policy.Strip || want == policy.Tag):
		if rec == nil {
			fmt.Fprintf(stdout, "FAIL: accepted, but without %s nothing tells whether the policy (%s) was applied\n", *path, want)
			return 1
		}
		seen, err := rec.confirm(queueID(text), start, *wait)
		if errors.Is(err, errCannotConfirm) {
			fmt.Fprintf(stdout, "FAIL: accepted, but whether the policy (%s) was applied is not known: %v\n", want, err)
			return 1
		}
		if err != nil {
			fmt.Fprintf(stdout, "FAIL: accepted, but the policy (%s) was not applied: %v\n", want, err)
			return 1
		}
		fmt.Fprintf(stdout, "confirmed: %s\n", seen)
		fmt.Fprintf(stdout, "OK: accepted, and the milter applied the policy (%s)\n", want)
		return 0
	case code/100 == 2:
		fmt.Fprintf(stdout, "FAIL: the test message was delivered, but the policy says %s: is the milter attached (smtpd_milters) and %s a list address?\n", want, *to)
	default:
		fmt.Fprintf(stdout, "FAIL: the MTA answered %d, but the policy says %s\n", code, want)
	}
	return 1
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

// sendEICAR posts the test message, built in memory, never written to
// disk, and returns the reply to the end of data (or to the command that
// was refused), its text whole: the queue id is in it.
func sendEICAR(addr, from, to string) (int, string, error) {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return 0, "", fmt.Errorf("connecting to %s: %w", addr, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Minute))
	tp := textproto.NewConn(conn)
	// step sends a command (none for the greeting) and reads its reply;
	// ok is false when the reply is not the one that lets the transaction go on.
	step := func(want int, format string, args ...any) (code int, text string, ok bool, err error) {
		if format != "" {
			if err := tp.PrintfLine(format, args...); err != nil {
				return 0, "", false, fmt.Errorf("%s: %w", addr, err)
			}
		}
		code, text, err = tp.ReadResponse(0)
		if err != nil {
			return 0, "", false, fmt.Errorf("%s: reading the reply: %w", addr, err)
		}
		return code, text, code/100 == want/100, nil
	}
	for _, c := range []struct {
		want   int
		format string
		arg    string
	}{{220, "", ""}, {250, "EHLO %s", "localhost"}, {250, "MAIL FROM:<%s>", from}, {250, "RCPT TO:<%s>", to}, {354, "DATA", ""}} {
		var args []any
		if c.format != "" && c.arg != "" {
			args = []any{c.arg}
		}
		code, text, ok, err := step(c.want, c.format, args...)
		if err != nil || !ok {
			return code, text, err
		}
	}
	w := tp.DotWriter()
	if _, err := w.Write(eicarMessage(from, to)); err != nil {
		return 0, "", fmt.Errorf("%s: sending the message: %w", addr, err)
	}
	if err := w.Close(); err != nil {
		return 0, "", fmt.Errorf("%s: sending the message: %w", addr, err)
	}
	code, text, _, err := step(250, "")
	if err != nil {
		return 0, "", err
	}
	tp.PrintfLine("QUIT")
	return code, text, nil
}

// eicarMessage is the test message: a note and the EICAR file attached.
func eicarMessage(from, to string) []byte {
	var id [8]byte
	rand.Read(id[:])
	return fmt.Appendf(nil, "From: <%s>\r\nTo: <%s>\r\nSubject: avmilter EICAR test %s\r\nDate: %s\r\nMessage-ID: <eicar-%s@avmilter>\r\n"+
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"eicar\"\r\n\r\n"+
		"--eicar\r\nContent-Type: text/plain\r\n\r\nThis is the EICAR anti-virus test file; the anti-virus milter should stop it.\r\n"+
		"--eicar\r\nContent-Type: application/octet-stream; name=\"eicar.com\"\r\nContent-Disposition: attachment; filename=\"eicar.com\"\r\n"+
		"Content-Transfer-Encoding: base64\r\n\r\n%s\r\n--eicar--\r\n",
		from, to, hex.EncodeToString(id[:4]), time.Now().Format(time.RFC1123Z), hex.EncodeToString(id[:]), base64.StdEncoding.EncodeToString(eicar()))
}

// queueID finds the queue id in the reply to end of data: Postfix says
// "2.0.0 Ok: queued as 4XyZ1b2C3d", Sendmail "2.0.0 4BLAb1c2003 Message
// accepted for delivery". "" when the reply names none.
func queueID(text string) string {
	if _, rest, ok := strings.Cut(text, "queued as "); ok {
		return firstWord(rest)
	}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 3 && strings.HasPrefix(strings.Join(f[2:], " "), "Message accepted") {
			return f[1]
		}
	}
	return ""
}

func firstWord(s string) string {
	if f := strings.Fields(s); len(f) > 0 {
		return strings.TrimRight(f[0], ".,;)")
	}
	return ""
}
