package mimepart

// For the fuzz tests of package mimepart_test, which use strip, the
// quarantine and the scanner (which import mimepart).
var (
	RefEvents   = refEvents
	IndexEvents = indexEvents
	TestLimits  = testLimits
)

// IndexCases are the messages of the index tests.
func IndexCases() []string {
	var out []string
	for _, tc := range indexCases {
		out = append(out, tc.msg)
	}
	return out
}
