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
