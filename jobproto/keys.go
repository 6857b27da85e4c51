package jobproto

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
)

// DefaultKeyID is the key id of a secret given without one.
const DefaultKeyID = "default"

// maxSecretFile bounds how much of a secret file is read.
const maxSecretFile = 64 << 10

// Key is one shared secret and the id that names it on the wire. The
// secret never leaves the process: Key formats and logs as its id only.
type Key struct {
	ID     string
	Secret []byte
}

// Format prints the key id and never the secret, whatever the verb.
func (k Key) Format(f fmt.State, verb rune) { fmt.Fprintf(f, "Key(%s)", k.ID) }

// LogValue logs the key id only.
func (k Key) LogValue() slog.Value { return slog.StringValue(k.ID) }

// KeyRing holds the active keys, in order: the first signs what we send,
// every one verifies what we receive. Rotation: add the new key on every
// station, then put it first on the milters, then drop the old one.
type KeyRing struct {
	keys []Key
	byID map[string]Key
}

// NewKeyRing returns a ring of keys, the first being the signing key. It
// refuses no keys, an invalid or repeated id and an empty secret. The
// secrets are copied.
func NewKeyRing(keys ...Key) (*KeyRing, error) {
	if len(keys) == 0 {
		return nil, errors.New("key ring: no key")
	}
	r := &KeyRing{byID: make(map[string]Key, len(keys))}
	for i, k := range keys {
		if !ValidKeyID(k.ID) {
			return nil, fmt.Errorf("key ring: key %d: id must be 1-64 of A-Z a-z 0-9 . _ -", i+1)
		}
		if _, dup := r.byID[k.ID]; dup {
			return nil, fmt.Errorf("key ring: key id %s appears twice", k.ID)
		}
		if len(k.Secret) == 0 {
			return nil, fmt.Errorf("key ring: key %s: empty secret", k.ID)
		}
		k.Secret = bytes.Clone(k.Secret)
		r.keys = append(r.keys, k)
		r.byID[k.ID] = k
	}
	return r, nil
}

// Signer is the key that signs.
func (r *KeyRing) Signer() Key { return r.keys[0] }

// Lookup returns the key with id.
func (r *KeyRing) Lookup(id string) (Key, bool) {
	k, ok := r.byID[id]
	return k, ok
}

// IDs lists the key ids in order, for logs and check-config.
func (r *KeyRing) IDs() []string {
	ids := make([]string, len(r.keys))
	for i, k := range r.keys {
		ids[i] = k.ID
	}
	return ids
}

// Format prints the key ids only.
func (r KeyRing) Format(f fmt.State, verb rune) {
	fmt.Fprintf(f, "KeyRing(%s)", strings.Join(r.IDs(), ","))
}

// LogValue logs the key ids only.
func (r *KeyRing) LogValue() slog.Value { return slog.AnyValue(r.IDs()) }

// LoadSecretFile reads a key ring from a file only its owner can read.
//
// One key per line; blank lines and lines whose first non-blank character
// is '#' are ignored. A line with one field is a secret with key id
// "default"; a line with two whitespace-separated fields is
// "<keyid> <secret>". The first key signs. Errors name the file and the
// line, never a secret.
func LoadSecretFile(path string) (*KeyRing, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("secret file: %w", err)
	}
	defer f.Close()
	// Stat the open file, not the path, so the mode checked is the mode of
	// what is read.
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("secret file: %w", err)
	}
	if err := checkSecretMode(path, fi); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return nil, fmt.Errorf("secret file %s: %w", path, err)
	}
	if len(data) > maxSecretFile {
		return nil, fmt.Errorf("secret file %s: larger than %d bytes", path, maxSecretFile)
	}
	return parseSecrets(path, data)
}

func checkSecretMode(path string, fi os.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("secret file %s: not a regular file", path)
	}
	perm := fi.Mode().Perm()
	if perm&0o077 == 0 {
		return nil
	}
	what := "is readable by group or others"
	if perm&0o044 == 0 {
		what = "is open to group or others"
	}
	return fmt.Errorf("secret file %s: mode %04o %s; run: chmod 600 %s", path, perm, what, path)
}

// parseSecrets parses the content of a secret file; name is for errors.
func parseSecrets(name string, data []byte) (*KeyRing, error) {
	var keys []Key
	lineOf := map[string]int{}
	for n, line := range bytes.Split(data, []byte("\n")) {
		n++
		fields := strings.Fields(string(line))
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		var k Key
		switch len(fields) {
		case 1:
			k = Key{ID: DefaultKeyID, Secret: []byte(fields[0])}
		case 2:
			// The id is not quoted back: a line mistyped as two secrets
			// would otherwise print one.
			if !ValidKeyID(fields[0]) {
				return nil, fmt.Errorf("secret file %s: line %d: key id must be 1-64 of A-Z a-z 0-9 . _ -", name, n)
			}
			k = Key{ID: fields[0], Secret: []byte(fields[1])}
		default:
			return nil, fmt.Errorf("secret file %s: line %d: %d fields; want \"<secret>\" or \"<keyid> <secret>\"", name, n, len(fields))
		}
		if first, dup := lineOf[k.ID]; dup {
			return nil, fmt.Errorf("secret file %s: line %d: same key id as line %d", name, n, first)
		}
		lineOf[k.ID] = n
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("secret file %s: no key", name)
	}
	return NewKeyRing(keys...)
}
