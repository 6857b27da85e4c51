package jobproto

import "context"

type keyIDKey struct{}

// withKeyID is the context of a job authenticated with key id.
func withKeyID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, keyIDKey{}, id)
}

// KeyIDFrom is the id of the key a job's request was signed with, for the
// station's records and metrics: which primary sent what.
func KeyIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(keyIDKey{}).(string)
	return id
}

type digestKey struct{}

// withDigest is the context of a job whose body's SHA-256 (lowercase hex)
// the station checked against the signed digest.
func withDigest(ctx context.Context, digest string) context.Context {
	return context.WithValue(ctx, digestKey{}, digest)
}

// DigestFrom is the job body's SHA-256 in lowercase hex, checked against
// the body before the scan: the scanner's verdict cache need not hash the
// message again. "" outside a job.
func DigestFrom(ctx context.Context) string {
	d, _ := ctx.Value(digestKey{}).(string)
	return d
}
