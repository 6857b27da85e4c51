// Package verdict is the result of scanning one message: what was found, where,
// and by which engines. It is plain data shared by the scanner, the job protocol
// and the policy; it does no I/O and knows nothing of actions.
package verdict

import "time"

// Status is the outcome of a scan, the worst of its findings. Every value but
// Clean is a reason not to let the message pass unnoticed: each has its own
// name in the verdict, the X-Virus-Status header, the log line and the metric.
type Status string

const (
	Clean         Status = "clean"
	Infected      Status = "infected"       // an engine named a threat
	Encrypted     Status = "encrypted"      // content the engines could not read
	LimitExceeded Status = "limit-exceeded" // a scan limit stopped the walk
	Unscannable   Status = "unscannable"    // malformed structure; raw bytes were scanned
	Error         Status = "error"          // an engine failed: the message was not fully scanned
)

// Statuses lists every status, for pre-setting metric labels and for docs.
var Statuses = []Status{Clean, Infected, Encrypted, LimitExceeded, Unscannable, Error}

// severity orders statuses so that a verdict takes the worst of its findings.
// Infected outranks error: a known threat is a firmer answer than a failure.
var severity = map[Status]int{
	Clean: 0, Unscannable: 1, LimitExceeded: 2, Encrypted: 3, Error: 4, Infected: 5,
}

// Kind is what a finding is.
type Kind string

const (
	KindVirus         Kind = "virus"
	KindEncrypted     Kind = "encrypted"
	KindLimitExceeded Kind = "limit-exceeded"
	KindUnscannable   Kind = "unscannable"
	KindScanError     Kind = "scan-error"
)

// Status is the verdict status a finding of this kind leads to.
func (k Kind) Status() Status {
	switch k {
	case KindVirus:
		return Infected
	case KindEncrypted:
		return Encrypted
	case KindLimitExceeded:
		return LimitExceeded
	case KindUnscannable:
		return Unscannable
	default:
		return Error
	}
}

// Finding is one thing found in one place of the message.
type Finding struct {
	// Path locates the content: "" or "0" for the raw message, "2" for the
	// second top-level part, "2/1" for the first part inside it.
	Path        string `json:"path"`
	FileName    string `json:"file_name,omitempty"`
	ContentType string `json:"content_type,omitempty"`
	Kind        Kind   `json:"kind"`
	// Threat is the engine's name for what it found; empty when it gave none
	// (the activity log then shows "???", as LISTSERV does).
	Threat string `json:"threat,omitempty"`
	Engine string `json:"engine,omitempty"`
	// Detail says why, for kinds other than virus ("missing final boundary").
	Detail string `json:"detail,omitempty"`
	// Raw is the engine's reply as received ("stream: Eicar-Test-Signature
	// FOUND"), for the station's record when the name is missing or odd.
	Raw string `json:"raw,omitempty"`
	// Err is the engine's error behind a scan-error finding, so that the
	// station can sort it with errors.Is (scanner/engineerr); never sent.
	Err error `json:"-"`
}

// Part is one entry of the manifest: every MIME part the walk saw.
type Part struct {
	Path     string `json:"path"`
	FileName string `json:"file_name,omitempty"`
	// FileNames, when the part carries more than one name (a filename and
	// a different name, an encoded name and its raw form), is all of them,
	// FileName first: a client may show any, so the rules see each.
	FileNames   []string `json:"file_names,omitempty"`
	ContentType string   `json:"content_type,omitempty"`
	Size        int64    `json:"size"`
	Encrypted   bool     `json:"encrypted,omitempty"`
	// Decrypted: encrypted, and opened with a password found in the
	// message's text, so its content was scanned.
	Decrypted bool `json:"decrypted,omitempty"`
}

// Engine names an engine that took part in the scan and its signature state.
type Engine struct {
	Name             string    `json:"name"`
	Version          string    `json:"version,omitempty"`
	SignatureVersion string    `json:"signature_version,omitempty"`
	SignatureTime    time.Time `json:"signature_time,omitzero"`
}

// Verdict is the answer for one message.
type Verdict struct {
	JobID    string    `json:"job_id,omitempty"`
	Status   Status    `json:"status"`
	Findings []Finding `json:"findings,omitempty"`
	Manifest []Part    `json:"manifest,omitempty"`
	Engines  []Engine  `json:"engines,omitempty"`
	// Scanner names who scanned: "avstation 0.1.0 on host".
	Scanner  string        `json:"scanner,omitempty"`
	Duration time.Duration `json:"duration_ns,omitempty"`
	// Cached says the verdict was given before for the same message and
	// the same signature versions, and not scanned again.
	Cached bool `json:"cached,omitempty"`
}

// Add records a finding and raises the status when the finding is worse.
func (v *Verdict) Add(f Finding) {
	v.Findings = append(v.Findings, f)
	if s := f.Kind.Status(); v.Status == "" || severity[s] > severity[v.Status] {
		v.Status = s
	}
}

// Settle sets the status to Clean when nothing was found. Call it once the
// scan is over; a verdict that was never settled has no status and is treated
// as unknown (fail closed) by its readers.
func (v *Verdict) Settle() {
	if v.Status == "" && len(v.Findings) == 0 {
		v.Status = Clean
	}
}

// First returns the first finding of the status's kind, the one a reject
// message or a header names. ok is false when there is none.
func (v *Verdict) First(s Status) (f Finding, ok bool) {
	for _, f := range v.Findings {
		if f.Kind.Status() == s {
			return f, true
		}
	}
	return Finding{}, false
}

// Known reports whether s is a status this version understands. A verdict
// from a newer station with an unknown status must not be taken for clean.
func Known(s Status) bool {
	_, ok := severity[s]
	return ok
}
