package test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"strings"
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
// get postings scanned; a wrong CA, a wrong pin, a wrong client certificate
// or none are refused: the posting is tempfailed and not delivered, and
// both sides log a line that says which side refused what, and why.
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
	const refusedUs = "station marked down"

	for i, tt := range []struct {
		name     string
		settings string
		code     int
		milter   []string // a line of the milter's log has all of these
		station  []string // a line the station logged during the case has all of these
	}{
		{"right CA and client certificate", fmt.Sprintf("station_ca_file: %s\nstation_client_cert: %s\nstation_client_key: %s\n", cert, client, clientKey), 250, nil, nil},
		{"pinned certificate", fmt.Sprintf("station_pin_sha256: %s\nstation_client_cert: %s\nstation_client_key: %s\n", certSHA256(t, cert), client, clientKey), 250, nil, nil},
		{"wrong CA", fmt.Sprintf("station_ca_file: %s\nstation_client_cert: %s\nstation_client_key: %s\n", otherCA, client, clientKey), 451,
			[]string{refusedUs, "reason=tls", "certificate signed by unknown authority", `hint="the station's certificate is not signed by station_ca_file's CA`},
			[]string{`msg="TLS handshake failed"`, "remote error: tls: bad certificate", "station_ca_file or station_pin_sha256 does not match tls_cert"}},
		{"wrong pin", fmt.Sprintf("station_pin_sha256: %s\nstation_client_cert: %s\nstation_client_key: %s\n", certSHA256(t, otherCA), client, clientKey), 451,
			[]string{refusedUs, "reason=tls", "is not pinned (station_pin_sha256)", `hint="the station's certificate is not the one station_pin_sha256 names"`},
			[]string{`msg="TLS handshake failed"`, "remote error: tls: bad certificate"}},
		{"wrong client certificate", fmt.Sprintf("station_ca_file: %s\nstation_client_cert: %s\nstation_client_key: %s\n", cert, wrongClient, wrongClientKey), 451,
			[]string{refusedUs, "reason=tls", "remote error: tls: bad certificate", `hint="the station refused our client certificate (station_client_cert): it is not signed by the station's tls_client_ca`},
			[]string{`msg="TLS handshake refused"`, `client certificate \"CN=intruder\"`, "refused by tls_client_ca", "x509: certificate signed by unknown authority",
				`hint="the milter's station_client_cert is not signed by tls_client_ca`}},
		{"no client certificate", fmt.Sprintf("station_ca_file: %s\n", cert), 451,
			[]string{refusedUs, "reason=tls", "remote error: tls: certificate required", `hint="the station refused us: it requires a client certificate and we showed none`},
			[]string{`msg="TLS handshake refused"`, "didn't provide a certificate", `hint="the client showed no certificate`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			from := len(st.Log())
			m := harness.StartMilter(t, bin.Milter, harness.MilterOptions{Station: url, Secret: secret, Extra: tt.settings})
			c := newChain(t, sink, m)
			s := fmt.Sprintf("tls %d", i)
			wantCode(t, c.send(t, listRcp, s), tt.code)
			if tt.code == 250 {
				c.delivered(t, s)
				return
			}
			// Tempfailed at end of data: Postfix did not take it, so it
			// cannot be delivered later.
			if n := sink.Count(withSubject(s)); n != 0 {
				t.Errorf("%q refused with %d but delivered %d times", s, tt.code, n)
			}
			m.WaitLog(t, 5*time.Second, tt.milter...)
			m.WaitLog(t, 5*time.Second, `msg="message scanned"`, "outcome=station-failure", "action=tempfail")
			waitLogSince(t, st, from, 5*time.Second, tt.station...)
		})
	}
}

// waitLogSince is Daemon.WaitLog for what the daemon logged after the
// first from bytes of its log.
func waitLogSince(t *testing.T, d *harness.Daemon, from int, timeout time.Duration, subs ...string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, line := range strings.Split(d.Log()[from:], "\n") {
			all := true
			for _, s := range subs {
				all = all && strings.Contains(line, s)
			}
			if all {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no line with %q in what the station logged during this case:\n%s", subs, d.Log()[from:])
		}
		time.Sleep(50 * time.Millisecond)
	}
}
