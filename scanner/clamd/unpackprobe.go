package clamd

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
)

// The EICAR anti-virus test file, which clamd databases detect (the
// official one, and test setups by their own signature). Two variables,
// not one constant, so that neither this file nor the binary holds it
// whole and is itself detected.
var eicarHead, eicarTail = `X5O!P%@AP[4\PZX54(P^)7CC)7}$`, `EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`

// UnpackProbe is a mail whose only content is EICAR in a zip, base64
// encoded: clamd finds it only when it parses mail and opens archives
// (ScanMail and ScanArchive, both on by default).
func UnpackProbe() ([]byte, error) {
	var z bytes.Buffer
	w := zip.NewWriter(&z)
	f, err := w.Create("eicar.com")
	if err == nil {
		_, err = f.Write([]byte(eicarHead + eicarTail))
	}
	if err == nil {
		err = w.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("unpack probe: %w", err)
	}
	return []byte("From: probe@avstation.invalid\r\nSubject: avstation unpack probe\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"probe\"\r\n\r\n--probe\r\n" +
		"Content-Type: application/zip; name=\"probe.zip\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		base64.StdEncoding.EncodeToString(z.Bytes()) + "\r\n--probe--\r\n"), nil
}

// ProbeUnpacks asks clamd about UnpackProbe and reports whether it found
// the virus in it, that is whether it parses mail and opens archives.
// unpacks is false with a nil error when clamd answered OK; an error says
// nothing either way.
func ProbeUnpacks(ctx context.Context, s Scanner) (unpacks bool, err error) {
	probe, err := UnpackProbe()
	if err != nil {
		return false, err
	}
	res, err := s.Scan(ctx, bytes.NewReader(probe))
	switch {
	case err != nil:
		return false, fmt.Errorf("unpack probe: %w", err)
	case res.Found && res.Alert == AlertThreat:
		return true, nil
	case !res.Found:
		return false, nil
	}
	return false, fmt.Errorf("unpack probe: unexpected answer %q", res.Raw)
}
