package test

import (
	"testing"

	"github.com/avstation/avstation/test/harness"
)

// TestListMailDefaults: with no policy configured, list mail that was not
// fully examined is rejected naming the attachment and the limit, and an
// executable disguised by a double extension is rejected, through real
// Postfix, avstation and clamd.
func TestListMailDefaults(t *testing.T) {
	clamd := harness.StartClamd(t)
	sink := harness.StartSink(t)
	secret := harness.WriteSecret(t, "defaults-secret")
	// A small archive depth stands for any limit: a zip in a zip meets it.
	station := harness.StartStation(t, bin.Station, "", clamd.Addr, secret, "  max_archive_depth: 1")
	c := newChain(t, sink, harness.StartMilter(t, bin.Milter, harness.MilterOptions{Station: "http://" + station.Addr, Secret: secret}))

	nested := harness.Attachment{Name: "docs.zip", ContentType: "application/zip", Data: zipOf(t, "inner.zip", zipOf(t, "notes.txt", []byte("hello\n")))}
	wantCode(t, c.send(t, listRcp, "beyond a limit", nested), 550,
		"5.7.1 Your posting to the dev list has been rejected because attachment 'docs.zip", "could not be fully scanned", "max_archive_depth 1")
	c.waitNotDelivered(t, "beyond a limit")

	disguised := harness.Attachment{Name: "invoice.pdf.exe", ContentType: "application/octet-stream", Data: []byte("MZ pretending to be a PDF")}
	wantCode(t, c.send(t, listRcp, "double extension", disguised), 550, "'invoice.pdf.exe' are not accepted")
	c.waitNotDelivered(t, "double extension")

	plain := harness.Attachment{Name: "v1.2.pdf", ContentType: "application/pdf", Data: []byte("%PDF-1.4 harmless\n")}
	wantCode(t, c.send(t, listRcp, "ordinary attachment", plain), 250)
	c.delivered(t, "ordinary attachment")
}
