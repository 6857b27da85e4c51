package test

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/d--j/go-milter"

	"github.com/avstation/avstation/jobproto"
	clamdclient "github.com/avstation/avstation/scanner/clamd"
	"github.com/avstation/avstation/station"
	"github.com/avstation/avstation/test/harness"
	"github.com/avstation/avstation/verdict"
)

// base64Lines is data in base64, in lines of 76 (RFC 2045 6.8).
func base64Lines(data []byte) string {
	enc := base64.StdEncoding.EncodeToString(data)
	var b strings.Builder
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	return b.String() + enc + "\r\n"
}

// posting is a list posting whose body is the MIME entity body (its
// header fields first).
func posting(subject, entity string) []byte {
	return []byte("From: " + sender + "\r\nTo: " + listRcp + "\r\nSubject: " + subject +
		"\r\nMessage-ID: <" + strings.ReplaceAll(subject, " ", ".") + "@example.com>\r\nMIME-Version: 1.0\r\n" + entity)
}

// attachmentEntity is a base64 attachment's header and body.
func attachmentEntity(name, contentType string, data []byte) string {
	return "Content-Type: " + contentType + "; name=\"" + name + "\"\r\nContent-Disposition: attachment; filename=\"" + name +
		"\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" + base64Lines(data)
}

// deepEICAR is a posting of levels multiparts nested in one another, the
// innermost holding a text part and eicar.com.
func deepEICAR(levels int) []byte {
	var b strings.Builder
	for i := range levels - 1 {
		fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=\"lvl%d\"\r\n\r\n--lvl%d\r\n", i, i)
	}
	last := levels - 1
	fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=\"lvl%d\"\r\n\r\n--lvl%d\r\nContent-Type: text/plain\r\n\r\nat the bottom\r\n--lvl%d\r\n%s--lvl%d--\r\n",
		last, last, last, attachmentEntity("eicar.com", "application/octet-stream", harness.EICAR()), last)
	for i := levels - 2; i >= 0; i-- {
		fmt.Fprintf(&b, "--lvl%d--\r\n", i)
	}
	return posting(fmt.Sprintf("eicar %d levels down", levels), b.String())
}

// clamdAlone is clamd's own answer for msg, as one INSTREAM.
func clamdAlone(t *testing.T, c *harness.Clamd, msg []byte) clamdclient.Result {
	t.Helper()
	cl, err := clamdclient.New(c.Addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := cl.Scan(ctx, bytes.NewReader(msg))
	if err != nil {
		t.Fatalf("clamd alone: %v", err)
	}
	return res
}

// TestDeepMIMEEicar: EICAR 100 multiparts down is rejected naming it, by
// the station and in-process, with clamd at its default limits: its own
// MaxRecursion (17) does not reach the bottom, so only the walk of every
// level finds it. This is the guard that the leaves the walk sends to the
// engines include one clamd cannot see in the raw message.
//
//	go test ./test -run TestDeepMIMEEicar -v
func TestDeepMIMEEicar(t *testing.T) {
	clamd := harness.StartClamd(t)
	msg := deepEICAR(100)
	if res := clamdAlone(t, clamd, msg); res.Found {
		t.Fatalf("clamd alone finds %q 100 levels down (%s): the test would not show the walk's depth", res.Threat, res.Raw)
	}
	secret := harness.WriteSecret(t, "deep-secret")
	st := harness.StartStation(t, bin.Station, "", clamd.Addr, secret)
	for _, mode := range []struct {
		name string
		opt  harness.MilterOptions
	}{
		{"station", harness.MilterOptions{Station: "http://" + st.Addr, Secret: secret}},
		{"in-process", harness.MilterOptions{Clamd: clamd.Addr}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			m := harness.StartMilter(t, bin.Milter, mode.opt)
			mc := milter.NewClient("tcp", m.Addr, milter.WithReadTimeout(60*time.Second), milter.WithWriteTimeout(60*time.Second))
			got, err := milterAnswer(mc, msg)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(got, "550") || !strings.Contains(got, "Eicar") || !strings.Contains(got, "eicar.com") {
				t.Errorf("answered %q, want 550 naming Eicar and eicar.com", got)
			}
		})
	}
}

// TestZipOfEmptiesThenEicar: a zip of 50 000 empty entries and then
// eicar.com is rejected naming EICAR: empty members cost no engine call
// and do not count against max_members, so they cannot hide what follows.
// clamd alone does not find it: its time grows with the square of a zip's
// entries (5000 take it 6 s here, 50 000 its whole MaxScanTime), and past
// MaxScanTime it answers OK. Its MaxScanTime is 5 s here instead of 120 s
// so that its two calls (the zip, the raw message) end within the
// milter's scan_timeout; what it answers for them changes nothing.
//
//	go test ./test -run TestZipOfEmptiesThenEicar -v
func TestZipOfEmptiesThenEicar(t *testing.T) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for i := range 50000 {
		if _, err := zw.CreateHeader(&zip.FileHeader{Name: fmt.Sprintf("empty/%05d.txt", i), Method: zip.Store}); err != nil {
			t.Fatal(err)
		}
	}
	f, err := zw.Create("eicar.com")
	if err != nil {
		t.Fatal(err)
	}
	f.Write(harness.EICAR())
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	msg := posting("fifty thousand empty files", "Content-Type: multipart/mixed; boundary=\"e\"\r\n\r\n--e\r\nContent-Type: text/plain\r\n\r\nsee the zip\r\n--e\r\n"+
		attachmentEntity("empties.zip", "application/zip", buf.Bytes())+"--e--\r\n")
	clamd := harness.StartClamdOpts(t, harness.ClamdOptions{Settings: map[string]string{"MaxScanTime": "5000"}})
	if res := clamdAlone(t, clamd, msg); res.Found {
		t.Fatalf("clamd alone finds %q (%s): the test would not show the station's walk", res.Threat, res.Raw)
	}
	secret := harness.WriteSecret(t, "empties-secret")
	st := harness.StartStation(t, bin.Station, "", clamd.Addr, secret)
	m := harness.StartMilter(t, bin.Milter, harness.MilterOptions{Station: "http://" + st.Addr, Secret: secret, MemoryBuffer: "16MiB"})
	mc := milter.NewClient("tcp", m.Addr, milter.WithReadTimeout(60*time.Second), milter.WithWriteTimeout(60*time.Second))
	start := time.Now()
	got, err := milterAnswer(mc, msg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d bytes: answered in %v", len(msg), time.Since(start))
	if !strings.HasPrefix(got, "550") || !strings.Contains(got, "Eicar") || !strings.Contains(got, "empties.zip/eicar.com") {
		t.Errorf("answered %q, want 550 naming Eicar in empties.zip/eicar.com", got)
	}
}

// bombLeaf is a little under archive.RatioFloor, so that max_ratio, which
// applies past it, lets each member through: the budget must stop them.
const bombLeaf = 1000 << 10

// zipBomb is a zip of outer zips of inner members each, every member
// distinct (its first line names it and seed) and bombLeaf bytes, nearly
// all zeros: about 35 KB that expand to outer*inner*bombLeaf bytes.
func zipBomb(t testing.TB, seed, outer, inner int) []byte {
	t.Helper()
	leaf := make([]byte, bombLeaf)
	var parts [][]byte
	for c := range outer {
		var members [][]byte
		for j := range inner {
			m := bytes.Clone(leaf)
			copy(m, fmt.Sprintf("bomb %d, copy %d, member %d\n", seed, c, j))
			members = append(members, m)
		}
		parts = append(parts, deflatedZip(t, "m%02d.txt", members))
	}
	return deflatedZip(t, "part%02d.zip", parts)
}

// deflatedZip is a zip of the members, named by the format and their
// index, at deflate's best compression.
func deflatedZip(t testing.TB, names string, members [][]byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w := zip.NewWriter(&b)
	w.RegisterCompressor(zip.Deflate, func(out io.Writer) (io.WriteCloser, error) { return flate.NewWriter(out, flate.BestCompression) })
	for i, m := range members {
		f, err := w.Create(fmt.Sprintf(names, i))
		if err != nil {
			t.Fatal(err)
		}
		f.Write(m)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// bombPosting is a list posting of a zipBomb; with 20 outer and 32 inner
// members it expands to 625 MiB, past max_expanded_bytes (512 MiB).
func bombPosting(t testing.TB, seed int) []byte {
	z := zipBomb(t, seed, 20, 32)
	return posting(fmt.Sprintf("bomb %d", seed), "Content-Type: multipart/mixed; boundary=\"z\"\r\n\r\n--z\r\nContent-Type: text/plain\r\n\r\nsee the zip\r\n--z\r\n"+
		attachmentEntity("bomb.zip", "application/zip", z)+"--z--\r\n")
}

// TestBombBudget: a message under 100 KB of nested zips whose members are
// all distinct, expanding to 625 MiB, ends limit-exceeded within the
// message's budget, and the station's record of the job says which
// budget. The job goes to the station signed, as the milter sends it, with
// no deadline of the milter's: clamd alone spends seconds on the bomb (it
// expands it too, to its own MaxScanSize).
//
//	go test ./test -run TestBombBudget -v
func TestBombBudget(t *testing.T) {
	msg := bombPosting(t, 1)
	if len(msg) >= 100<<10 {
		t.Fatalf("the bomb is %d bytes, want under 100 KB", len(msg))
	}
	clamd := harness.StartClamd(t)
	secret := harness.WriteSecret(t, "bomb-secret")
	st := harness.StartStation(t, bin.Station, "", clamd.Addr, secret)
	v := scanJob(t, st, secret, msg)
	const budget = "max_ratio 100 for the message exceeded"
	rec := onlyRecord(t, st.RecordsDir, v.JobID)
	if v.Status != verdict.LimitExceeded || rec.Verdict == nil || rec.Verdict.Status != verdict.LimitExceeded {
		t.Fatalf("verdict %s, record %+v: want limit-exceeded", v.Status, rec.Verdict)
	}
	named := false
	for _, f := range rec.Verdict.Findings {
		if f.Kind == verdict.KindLimitExceeded && f.Detail == budget && strings.HasPrefix(f.Path, "2/bomb.zip/") {
			named = true
		}
	}
	if !named {
		t.Errorf("record of job %s: findings %+v, want one %q in 2/bomb.zip", rec.JobID, rec.Verdict.Findings, budget)
	}
	t.Logf("%d bytes, %d findings, %d parts in the manifest, scanned in %v", len(msg), len(rec.Verdict.Findings), len(rec.Verdict.Manifest), rec.Duration)
}

// scanJob sends msg to the station as a signed job and returns its verdict.
func scanJob(t testing.TB, st *harness.Daemon, secret string, msg []byte) *verdict.Verdict {
	t.Helper()
	keys, err := jobproto.LoadSecretFile(secret)
	if err != nil {
		t.Fatal(err)
	}
	client := &jobproto.Client{Stations: []string{"http://" + st.Addr}, Keys: keys}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	v, err := client.Scan(ctx, jobproto.Meta{Sender: sender, Recipients: []string{listRcp}}, bytes.NewReader(msg), int64(len(msg)))
	if err != nil {
		t.Fatalf("station: %v", err)
	}
	return v
}

// cpuTime is the user and system time a process has used so far, from
// /proc/PID/stat (fields 14 and 15, in clock ticks of 1/100 s).
func cpuTime(t testing.TB, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// pid (comm) state ppid ...: comm may hold spaces and parentheses.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	var utime, stime int64
	if _, err := fmt.Sscan(f[11]+" "+f[12], &utime, &stime); err != nil {
		t.Fatalf("/proc/%d/stat: %v", pid, err)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// membersBomb is a list posting of a zip of a zip of 51 zips of 200 small
// members each: 10 252 members, past max_members (10 000). Each inner zip is
// distinct (its comment names it), its members are the same in every
// copy, so that deflate finds each copy in the one before (26 KB, within
// its 32 KB window) and the message stays small (the part cache then answers for repeated members: what
// is left is the walk's own cost).
func membersBomb(t testing.TB, seed int) []byte {
	t.Helper()
	inner := func(c int) []byte {
		var b bytes.Buffer
		w := zip.NewWriter(&b)
		for j := range 200 {
			f, err := w.CreateHeader(&zip.FileHeader{Name: fmt.Sprintf("f%03d.txt", j), Method: zip.Store})
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(f, "bomb %d member %d\n", seed, j)
		}
		w.SetComment(fmt.Sprintf("copy %d", c))
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	var parts [][]byte
	for c := range 51 {
		parts = append(parts, inner(c))
	}
	// A zip compresses each member on its own: the copies go into one
	// stored zip, the one member of the deflated outer zip.
	var all bytes.Buffer
	w := zip.NewWriter(&all)
	for c, p := range parts {
		f, err := w.CreateHeader(&zip.FileHeader{Name: fmt.Sprintf("part%02d.zip", c), Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		f.Write(p)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	z := deflatedZip(t, "all%d.zip", [][]byte{all.Bytes()})
	return posting(fmt.Sprintf("members bomb %d", seed), "Content-Type: multipart/mixed; boundary=\"z\"\r\n\r\n--z\r\nContent-Type: text/plain\r\n\r\nsee the zip\r\n--z\r\n"+
		attachmentEntity("bomb.zip", "application/zip", z)+"--z--\r\n")
}

// BenchmarkBomb is the CPU the station (and clamd) spend on a bomb: expanded,
// TestBombBudget's, and members, membersBomb's; a different one each time
// so that no cache of verdicts answers. The target is at most 1 s of the
// station's CPU for a message under 100 KB, whatever it expands to.
//
//	go test ./test -run '^$' -bench Bomb -benchtime 3x
func BenchmarkBomb(b *testing.B) {
	clamd := harness.StartClamd(b)
	secret := harness.WriteSecret(b, "bomb-secret")
	st := harness.StartStationOpts(b, bin.Station, harness.StationOptions{Clamd: []string{clamd.Addr}, Secret: secret, LogLevel: "info"})
	for _, bomb := range []struct {
		name  string
		build func(testing.TB, int) []byte
	}{{"expanded", bombPosting}, {"members", membersBomb}} {
		b.Run(bomb.name, func(b *testing.B) { benchBomb(b, st, clamd, secret, bomb.build) })
	}
}

func benchBomb(b *testing.B, st *harness.Daemon, clamd *harness.Clamd, secret string, build func(testing.TB, int) []byte) {
	msgs := make([][]byte, b.N)
	for i := range msgs {
		msgs[i] = build(b, 1000+i)
	}
	var station, engine, wall time.Duration
	b.ResetTimer()
	for i := range b.N {
		s0, c0, w0 := cpuTime(b, st.PID()), cpuTime(b, clamd.PID), time.Now()
		if v := scanJob(b, st, secret, msgs[i]); v.Status != verdict.LimitExceeded {
			b.Fatalf("bomb %d: %s, want limit-exceeded", i, v.Status)
		}
		station += cpuTime(b, st.PID()) - s0
		engine += cpuTime(b, clamd.PID) - c0
		wall += time.Since(w0)
	}
	b.StopTimer()
	n := time.Duration(b.N)
	b.ReportMetric(float64((station / n).Milliseconds()), "station-cpu-ms/op")
	b.ReportMetric(float64((engine / n).Milliseconds()), "clamd-cpu-ms/op")
	b.ReportMetric(float64((wall / n).Milliseconds()), "wall-ms/op")
	b.Logf("bomb of %d bytes: station CPU %v, clamd CPU %v, wall %v a message", len(msgs[0]), station/n, engine/n, wall/n)
}

// onlyRecord is the one job record in the station's records_dir.
func onlyRecord(t *testing.T, dir, jobID string) station.Record {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	if err != nil || len(files) != 1 {
		t.Fatalf("record files %v (%v), want one", files, err)
	}
	data, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(data, []byte("\n")); n != 1 {
		t.Fatalf("%s: %d records, want one", files[0], n)
	}
	rec, err := station.Records{Dir: dir}.Get(jobID)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}
