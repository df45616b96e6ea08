package node

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/palyra/palyra-go/internal/atomicfile"
)

// journalFile, in the config dir, lists the request IDs this node has
// started to run, one per line.
const journalFile = "calls.log"

// callJournal remembers across the node's processes which calls it
// started, so that a call the gateway delivers again after the node quit,
// crashed or was updated in the middle of it is refused instead of run a
// second time. Within one process, calls (in sharing.go) also keeps the
// results; the journal only needs to know that a call began.
//
// An ID is written before its call runs. The write is not synced: the
// journal survives the process, which is what ends mid-call in practice,
// but not a power cut.
type callJournal struct {
	path string

	mu     sync.Mutex
	loaded bool
	// before holds the IDs started by earlier processes.
	before map[string]bool
	// recent is the newest IDs, previous processes' first, oldest first;
	// the file is rewritten with them when it grows past twice their
	// bound.
	recent []string
	lines  int
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
	j.recent = parseJournal(data, maxRememberedCalls)
	j.before = make(map[string]bool, len(j.recent))
	for _, id := range j.recent {
		j.before[id] = true
	}
	j.lines = len(j.recent)
	j.loaded = true
	return nil
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

// start records that the call id begins now. It reports whether an earlier
// process of this node started it already (the call must not run again),
// or an error when the journal cannot be written (nor may it run then:
// nothing would stop a second run).
func (j *callJournal) start(id string) (startedBefore bool, err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.load(); err != nil {
		return false, err
	}
	if j.before[id] {
		return true, nil
	}
	if !plausibleRequestID(id) {
		return false, fmt.Errorf("request ID %q is not one this node can remember", id)
	}
	j.recent = append(j.recent, id)
	if j.lines >= 2*maxRememberedCalls {
		j.closeLocked()
		j.recent = j.recent[len(j.recent)-maxRememberedCalls:]
		if err := atomicfile.Write(j.path, []byte(strings.Join(j.recent, "\n")+"\n"), 0o600); err != nil {
			return false, fmt.Errorf("recording the call: %w", err)
		}
		j.lines = len(j.recent)
		return false, nil
	}
	if j.f == nil {
		if err := os.MkdirAll(filepath.Dir(j.path), 0o700); err != nil {
			return false, fmt.Errorf("recording the call: %w", err)
		}
		if j.f, err = os.OpenFile(j.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600); err != nil {
			j.f = nil
			return false, fmt.Errorf("recording the call: %w", err)
		}
	}
	if _, err := j.f.Write([]byte(id + "\n")); err != nil {
		return false, fmt.Errorf("recording the call: %w", err)
	}
	j.lines++
	return false, nil
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
