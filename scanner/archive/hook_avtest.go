//go:build avtest

package archive

import "strings"

// DecoderPanicTrigger in a member's name makes the avtest build's archive
// decoders panic in the middle of the walk, as a bug in one would: the
// tests check that the message fails alone and the daemon goes on. Only
// binaries built with -tags avtest have it.
const DecoderPanicTrigger = "AVTEST-" + "DECODER-PANIC"

func init() {
	memberHook = func(m Member) {
		if strings.Contains(m.Name, DecoderPanicTrigger) {
			panic("avtest: injected archive decoder panic")
		}
	}
}
