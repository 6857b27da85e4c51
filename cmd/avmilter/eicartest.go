package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/smtp"
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
// it as the policy says. Exit 0 only when it did.
func eicarTestCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("avmilter eicar-test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", defaultConfig, "configuration file (for the policy the test expects)")
	addr := fs.String("smtp", "127.0.0.1:25", "the MTA's SMTP address")
	to := fs.String("to", "", "a list address (required)")
	from := fs.String("from", "eicar-test@localhost", "envelope and header sender")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *to == "" {
		fmt.Fprintln(stderr, "avmilter eicar-test: --to LIST-ADDRESS is required")
		return 2
	}
	want := policy.Reject
	if cfg, err := config.LoadMilter(*path); err == nil {
		name, ok := milter.NewLists(cfg.Lists).Match(*to)
		if !ok && !cfg.ScanAll {
			fmt.Fprintf(stdout, "FAIL: %s is not a list address in %s: its mail is not scanned\n", *to, *path)
			return 1
		}
		want = cfg.Policies.For(name).Actions.Infected.Action
	} else {
		fmt.Fprintf(stdout, "note: %s not read (%v); expecting the default policy (reject)\n", *path, firstLine(err))
	}
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
		fmt.Fprintf(stdout, "OK: accepted, as the policy (%s) says; check the delivered copy's X-Virus-Status header\n", want)
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
// was refused).
func sendEICAR(addr, from, to string) (int, string, error) {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return 0, "", fmt.Errorf("connecting to %s: %w", addr, err)
	}
	conn.SetDeadline(time.Now().Add(5 * time.Minute))
	host, _, _ := net.SplitHostPort(addr)
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return 0, "", fmt.Errorf("%s: %w", addr, err)
	}
	defer c.Close()
	reply := func(err error) (int, string, error) {
		var te *textproto.Error
		if errors.As(err, &te) {
			return te.Code, te.Msg, nil
		}
		return 0, "", err
	}
	if err := c.Hello("localhost"); err != nil {
		return reply(err)
	}
	if err := c.Mail(from); err != nil {
		return reply(err)
	}
	if err := c.Rcpt(to); err != nil {
		return reply(err)
	}
	w, err := c.Data()
	if err != nil {
		return reply(err)
	}
	var id [8]byte
	rand.Read(id[:])
	fmt.Fprintf(w, "From: <%s>\r\nTo: <%s>\r\nSubject: avmilter EICAR test %s\r\nDate: %s\r\nMessage-ID: <eicar-%s@avmilter>\r\n"+
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"eicar\"\r\n\r\n"+
		"--eicar\r\nContent-Type: text/plain\r\n\r\nThis is the EICAR anti-virus test file; the anti-virus milter should stop it.\r\n"+
		"--eicar\r\nContent-Type: application/octet-stream; name=\"eicar.com\"\r\nContent-Disposition: attachment; filename=\"eicar.com\"\r\n"+
		"Content-Transfer-Encoding: base64\r\n\r\n%s\r\n--eicar--\r\n",
		from, to, hex.EncodeToString(id[:4]), time.Now().Format(time.RFC1123Z), hex.EncodeToString(id[:]), base64.StdEncoding.EncodeToString(eicar()))
	if err := w.Close(); err != nil {
		return reply(err)
	}
	c.Quit()
	return 250, "accepted", nil
}
