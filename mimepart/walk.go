package mimepart

import (
	"io"
	"strings"
)

// Visitor is told about the parts of an index in the order the scanner
// examines them. Any func may be nil.
type Visitor struct {
	// Leaf is a part with content of its own, reported at path. body reads
	// it with its transfer encoding, unless decoded: the rest of an
	// attached message whose header could not be read, already decoded.
	Leaf func(e *Entity, path string, body io.Reader, decoded bool) error
	// Anomaly is a structural problem, when a reader would meet it.
	Anomaly func(Anomaly)
	// Attached follows the parts of the message inside message/rfc822 part
	// e, reported at path; size is that message's size.
	Attached func(e *Entity, path string, size int64)
	// Limit is the limit that stopped the index, after everything else.
	Limit func(Anomaly)
}

// Walk visits the index in message order: each multipart's parts and
// then its anomalies, each attached message's parts, each leaf.
func (m *Message) Walk(v Visitor) error {
	if err := v.walk(m.Root); err != nil {
		return err
	}
	if m.Limit != nil && v.Limit != nil {
		v.Limit(*m.Limit)
	}
	return nil
}

func (v Visitor) walk(e *Entity) error {
	if e.Unreadable {
		v.anomalies(e)
		return nil
	}
	if e.Stopped {
		return nil
	}
	switch {
	case e.Multipart():
		for _, c := range e.Parts {
			if err := v.walk(c); err != nil {
				return err
			}
		}
		v.anomalies(e)
		return nil
	case e.Attached != nil:
		v.anomalies(e) // its own header's
		in := e.Attached
		if in.Unreadable {
			v.anomalies(in)
			return v.leaf(e, e.Leaf(), in.Section(in.Rest), true)
		}
		if err := v.walk(in); err != nil {
			return err
		}
		if v.Attached != nil {
			v.Attached(e, e.Leaf(), in.End-in.HeaderStart)
		}
		return nil
	}
	v.anomalies(e)
	return v.leaf(e, e.Leaf(), e.Body(), false)
}

func (v Visitor) anomalies(e *Entity) {
	if v.Anomaly != nil {
		for _, a := range e.Anomalies {
			v.Anomaly(a)
		}
	}
}

func (v Visitor) leaf(e *Entity, path string, body io.Reader, decoded bool) error {
	if v.Leaf == nil {
		return nil
	}
	return v.Leaf(e, path, body, decoded)
}

// Find is the entity at a MIME path as the scanner reports it: a body
// part, an attached message part, or a message whose body is the path
// ("1" of a single-part message, "3/1" of a single-part message attached
// as part 3). It is nil when the index has no such part.
func (m *Message) Find(path string) *Entity {
	return find(m.Root, path)
}

func find(e *Entity, path string) *Entity {
	if e.Leaf() == path || e.Path == path && !e.Message {
		return e
	}
	for _, c := range e.Parts {
		if c.Path == path || strings.HasPrefix(path, c.Path+"/") {
			return find(c, path)
		}
	}
	if e.Attached != nil {
		return find(e.Attached, path)
	}
	return nil
}
