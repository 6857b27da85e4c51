package test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/avstation/avstation/test/harness"
)

// certSHA256 is the fingerprint station_pin_sha256 takes.
func certSHA256(t *testing.T, certFile string) string {
	t.Helper()
	b, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	sum := sha256.Sum256(blk.Bytes)
	return hex.EncodeToString(sum[:])
}

// TestStationTLS: a station over HTTPS with mutual TLS, through real
// Postfix. The right CA (or a pinned certificate) and client certificate
// get postings scanned; a wrong CA, a wrong pin or a wrong client
// certificate are refused (the posting tempfailed) with a log line that
// says which.
func TestStationTLS(t *testing.T) {
	clamd := harness.StartClamd(t)
	sink := harness.StartSink(t)
	secret := harness.WriteSecret(t, "tls-test-secret")
	cert, key := harness.SelfSignedCert(t)
	otherCA, _ := harness.SelfSignedCert(t)
	client, clientKey := harness.ClientCert(t, "lists-1")
	wrongClient, wrongClientKey := harness.ClientCert(t, "intruder")
	st := harness.StartStation(t, bin.Station, "", clamd.Addr, secret,
		"tls_cert: "+cert, "tls_key: "+key, "tls_client_ca: "+client)
	url := "https://" + st.Addr

	for i, tt := range []struct {
		name     string
		settings string
		code     int
		log      []string // in the milter's log
	}{
		{"right CA and client certificate", fmt.Sprintf("station_ca_file: %s\nstation_client_cert: %s\nstation_client_key: %s\n", cert, client, clientKey), 250, nil},
		{"pinned certificate", fmt.Sprintf("station_pin_sha256: %s\nstation_client_cert: %s\nstation_client_key: %s\n", certSHA256(t, cert), client, clientKey), 250, nil},
		{"wrong CA", fmt.Sprintf("station_ca_file: %s\nstation_client_cert: %s\nstation_client_key: %s\n", otherCA, client, clientKey), 451,
			[]string{"station marked down", "reason=tls", "not signed by station_ca_file"}},
		{"wrong pin", fmt.Sprintf("station_pin_sha256: %s\nstation_client_cert: %s\nstation_client_key: %s\n", certSHA256(t, otherCA), client, clientKey), 451,
			[]string{"station marked down", "reason=tls", "station_pin_sha256"}},
		// Under TLS 1.3 the station's alert may come as a reset, and the
		// milter may meet it first in its probe: the refusal is certain,
		// the station's log names the certificate (checked below).
		{"wrong client certificate", fmt.Sprintf("station_ca_file: %s\nstation_client_cert: %s\nstation_client_key: %s\n", cert, wrongClient, wrongClientKey), 451,
			[]string{"station marked down"}},
		{"no client certificate", fmt.Sprintf("station_ca_file: %s\n", cert), 451,
			[]string{"station marked down"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := harness.StartMilter(t, bin.Milter, harness.MilterOptions{Station: url, Secret: secret, Extra: tt.settings})
			c := newChain(t, sink, m)
			s := fmt.Sprintf("tls %d", i)
			wantCode(t, c.send(t, listRcp, s), tt.code)
			if tt.code == 250 {
				c.delivered(t, s)
			}
			if len(tt.log) > 0 {
				m.WaitLog(t, 5*time.Second, tt.log...)
			}
		})
	}
	st.WaitLog(t, 5*time.Second, "TLS handshake error", "certificate")
}
