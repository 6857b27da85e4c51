package quarantine

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Dir keeps quarantined messages in a directory: ID.eml, the message as
// received, and ID.json, its Record, both mode 0600 in a directory of mode
// 0700, since they hold other people's mail. The JSON is written last, so a
// record that List shows always has its message; a crash leaves at worst an
// .eml without a record or a temporary file, which List ignores and Purge
// removes.
type Dir struct {
	Path string
}

const (
	msgExt  = ".eml"
	recExt  = ".json"
	tmpPref = ".tmp-" // temporary files: hidden, never a valid ID
)

// Put stores msg and its record. It assigns rec.ID, sets rec.Time to now
// when it is zero and rec.Size to the bytes stored, and returns the record
// as stored.
func (d Dir) Put(rec Record, msg io.Reader) (Record, error) {
	now := time.Now()
	id, err := newID(now)
	if err != nil {
		return Record{}, err
	}
	rec.ID = id
	if rec.Time.IsZero() {
		rec.Time = now
	}
	if err := os.MkdirAll(d.Path, 0o700); err != nil {
		return Record{}, fmt.Errorf("quarantine: %w", err)
	}
	msgPath := d.file(id, msgExt)
	n, err := d.writeAtomic(msgPath, func(w io.Writer) error {
		_, err := io.Copy(w, msg)
		return err
	})
	if err != nil {
		return Record{}, fmt.Errorf("quarantine: put %s: message: %w", id, err)
	}
	rec.Size = n
	data, err := json.MarshalIndent(rec, "", "\t")
	if err != nil {
		os.Remove(msgPath)
		return Record{}, fmt.Errorf("quarantine: put %s: record: %w", id, err)
	}
	data = append(data, '\n')
	if _, err := d.writeAtomic(d.file(id, recExt), func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	}); err != nil {
		os.Remove(msgPath)
		return Record{}, fmt.Errorf("quarantine: put %s: record: %w", id, err)
	}
	// Make both renames durable before the caller reports the message as
	// quarantined and the MTA forgets it.
	if err := syncDir(d.Path); err != nil {
		return Record{}, fmt.Errorf("quarantine: put %s: %w", id, err)
	}
	return rec, nil
}

// writeAtomic writes to a temporary file in the same directory, syncs it
// and renames it to name, so that name is either absent or complete.
func (d Dir) writeAtomic(name string, write func(io.Writer) error) (n int64, err error) {
	f, err := os.CreateTemp(d.Path, tmpPref+"*") // mode 0600
	if err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return 0, err
	}
	cw := &countWriter{w: f}
	if err := write(cw); err != nil {
		return 0, err
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	if err := f.Close(); err != nil {
		return 0, err
	}
	if err := os.Rename(f.Name(), name); err != nil {
		return 0, err
	}
	return cw.n, nil
}

// Get returns the record and the message with this ID; the caller closes
// the message. An unknown ID is an error wrapping fs.ErrNotExist.
func (d Dir) Get(id string) (Record, io.ReadCloser, error) {
	if !ValidID(id) {
		return Record{}, nil, fmt.Errorf("quarantine: get %q: %w", id, ErrBadID)
	}
	rec, err := d.readRecord(id + recExt)
	if err != nil {
		return Record{}, nil, fmt.Errorf("quarantine: get %s: %w", id, err)
	}
	f, err := os.Open(d.file(id, msgExt))
	if err != nil {
		return Record{}, nil, fmt.Errorf("quarantine: get %s: %w", id, err)
	}
	return rec, f, nil
}

// ErrBadID is returned for an ID that is not of the ID alphabet.
var ErrBadID = errors.New("not a quarantine id")

// List returns every record, oldest first. Files that are not records are
// skipped. A record that cannot be read is reported in the error, with its
// file name, and left out; the others are listed all the same, so one bad
// file never hides the quarantine from its administrator.
func (d Dir) List() ([]Record, error) {
	entries, err := os.ReadDir(d.Path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil // nothing was ever quarantined
		}
		return nil, fmt.Errorf("quarantine: list: %w", err)
	}
	var recs []Record
	var errs []error
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, recExt) || strings.HasPrefix(name, ".") || e.IsDir() {
			continue
		}
		rec, err := d.readRecord(name)
		if err == nil {
			_, err = os.Stat(d.file(rec.ID, msgExt))
			if err != nil {
				err = fmt.Errorf("message file: %w", err)
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("quarantine: list: %s: %w", filepath.Join(d.Path, name), err))
			continue
		}
		recs = append(recs, rec)
	}
	slices.SortFunc(recs, func(a, b Record) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return recs, errors.Join(errs...)
}

// readRecord reads and checks the record file name (ID.json).
func (d Dir) readRecord(name string) (Record, error) {
	id := strings.TrimSuffix(name, recExt)
	if !ValidID(id) {
		return Record{}, ErrBadID
	}
	data, err := os.ReadFile(filepath.Join(d.Path, name))
	if err != nil {
		return Record{}, err
	}
	var rec Record
	if err := json.Unmarshal(data, &rec); err != nil {
		return Record{}, fmt.Errorf("bad record: %w", err)
	}
	if rec.ID != id {
		return Record{}, fmt.Errorf("bad record: id %q in file of %q", rec.ID, id)
	}
	return rec, nil
}

// Delete removes a record and its message: the record first, so that the
// message is never listed without its file. An unknown ID is an error
// wrapping fs.ErrNotExist.
func (d Dir) Delete(id string) error {
	if !ValidID(id) {
		return fmt.Errorf("quarantine: delete %q: %w", id, ErrBadID)
	}
	errRec := os.Remove(d.file(id, recExt))
	errMsg := os.Remove(d.file(id, msgExt))
	switch {
	case errRec == nil && (errMsg == nil || errors.Is(errMsg, fs.ErrNotExist)):
		return nil
	case errors.Is(errRec, fs.ErrNotExist) && errors.Is(errMsg, fs.ErrNotExist):
		return fmt.Errorf("quarantine: delete %s: %w", id, fs.ErrNotExist)
	case errRec != nil && !errors.Is(errRec, fs.ErrNotExist):
		return fmt.Errorf("quarantine: delete %s: %w", id, errRec)
	case errMsg != nil && !errors.Is(errMsg, fs.ErrNotExist):
		return fmt.Errorf("quarantine: delete %s: %w", id, errMsg)
	}
	return nil // a message left over without its record is gone too
}

// Purge deletes the records made before olderThan and returns how many it
// deleted. It also removes what a crash left behind and is older than
// that: messages without a record and temporary files. Unreadable records
// are reported, as by List, and left for the administrator.
func (d Dir) Purge(olderThan time.Time) (int, error) {
	recs, listErr := d.List()
	var errs []error
	if listErr != nil {
		errs = append(errs, listErr)
	}
	n := 0
	for _, rec := range recs {
		if !rec.Time.Before(olderThan) {
			continue
		}
		if err := d.Delete(rec.ID); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	entries, err := os.ReadDir(d.Path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, fmt.Errorf("quarantine: purge: %w", err))
	}
	for _, e := range entries {
		name := e.Name()
		leftover := strings.HasPrefix(name, tmpPref)
		if id, ok := strings.CutSuffix(name, msgExt); ok && ValidID(id) {
			_, err := os.Stat(d.file(id, recExt))
			leftover = errors.Is(err, fs.ErrNotExist)
		}
		if !leftover || e.IsDir() {
			continue
		}
		info, err := e.Info()
		if err != nil || !info.ModTime().Before(olderThan) {
			continue
		}
		if err := os.Remove(filepath.Join(d.Path, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("quarantine: purge: %w", err))
		}
	}
	return n, errors.Join(errs...)
}

func (d Dir) file(id, ext string) string {
	return filepath.Join(d.Path, id+ext)
}

func syncDir(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
