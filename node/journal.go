package node

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/palyra/palyra-go/internal/atomicfile"
)

// journalFile, in the config dir, lists the request IDs this node has
// started to run, one per line.
const journalFile = "calls.log"

// callJournal remembers which calls this node started, across its
// processes: a call the gateway delivers again after the node quit, crashed
// or was updated in the middle of it is refused instead of run a second
// time, and so is one delivered again so much later that calls (in
// sharing.go), which keeps the results in memory, has forgotten it.
//
// An ID is written before its call runs. The write is not synced: the
// journal survives the process, which is what ends mid-call in practice,
// but not a power cut.
type callJournal struct {
	path string

	mu     sync.Mutex
	loaded bool
	// started holds the IDs in recent.
	started map[string]bool
	// recent is the newest IDs started, oldest first; the file is
	// rewritten with the newest maxRememberedCalls of them when it grows
	// past twice that many lines.
	recent []string
	// lines is how many lines the file has.
	lines int
	// rewrite is set when the file must be rewritten before the next
	// append: it is too long, or a write to it failed part way.
	rewrite bool
	// f is the journal open for appending, from the first call a Run
	// starts until the Run ends.
	f *os.File
}

func newCallJournal(configDir string) *callJournal {
	return &callJournal{path: filepath.Join(configDir, journalFile)}
}

// maxJournalRead bounds how much of the journal's end is read; the
// journal itself stays far smaller.
const maxJournalRead = 1 << 20

// parseJournal reads a journal's IDs, keeping the newest max. A line that
// is not a plausible request ID (a torn last write, say) is skipped.
func parseJournal(data []byte, max int) []string {
	var ids []string
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		if id := string(bytes.TrimSpace(line)); plausibleRequestID(id) {
			ids = append(ids, id)
		}
	}
	if len(ids) > max {
		ids = ids[len(ids)-max:]
	}
	return ids
}

// plausibleRequestID accepts what a gateway uses as a request ID (a ULID)
// and anything like it: 1 to 64 letters, digits, '-' or '_'.
func plausibleRequestID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

func (j *callJournal) load() error {
	if j.loaded {
		return nil
	}
	data, err := readTail(j.path, maxJournalRead)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("reading the journal of started calls: %w", err)
	}
	j.setRecent(parseJournal(data, maxRememberedCalls))
	j.lines = bytes.Count(data, []byte("\n"))
	// A file longer than what was read, or ending in a torn line that the
	// next ID would be glued to, is rewritten first.
	j.rewrite = len(data) >= maxJournalRead || len(data) > 0 && data[len(data)-1] != '\n'
	j.loaded = true
	return nil
}

// setRecent makes ids the remembered IDs.
func (j *callJournal) setRecent(ids []string) {
	j.recent = ids
	j.started = make(map[string]bool, len(ids))
	for _, id := range ids {
		j.started[id] = true
	}
}

// readTail reads the last n bytes of the file at path.
func readTail(path string, n int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if off := fi.Size() - n; off > 0 {
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			return nil, err
		}
	}
	return io.ReadAll(io.LimitReader(f, n))
}

// start records that the call id begins now. It reports whether the call
// was started before, by this process or an earlier one (it must not run
// again), or an error when the journal cannot be written (nor may the call
// run then: nothing would stop a second run).
func (j *callJournal) start(id string) (startedBefore bool, err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.load(); err != nil {
		return false, err
	}
	if j.started[id] {
		return true, nil
	}
	if !plausibleRequestID(id) {
		return false, fmt.Errorf("request ID %q is not one this node can remember", id)
	}
	if j.rewrite || j.lines >= 2*maxRememberedCalls {
		if err := j.rewriteWith(id); err != nil {
			return false, fmt.Errorf("recording the call: %w", err)
		}
		return false, nil
	}
	if err := j.append(id); err != nil {
		// What reached the file may be a torn line: start afresh next time.
		j.closeLocked()
		j.rewrite = true
		return false, fmt.Errorf("recording the call: %w", err)
	}
	j.recent = append(j.recent, id)
	j.started[id] = true
	j.lines++
	return false, nil
}

// append writes id as a line at the end of the file, opening it first if
// need be.
func (j *callJournal) append(id string) error {
	if j.f == nil {
		if err := os.MkdirAll(filepath.Dir(j.path), 0o700); err != nil {
			return err
		}
		f, err := os.OpenFile(j.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return err
		}
		j.f = f
	}
	_, err := j.f.Write([]byte(id + "\n"))
	return err
}

// rewriteWith replaces the file with the newest remembered IDs and id.
func (j *callJournal) rewriteWith(id string) error {
	j.closeLocked()
	ids := append(slices.Clone(j.recent[max(0, len(j.recent)-maxRememberedCalls+1):]), id)
	if err := os.MkdirAll(filepath.Dir(j.path), 0o700); err != nil {
		return err
	}
	if err := atomicfile.Write(j.path, []byte(strings.Join(ids, "\n")+"\n"), 0o600); err != nil {
		return err
	}
	j.setRecent(ids)
	j.lines = len(ids)
	j.rewrite = false
	return nil
}

// close closes the journal's file; the next start opens it again.
func (j *callJournal) close() {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.closeLocked()
}

func (j *callJournal) closeLocked() {
	if j.f != nil {
		j.f.Close()
		j.f = nil
	}
}
