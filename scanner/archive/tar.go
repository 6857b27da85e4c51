package archive

import (
	"archive/tar"
	"io"
)

// tar walks a tar archive in one pass. A bad header cannot be skipped (the
// next header's place depends on it), so the first error ends the walk.
func (w *walker) tar(r io.Reader) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			w.problem("", Unscannable, readDetail(Tar, err))
			return nil
		}
		if err := w.next(); err != nil {
			return err
		}
		switch h.Typeflag {
		case tar.TypeReg, tar.TypeCont, tar.TypeGNUSparse, 0: // 0: pre-POSIX regular file
		default:
			continue // directories, links, devices, fifos: no content
		}
		m := Member{Name: cleanName(h.Name), Size: h.Size}
		w.checkName(h.Name, m.Name)
		// tar does not compress: no ratio (a sparse file's holes are
		// bounded by MaxMemberSize and the Budget).
		readErr, err := w.member(m, tr, nil)
		if err != nil {
			return err
		}
		if readErr != nil {
			return nil // the stream is out of step
		}
	}
}
