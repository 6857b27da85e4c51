package mimepart

import (
	"strings"
	"testing"
)

// TestAttackHeaderLinesReadersSplit: a header line that go-message reads
// as a header line but other readers end the header at (a bare CR, a
// NUL, a continuation of white space only, white space before the colon,
// no field name) is an anomaly of a part with a transfer encoding, where
// the body those readers decode begins with the header's last lines; of
// a part without one it is not (they only see more text).
func TestAttackHeaderLinesReadersSplit(t *testing.T) {
	lines := map[string]string{
		"bare CR":              "X-A: b\r\rQUF\r\n",
		"bare CR in a value":   "X-A: b\rQUF\r\n",
		"NUL":                  "X-A: b\r\n \x00\r\n QUF\r\n",
		"white space only":     "X-A: b\r\n \r\n QUF\r\n",
		"tab only":             "X-A: b\r\n\t\r\n QUF\r\n",
		"space before a colon": "X : QU\r\n",
		"tab before a colon":   "X\t: QU\r\n",
		"no field name":        ": QUF\r\n",
	}
	for name, line := range lines {
		for _, cte := range []string{"base64", "7bit"} {
			msg := "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\none\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: " + cte + "\r\n" +
				line + "\r\nQUFBQUFB\r\n--b--\r\n"
			m, err := Index(strings.NewReader(msg), int64(len(msg)), testLimits())
			if err != nil {
				t.Fatal(err)
			}
			p := m.Find("2")
			if p == nil {
				t.Fatalf("%s: no part 2", name)
			}
			if got := len(p.Anomalies) > 0; got != (cte == "base64") {
				t.Errorf("%s, %s: anomalies %v", name, cte, p.Anomalies)
			}
		}
	}
	// Lines every reader reads alike are none.
	plain := "Content-Type: application/octet-stream;\r\n\tname=\"a.bin\"\r\nContent-Transfer-Encoding: base64\r\nX-Long: a\r\n  b c\r\n\r\nQUFB\r\n"
	m, err := Index(strings.NewReader(plain), int64(len(plain)), testLimits())
	if err != nil {
		t.Fatal(err)
	}
	if a := m.Root.Anomalies; len(a) > 0 {
		t.Errorf("anomalies %v", a)
	}
}
