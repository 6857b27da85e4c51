package clamd

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func TestResultLimitAndFormat(t *testing.T) {
	tests := []struct {
		line, limit, format string
	}{
		{"stream: Heuristics.Limits.Exceeded.MaxScanSize FOUND", "MaxScanSize", ""},
		{"stream: Heuristics.Limits.Exceeded.MaxFiles FOUND", "MaxFiles", ""},
		{"stream: Heuristics.Limits.Exceeded FOUND", "", ""},
		{"stream: Heuristics.Encrypted.RAR FOUND", "", "RAR"},
		{"stream: Heuristics.Encrypted.7Zip FOUND", "", "7Zip"},
		{"stream: Eicar-Test-Signature FOUND", "", ""},
		{"stream: OK", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			r, err := ParseScanReply(tt.line)
			if err != nil {
				t.Fatal(err)
			}
			if r.Limit() != tt.limit || r.EncryptedFormat() != tt.format {
				t.Errorf("Limit() = %q, EncryptedFormat() = %q; want %q, %q", r.Limit(), r.EncryptedFormat(), tt.limit, tt.format)
			}
		})
	}
}

func TestParseScanReply(t *testing.T) {
	tests := []struct {
		name    string
		line    string
		want    Result
		wantErr error // ErrSizeLimit, or errReply for any *ReplyError
	}{
		{name: "ok", line: "stream: OK", want: Result{Raw: "stream: OK"}},
		{name: "ok with NUL", line: "stream: OK\x00", want: Result{Raw: "stream: OK"}},
		{name: "ok with newline", line: "stream: OK\r\n", want: Result{Raw: "stream: OK"}},
		{name: "ok with path prefix", line: "/tmp/x: OK", want: Result{Raw: "/tmp/x: OK"}},
		{
			name: "found",
			line: "stream: Eicar-Test-Signature.UNOFFICIAL FOUND",
			want: Result{Found: true, Threat: "Eicar-Test-Signature.UNOFFICIAL", Raw: "stream: Eicar-Test-Signature.UNOFFICIAL FOUND"},
		},
		{
			name: "found with colon slash bang",
			line: "stream: Trojan:Win32/Phonzy.A!ml FOUND",
			want: Result{Found: true, Threat: "Trojan:Win32/Phonzy.A!ml", Raw: "stream: Trojan:Win32/Phonzy.A!ml FOUND"},
		},
		{
			name: "found with spaces and colon-space",
			line: "stream: Some Name: with spaces FOUND",
			want: Result{Found: true, Threat: "Some Name: with spaces", Raw: "stream: Some Name: with spaces FOUND"},
		},
		{
			name: "found name ending in OK",
			line: "stream: Heuristics.OK FOUND",
			want: Result{Found: true, Threat: "Heuristics.OK", Raw: "stream: Heuristics.OK FOUND"},
		},
		{name: "found without name", line: "stream: FOUND", want: Result{Found: true, Raw: "stream: FOUND"}},
		// clamd's own alerts, as ClamAV 1.4 words them (AlertExceedsMax,
		// AlertEncrypted*): not threats.
		{
			name: "limit MaxFileSize",
			line: "stream: Heuristics.Limits.Exceeded.MaxFileSize FOUND",
			want: Result{Found: true, Alert: AlertLimit, Threat: "Heuristics.Limits.Exceeded.MaxFileSize", Raw: "stream: Heuristics.Limits.Exceeded.MaxFileSize FOUND"},
		},
		{
			name: "limit MaxRecursion",
			line: "stream: Heuristics.Limits.Exceeded.MaxRecursion FOUND",
			want: Result{Found: true, Alert: AlertLimit, Threat: "Heuristics.Limits.Exceeded.MaxRecursion", Raw: "stream: Heuristics.Limits.Exceeded.MaxRecursion FOUND"},
		},
		{
			name: "limit without a limit name",
			line: "stream: Heuristics.Limits.Exceeded FOUND",
			want: Result{Found: true, Alert: AlertLimit, Threat: "Heuristics.Limits.Exceeded", Raw: "stream: Heuristics.Limits.Exceeded FOUND"},
		},
		{
			name: "encrypted zip",
			line: "stream: Heuristics.Encrypted.Zip FOUND",
			want: Result{Found: true, Alert: AlertEncrypted, Threat: "Heuristics.Encrypted.Zip", Raw: "stream: Heuristics.Encrypted.Zip FOUND"},
		},
		{
			name: "encrypted pdf",
			line: "stream: Heuristics.Encrypted.PDF FOUND",
			want: Result{Found: true, Alert: AlertEncrypted, Threat: "Heuristics.Encrypted.PDF", Raw: "stream: Heuristics.Encrypted.PDF FOUND"},
		},
		{
			name: "other heuristics are threats",
			line: "stream: Heuristics.Phishing.Email.SpoofedDomain FOUND",
			want: Result{Found: true, Threat: "Heuristics.Phishing.Email.SpoofedDomain", Raw: "stream: Heuristics.Phishing.Email.SpoofedDomain FOUND"},
		},
		{
			name: "a name that only starts like a limit",
			line: "stream: Heuristics.Limits.ExceededX FOUND",
			want: Result{Found: true, Threat: "Heuristics.Limits.ExceededX", Raw: "stream: Heuristics.Limits.ExceededX FOUND"},
		},
		{
			name: "encrypted prefix alone",
			line: "stream: Heuristics.Encrypted. FOUND",
			want: Result{Found: true, Threat: "Heuristics.Encrypted.", Raw: "stream: Heuristics.Encrypted. FOUND"},
		},
		{
			name: "found with path prefix",
			line: "/var/mail/x: Win.Test.EICAR_HDB-1 FOUND",
			want: Result{Found: true, Threat: "Win.Test.EICAR_HDB-1", Raw: "/var/mail/x: Win.Test.EICAR_HDB-1 FOUND"},
		},
		{
			name:    "size limit",
			line:    "INSTREAM size limit exceeded. ERROR",
			want:    Result{Raw: "INSTREAM size limit exceeded. ERROR"},
			wantErr: ErrSizeLimit,
		},
		{
			name:    "error",
			line:    "stream: Can't allocate memory ERROR",
			want:    Result{Raw: "stream: Can't allocate memory ERROR"},
			wantErr: errReply,
		},
		{name: "bare error", line: "ERROR", want: Result{Raw: "ERROR"}, wantErr: errReply},
		{name: "unknown command", line: "UNKNOWN COMMAND", want: Result{Raw: "UNKNOWN COMMAND"}, wantErr: errReply},
		{name: "garbage", line: "hello world", want: Result{Raw: "hello world"}, wantErr: errReply},
		{name: "no verdict word", line: "stream: Eicar", want: Result{Raw: "stream: Eicar"}, wantErr: errReply},
		{name: "lower case ok", line: "stream: ok", want: Result{Raw: "stream: ok"}, wantErr: errReply},
		{name: "ok without prefix", line: "OK", want: Result{Raw: "OK"}, wantErr: errReply},
		{name: "pong", line: "PONG", want: Result{Raw: "PONG"}, wantErr: errReply},
		{name: "control character", line: "stream: Bad\rName FOUND", want: Result{Raw: "stream: Bad\rName FOUND"}, wantErr: errReply},
		{name: "empty", line: "", wantErr: errReply},
		{name: "only NUL", line: "\x00", wantErr: errReply},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseScanReply(tt.line)
			checkReplyErr(t, err, tt.wantErr)
			if got != tt.want {
				t.Errorf("ParseScanReply(%q) = %+v, want %+v", tt.line, got, tt.want)
			}
		})
	}
}

// errReply stands for "any *ReplyError" in test tables, errAny for any error.
var (
	errReply = errors.New("any *ReplyError")
	errAny   = errors.New("any error")
)

func checkReplyErr(t *testing.T, err, want error) {
	t.Helper()
	switch want {
	case nil:
		if err != nil {
			t.Fatalf("error %v, want none", err)
		}
	case errAny:
		if err == nil {
			t.Fatal("no error, want one")
		}
	case errReply:
		var re *ReplyError
		if !errors.As(err, &re) {
			t.Fatalf("error %v (%T), want a *ReplyError", err, err)
		}
	default:
		if !errors.Is(err, want) {
			t.Fatalf("error %v, want %v", err, want)
		}
	}
}

func TestReplyErrorText(t *testing.T) {
	tests := []struct {
		reply, want string
	}{
		{"stream: Can't allocate memory ERROR", "clamd: stream: Can't allocate memory ERROR"},
		{"", "clamd: empty reply"},
		{"a\rb", `clamd: "a\rb"`},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := (&ReplyError{Reply: tt.reply}).Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseVersion(t *testing.T) {
	tests := []struct {
		name    string
		line    string
		want    Version
		wantErr bool
	}{
		{name: "engine only", line: "ClamAV 1.4.6", want: Version{Engine: "ClamAV 1.4.6"}},
		{name: "engine only with NUL", line: "ClamAV 1.4.6\x00", want: Version{Engine: "ClamAV 1.4.6"}},
		{
			name: "with database",
			line: "ClamAV 1.4.6/27456/Sat Nov 21 09:30:00 2026",
			want: Version{
				Engine:    "ClamAV 1.4.6",
				Database:  "27456",
				BuildTime: time.Date(2026, time.November, 21, 9, 30, 0, 0, time.Local),
			},
		},
		{
			name: "ctime day padding",
			line: "ClamAV 1.4.6/27456/Sun Nov  1 09:30:00 2026",
			want: Version{
				Engine:    "ClamAV 1.4.6",
				Database:  "27456",
				BuildTime: time.Date(2026, time.November, 1, 9, 30, 0, 0, time.Local),
			},
		},
		{name: "database without date", line: "ClamAV 1.4.6/27456", want: Version{Engine: "ClamAV 1.4.6", Database: "27456"}},
		{name: "garbage", line: "hello", wantErr: true},
		{name: "empty", line: "", wantErr: true},
		{name: "no version number", line: "ClamAV ", wantErr: true},
		{name: "bad database", line: "ClamAV 1.4.6/abc/Sat Nov 21 09:30:00 2026", wantErr: true},
		{name: "empty database", line: "ClamAV 1.4.6//Sat Nov 21 09:30:00 2026", wantErr: true},
		{name: "bad date", line: "ClamAV 1.4.6/27456/yesterday", wantErr: true},
		{name: "error reply", line: "UNKNOWN COMMAND", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseVersion(tt.line)
			if tt.wantErr {
				var re *ReplyError
				if !errors.As(err, &re) {
					t.Fatalf("ParseVersion(%q) error = %v, want a *ReplyError", tt.line, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseVersion(%q): %v", tt.line, err)
			}
			if got.Engine != tt.want.Engine || got.Database != tt.want.Database || !got.BuildTime.Equal(tt.want.BuildTime) {
				t.Errorf("ParseVersion(%q) = %+v, want %+v", tt.line, got, tt.want)
			}
		})
	}
}

func TestReadReply(t *testing.T) {
	long := strings.Repeat("x", maxReply)
	tests := []struct {
		name    string
		r       io.Reader
		want    string
		wantErr bool
	}{
		{name: "NUL", r: strings.NewReader("stream: OK\x00"), want: "stream: OK"},
		{name: "newline", r: strings.NewReader("stream: OK\n"), want: "stream: OK"},
		{name: "CRLF", r: strings.NewReader("stream: OK\r\n"), want: "stream: OK"},
		{name: "byte by byte", r: iotest.OneByteReader(strings.NewReader("PONG\x00")), want: "PONG"},
		{name: "trailing data ignored", r: strings.NewReader("PONG\x00junk"), want: "PONG"},
		{name: "long but fits", r: strings.NewReader(long[:maxReply-1] + "\x00"), want: long[:maxReply-1]},
		{name: "too long", r: strings.NewReader(long + "\x00"), wantErr: true},
		{name: "cut short", r: strings.NewReader("stream: O"), wantErr: true},
		{name: "nothing", r: strings.NewReader(""), wantErr: true},
		{name: "read error", r: iotest.ErrReader(errors.New("boom")), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readReply(tt.r)
			if (err != nil) != tt.wantErr {
				t.Fatalf("readReply = %q, %v; want error %v", got, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("readReply = %q, want %q", got, tt.want)
			}
		})
	}
}

// FuzzParseScanReply checks that no reply makes the parser panic or report
// clean for anything but OK. Seeds are in testdata/fuzz/FuzzParseScanReply.
func FuzzParseScanReply(f *testing.F) {
	f.Fuzz(func(t *testing.T, line string) {
		res, err := ParseScanReply(line)
		if res.Raw != trimTerminator(line) {
			t.Errorf("Raw = %q, want %q", res.Raw, trimTerminator(line))
		}
		if err != nil {
			if res.Found {
				t.Errorf("Found with error %v", err)
			}
			return
		}
		if !res.Found && !strings.HasSuffix(res.Raw, ": OK") {
			t.Errorf("clean verdict for %q", line)
		}
		if res.Found && !strings.HasSuffix(res.Raw, "FOUND") {
			t.Errorf("found verdict for %q", line)
		}
		if strings.ContainsFunc(res.Threat, isControl) {
			t.Errorf("control character in threat %q", res.Threat)
		}
		if res.Alert != AlertThreat && (!res.Found || !strings.HasPrefix(res.Threat, "Heuristics.")) {
			t.Errorf("alert %d for %q", res.Alert, line)
		}
	})
}

// FuzzParseVersion checks that no reply makes the VERSION parser panic.
// Seeds are in testdata/fuzz/FuzzParseVersion.
func FuzzParseVersion(f *testing.F) {
	f.Fuzz(func(t *testing.T, line string) {
		v, err := ParseVersion(line)
		if err != nil {
			if v != (Version{}) {
				t.Errorf("partial version %+v with error %v", v, err)
			}
			return
		}
		if !strings.HasPrefix(v.Engine, "ClamAV ") {
			t.Errorf("engine %q from %q", v.Engine, line)
		}
	})
}
