package harness

import (
	"errors"
	"io/fs"
	"path/filepath"
)

// queueNames are the queues a message waits in until Postfix is done with
// it (delivered, bounced or expired); see postfix(1)'s QUEUE section.
// bounce, defer and trace hold logs about messages, not messages.
var queueNames = []string{"maildrop", "incoming", "active", "deferred", "hold"}

// QueueFiles counts the messages in the instance's queues, as the queue
// files under its queue directory (the deferred queue is hashed into
// subdirectories). Zero means every message was delivered or bounced.
func (p *Postfix) QueueFiles() (int, error) {
	n := 0
	for _, q := range queueNames {
		err := filepath.WalkDir(filepath.Join(p.QueueDir, q), func(_ string, d fs.DirEntry, err error) error {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // moved to another queue while we walked
			}
			if err != nil {
				return err
			}
			if d.Type().IsRegular() {
				n++
			}
			return nil
		})
		if err != nil {
			return 0, err
		}
	}
	return n, nil
}
