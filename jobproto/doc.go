// Package jobproto is job protocol v1: how avmilter hands a message to an
// avstation and how the verdict comes back, both signed with the shared
// secret word. docs/job-protocol.md in the repository is the full wire
// format, with test vectors that vectors_test.go checks against this code;
// this is its summary.
//
// # Wire format
//
// A scan job is one HTTP request:
//
//	POST /v1/scan
//	Avs-Meta: {"job_id":"...","queue_id":"...",...}   JSON of Meta, non-ASCII escaped as \uXXXX
//	Avs-Content-Sha256: <lowercase hex SHA-256 of the body>
//	Authorization: AVS1-HMAC-SHA256 key=<keyid>, ts=<unix seconds>, nonce=<32 hex>, sig=<64 hex>
//
//	<the raw message, CRLF, headers and body>
//
// sig is HMAC-SHA256(secret of keyid, canonical request), lowercase hex,
// keyed by the secret's bytes as they stand in the secret file, where the
// canonical request is these lines joined by "\n" (no final newline):
//
//	AVS1-HMAC-SHA256
//	<method>
//	<request target: escaped path and "?query" if any, as sent>
//	<keyid>
//	<ts>
//	<nonce>
//	<Avs-Content-Sha256 value>
//	<Avs-Meta value, "" when absent>
//
// GET /v1/info is signed the same way over an empty body (its digest is the
// SHA-256 of nothing) and no Avs-Meta.
//
// Parameters are tokens, never quoted: keyid is 1-64 of [A-Za-z0-9._-], ts
// decimal digits, nonce 32 lowercase hex digits (16 random bytes), sig 64 hex
// digits. Every parameter appears exactly once, in any order; anything else
// is refused.
//
// Once a request is authenticated, every response, errors included, carries
//
//	Avs-Content-Sha256: <hex SHA-256 of the response body>
//	Avs-Signature: key=<keyid>, ts=<unix seconds>, nonce=<new 32 hex>, sig=<64 hex>
//
// signed with the key that signed the request, over
//
//	AVS1-HMAC-SHA256-RESPONSE
//	<request method>
//	<request target>
//	<keyid>
//	<ts>
//	<nonce>
//	<response body SHA-256, lowercase hex>
//	<HTTP status code, 3 digits>
//	<the request's nonce>
//
// so a response cannot be moved to another request, given another status or
// forged without the secret. The client refuses any response whose signature
// or body digest does not verify; it never takes an unsigned answer for a
// verdict.
//
// Bodies are JSON and end with a newline: 200 on /v1/scan carries a
// verdict.Verdict whose job_id is the request's; 200 on /v1/info carries an
// Info; every other status carries {"error": "..."}.
//
// The station checks, before it reads a byte of the body: the header format,
// that the key id is known, that |now - ts| <= window (5 minutes by default),
// and the HMAC. Only then is the nonce recorded, for twice the window; a
// nonce seen before is refused. Any of these failures is an unsigned 401
// with {"error": "invalid job signature: <reason>"}. The body is then
// spooled to a 0600 temp file while hashed; a digest that does not match the
// declared one is a (signed) 401 and the file is removed unscanned.
//
// Statuses: 200 verdict; 400 bad meta or unreadable body; 401 invalid job
// signature; 413 body over the station's limit; 500 the scan failed or the
// station cannot spool; 503 (with Retry-After: 1) the station is at its
// concurrent-scan limit. The client moves on to the next station on anything
// but a verified verdict; when every station failed and one was busy, it
// waits (20 ms doubling to 500 ms, jittered) and goes round again until its
// context ends, so a burst larger than the stations' capacity waits instead
// of being tempfailed.
package jobproto
