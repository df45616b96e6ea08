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
// but not a power cut. The IDs of calls starting at once are written
// together, in one write (a group commit): each start still returns only
// once its own ID is in the file.
type callJournal struct {
	path string

	// mu guards loaded, started, queued, next and writing.
	mu     sync.Mutex
	loaded bool
	// started holds the IDs written to the file.
	started map[string]bool
	// queued maps an ID waiting to be written to its batch.
	queued map[string]*journalBatch
	// next is the batch the next write takes; nil when none waits.
	next *journalBatch
	// writing is set while a start is the writer: it writes next, and
	// hands the role on to one of the starts of the batch queued behind
	// it, if any. The others wait for their batch's write; no lock is
	// held while writing.
	writing bool

	// fileMu is held by the writer while it writes, and by close; it
	// guards the fields below it.
	fileMu sync.Mutex
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
	// writes counts the writes to the file (appends and rewrites).
	writes int
	// buf is the lines of an append, kept for the next.
	buf []byte
}

// journalBatch is the IDs one write records.
type journalBatch struct {
	ids []string
	// done is closed once the write is over; err is its failure.
	done chan struct{}
	err  error
	// lead hands the writer's role to one of the batch's starts; only a
	// batch queued behind a writer has one (a writer's own batch is taken
	// by it).
	lead chan struct{}
	// first holds the first IDs, so that a small batch is one allocation.
	first [4]string
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

// load reads the file once, before the first ID is queued; j.mu must be
// held. No writer runs before, so it sets the writer's fields too.
func (j *callJournal) load() error {
	if j.loaded {
		return nil
	}
	data, err := readTail(j.path, maxJournalRead)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("reading the journal of started calls: %w", err)
	}
	j.recent = parseJournal(data, maxRememberedCalls)
	j.started = make(map[string]bool, len(j.recent))
	for _, id := range j.recent {
		j.started[id] = true
	}
	j.queued = make(map[string]*journalBatch)
	j.lines = bytes.Count(data, []byte("\n"))
	// A file longer than what was read, or ending in a torn line that the
	// next ID would be glued to, is rewritten first.
	j.rewrite = len(data) >= maxJournalRead || len(data) > 0 && data[len(data)-1] != '\n'
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

// start records that the call id begins now. It reports whether the call
// was started before, by this process or an earlier one (it must not run
// again), or an error when the journal cannot be written (nor may the call
// run then: nothing would stop a second run). It returns once id is in
// the file.
func (j *callJournal) start(id string) (startedBefore bool, err error) {
	return j.await(j.enqueue(id))
}

// await is start's answer once enqueue has queued the ID (or answered).
func (j *callJournal) await(b *journalBatch, role journalRole, before bool, err error) (startedBefore bool, _ error) {
	switch role {
	case answered:
		return before, err
	case again:
		// Delivered again while its first start is being written: started
		// before, once that start's write is done.
		<-b.done
		return b.err == nil, b.err
	case writer:
		j.lead(b)
	case waiter:
		select {
		case <-b.done:
		case <-b.lead:
			j.lead(b)
		}
	}
	return false, b.err
}

// journalRole is what a start does after enqueue.
type journalRole int

const (
	// answered: nothing was queued; enqueue's answer is start's.
	answered journalRole = iota
	// again: the ID was already queued, in the batch returned.
	again
	// writer: write the batch (lead).
	writer
	// waiter: wait for the batch to be written, or for the writer's role.
	waiter
)

// enqueue queues id for the next write and returns its batch and what the
// start does with it; or, answered, whether id was started before, or why
// it cannot be recorded.
func (j *callJournal) enqueue(id string) (b *journalBatch, role journalRole, before bool, err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.load(); err != nil {
		return nil, answered, false, err
	}
	if j.started[id] {
		return nil, answered, true, nil
	}
	if b := j.queued[id]; b != nil {
		return b, again, false, nil
	}
	if !plausibleRequestID(id) {
		return nil, answered, false, fmt.Errorf("request ID %q is not one this node can remember", id)
	}
	if j.next == nil {
		j.next = &journalBatch{done: make(chan struct{})}
		j.next.ids = j.next.first[:0]
		if j.writing {
			j.next.lead = make(chan struct{}, 1)
		}
	}
	b = j.next
	b.ids = append(b.ids, id)
	j.queued[id] = b
	if j.writing {
		return b, waiter, false, nil
	}
	j.writing = true
	return b, writer, false, nil
}

// lead writes b, which is next, as the writer, and hands the role on to
// the batch queued meanwhile, if any.
func (j *callJournal) lead(b *journalBatch) {
	j.mu.Lock()
	j.next = nil
	j.mu.Unlock()
	j.fileMu.Lock()
	rewritten, err := j.write(b.ids)
	var recent []string
	if rewritten {
		recent = j.recent
	}
	j.fileMu.Unlock()
	j.mu.Lock()
	for _, id := range b.ids {
		delete(j.queued, id)
	}
	switch {
	case rewritten:
		// The file holds the newest IDs only: so does started.
		clear(j.started)
		for _, id := range recent {
			j.started[id] = true
		}
	case err == nil:
		for _, id := range b.ids {
			j.started[id] = true
		}
	}
	next := j.next
	j.writing = next != nil
	j.mu.Unlock()
	b.err = err
	close(b.done)
	if next != nil {
		// Its starts all wait on lead; one takes it.
		next.lead <- struct{}{}
	}
}

// write records ids in the file, appending them or, when the file is
// due to be rewritten, rewriting it (it reports which); j.fileMu must be
// held.
func (j *callJournal) write(ids []string) (rewritten bool, err error) {
	j.writes++
	if j.rewrite || j.lines+len(ids) > 2*maxRememberedCalls {
		if err := j.rewriteWith(ids); err != nil {
			return false, fmt.Errorf("recording the call: %w", err)
		}
		return true, nil
	}
	if err := j.append(ids); err != nil {
		// What reached the file may be a torn line: start afresh next time.
		j.closeLocked()
		j.rewrite = true
		return false, fmt.Errorf("recording the call: %w", err)
	}
	j.recent = append(j.recent, ids...)
	j.lines += len(ids)
	return false, nil
}

// append writes ids as lines at the end of the file, opening it first if
// need be.
func (j *callJournal) append(ids []string) error {
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
	j.buf = j.buf[:0]
	for _, id := range ids {
		j.buf = append(append(j.buf, id...), '\n')
	}
	_, err := j.f.Write(j.buf)
	if cap(j.buf) > maxKeptBuffer {
		j.buf = nil
	}
	return err
}

// maxKeptBuffer bounds the append buffer the journal keeps between writes.
const maxKeptBuffer = 64 << 10

// rewriteWith replaces the file with the newest remembered IDs and ids.
func (j *callJournal) rewriteWith(ids []string) error {
	j.closeLocked()
	keep := j.recent[max(0, len(j.recent)-max(0, maxRememberedCalls-len(ids))):]
	all := append(slices.Clone(keep), ids...)
	if err := os.MkdirAll(filepath.Dir(j.path), 0o700); err != nil {
		return err
	}
	if err := atomicfile.Write(j.path, []byte(strings.Join(all, "\n")+"\n"), 0o600); err != nil {
		return err
	}
	j.recent = all
	j.lines = len(all)
	j.rewrite = false
	return nil
}

// close closes the journal's file; the next start opens it again.
func (j *callJournal) close() {
	j.fileMu.Lock()
	defer j.fileMu.Unlock()
	j.closeLocked()
}

func (j *callJournal) closeLocked() {
	if j.f != nil {
		j.f.Close()
		j.f = nil
	}
}
