package node

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// A journal opened by a later process knows the calls earlier ones started;
// the process that starts a call does not refuse it.
func TestCallJournalAcrossProcesses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "node") // made on first use
	first := newCallJournal(dir)
	defer first.close()
	for _, id := range []string{"01M84DQ28HB4S9TYS0GNBPXZ0P", "01M84DQ31HPC0QJ4Z6C7WX7E4M"} {
		if before, err := first.start(id); err != nil || before {
			t.Fatalf("first process starting %s: before=%v, %v", id, before, err)
		}
	}
	// A write torn by a crash, and a line a person added by hand.
	f, err := os.OpenFile(filepath.Join(dir, journalFile), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(f, "not an ID!\n01M84DQ4")
	f.Close()

	second := newCallJournal(dir)
	defer second.close()
	for id, want := range map[string]bool{
		"01M84DQ28HB4S9TYS0GNBPXZ0P": true,
		"01M84DQ31HPC0QJ4Z6C7WX7E4M": true,
		"01M84DQ5ZZZZZZZZZZZZZZZZZZ": false,
	} {
		if before, err := second.start(id); err != nil || before != want {
			t.Errorf("second process starting %s: before=%v (want %v), %v", id, before, want, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, journalFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("journal file: %v, %v", fi, err)
	}
}

// A call delivered again within the same process, after the results kept
// in memory forgot it, is refused too.
func TestCallJournalSameProcess(t *testing.T) {
	j := newCallJournal(t.TempDir())
	defer j.close()
	for i, want := range []bool{false, true} {
		if before, err := j.start("01M84DQ28HB4S9TYS0GNBPXZ0P"); err != nil || before != want {
			t.Fatalf("start %d: before=%v (want %v), %v", i, before, want, err)
		}
	}
}

// A torn last line (a crash, a full disk) does not swallow the next ID,
// and a failed write leaves the journal able to record the next call.
func TestCallJournalTornLines(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, journalFile)
	if err := os.WriteFile(path, []byte("01M84DQ28HB4S9TYS0GNBPXZ0P\n01M84DQ2"), 0o600); err != nil {
		t.Fatal(err)
	}
	j := newCallJournal(dir)
	if _, err := j.start("01M84DQ31HPC0QJ4Z6C7WX7E4M"); err != nil {
		t.Fatal(err)
	}
	// A write that fails: the file handle cannot write.
	ro, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	j.f = ro
	if _, err := j.start("01M84DQ5ZZZZZZZZZZZZZZZZZZ"); err == nil {
		t.Fatal("a failed write was not reported")
	}
	if _, err := j.start("01M84DQ6ZZZZZZZZZZZZZZZZZZ"); err != nil {
		t.Fatalf("the write after a failed one: %v", err)
	}
	j.close()

	later := newCallJournal(dir)
	defer later.close()
	for id, want := range map[string]bool{
		"01M84DQ28HB4S9TYS0GNBPXZ0P": true,
		"01M84DQ31HPC0QJ4Z6C7WX7E4M": true,
		"01M84DQ5ZZZZZZZZZZZZZZZZZZ": false, // its call was not run
		"01M84DQ6ZZZZZZZZZZZZZZZZZZ": true,
	} {
		if before, err := later.start(id); err != nil || before != want {
			t.Errorf("after a restart, %s: before=%v (want %v), %v", id, before, want, err)
		}
	}
}

// A journal that grew long over many short runs is rewritten by the next
// one, not only after one run starts thousands of calls.
func TestCallJournalCompactsAcrossProcesses(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	for i := range 2*maxRememberedCalls + 5 {
		fmt.Fprintf(&b, "old-%05d\n", i)
	}
	if err := os.WriteFile(filepath.Join(dir, journalFile), []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	j := newCallJournal(dir)
	defer j.close()
	if _, err := j.start("new-call"); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, journalFile))
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(string(data), "\n"); lines != maxRememberedCalls || !strings.HasSuffix(string(data), "new-call\n") {
		t.Fatalf("journal of %d lines ending %q after the rewrite", lines, data[max(0, len(data)-20):])
	}
}

// The journal stays bounded: past twice the remembered number of lines it
// is rewritten with the newest, and a later process still knows those.
func TestCallJournalCompacts(t *testing.T) {
	dir := t.TempDir()
	j := newCallJournal(dir)
	defer j.close()
	n := 2*maxRememberedCalls + 10
	for i := range n {
		if _, err := j.start(fmt.Sprintf("call-%05d", i)); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, journalFile))
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(string(b), "\n"); lines > 2*maxRememberedCalls || lines < maxRememberedCalls {
		t.Fatalf("journal has %d lines after %d calls", lines, n)
	}
	later := newCallJournal(dir)
	defer later.close()
	if before, _ := later.start(fmt.Sprintf("call-%05d", n-1)); !before {
		t.Error("the newest call is forgotten")
	}
	if before, _ := later.start(fmt.Sprintf("call-%05d", n-maxRememberedCalls)); !before {
		t.Error("a call within the remembered number is forgotten")
	}
	if before, _ := later.start("call-00000"); before {
		t.Error("the oldest call is still remembered past the bound")
	}
}

// A journal that cannot be written refuses to let the call run.
func TestCallJournalUnwritable(t *testing.T) {
	dir := t.TempDir()
	// The journal's place is taken by a directory.
	if err := os.Mkdir(filepath.Join(dir, journalFile), 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := newCallJournal(dir).start("01M84DQ28HB4S9TYS0GNBPXZ0P")
	if err == nil || !strings.Contains(err.Error(), "journal") && !strings.Contains(err.Error(), "recording the call") {
		t.Fatalf("start with an unwritable journal: %v", err)
	}
	if _, err := newCallJournal(t.TempDir()).start("has spaces\nand a newline"); err == nil {
		t.Fatal("an ID that would break the journal's lines was accepted")
	}
}

func FuzzParseJournal(f *testing.F) {
	f.Add([]byte("01M84DQ28HB4S9TYS0GNBPXZ0P\n01M84DQ31HPC0QJ4Z6C7WX7E4M\n"), 4)
	f.Add([]byte("\n\n  x \r\n\xff\xfe\n01M84DQ4"), 1)
	f.Fuzz(func(t *testing.T, data []byte, max int) {
		if max < 1 || max > 1000 {
			return
		}
		ids := parseJournal(data, max)
		if len(ids) > max {
			t.Fatalf("%d IDs, bound %d", len(ids), max)
		}
		lines := strings.Split(string(data), "\n")
		for _, id := range ids {
			if !plausibleRequestID(id) || !slices.ContainsFunc(lines, func(l string) bool { return strings.TrimSpace(l) == id }) {
				t.Fatalf("ID %q is not a line of the input", id)
			}
		}
	})
}

// FuzzReadPending feeds the pending request file: it never panics, and
// what it accepts has what resuming needs.
func FuzzReadPending(f *testing.F) {
	f.Add([]byte(`{"request_id":"r","address":"127.0.0.1:1","server_chain":["AAE="]}`))
	f.Add([]byte(`{"request_id":"r"}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, PendingFile), b, 0o600); err != nil {
			t.Fatal(err)
		}
		p, err := ReadPending(dir)
		if err == nil && (p.RequestID == "" || p.Address == "" || len(p.ServerChain) == 0) {
			t.Fatalf("accepted %q as %+v", b, p)
		}
	})
}

// queuedStart is what enqueue returned, for await.
type queuedStart struct {
	b      *journalBatch
	role   journalRole
	before bool
	err    error
}

// The IDs queued before the writer takes its batch are written together,
// in one write, and each start that waited for it finds its ID recorded;
// a later process knows every one of them.
func TestCallJournalGroupCommit(t *testing.T) {
	dir := t.TempDir()
	j := newCallJournal(dir)
	defer j.close()
	const n = 20
	var q []queuedStart
	for i := range n {
		b, role, before, err := j.enqueue(fmt.Sprintf("call-%05d", i))
		if want := map[bool]journalRole{true: writer, false: waiter}[i == 0]; b == nil || role != want || err != nil {
			t.Fatalf("queueing call %d: %v, role %v (want %v), %v", i, b, role, want, err)
		}
		q = append(q, queuedStart{b, role, before, err})
	}
	var wg sync.WaitGroup
	for i, e := range q {
		wg.Go(func() {
			if before, err := j.await(e.b, e.role, e.before, e.err); before || err != nil {
				t.Errorf("call %d: before=%v, %v", i, before, err)
			}
		})
	}
	wg.Wait()
	if j.writes != 1 {
		t.Errorf("%d calls queued together took %d writes, want 1", n, j.writes)
	}
	later := newCallJournal(dir)
	defer later.close()
	for i := range n {
		if before, err := later.start(fmt.Sprintf("call-%05d", i)); err != nil || !before {
			t.Errorf("a later process starting call %d: before=%v, %v", i, before, err)
		}
	}
}

// Starts from many goroutines at once return only once their ID is in the
// file; none is lost, and a call delivered again while its first start is
// being written is started once.
func TestCallJournalConcurrentStarts(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, journalFile)
	j := newCallJournal(dir)
	defer j.close()
	const workers, each = 16, 40
	var fresh atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				// Two workers share each ID: one of them starts it.
				id := fmt.Sprintf("call-%02d-%03d", w/2, i)
				before, err := j.start(id)
				if err != nil {
					t.Errorf("starting %s: %v", id, err)
					return
				}
				if !before {
					fresh.Add(1)
				}
				data, err := os.ReadFile(path)
				if err != nil {
					t.Error(err)
					return
				}
				if !slices.Contains(strings.Split(string(data), "\n"), id) {
					t.Errorf("start of %s returned before its ID was written", id)
					return
				}
			}
		})
	}
	wg.Wait()
	if got, want := fresh.Load(), int64(workers/2*each); got != want {
		t.Errorf("%d starts reported new, want %d: an ID was started twice or not at all", got, want)
	}
	if j.writes > workers*each/2 {
		t.Errorf("%d writes for %d IDs", j.writes, workers*each/2)
	}
	later := newCallJournal(dir)
	defer later.close()
	for w := range workers / 2 {
		for i := range each {
			if before, _ := later.start(fmt.Sprintf("call-%02d-%03d", w, i)); !before {
				t.Fatalf("call-%02d-%03d is lost", w, i)
			}
		}
	}
}

// A write that fails fails every call of its batch, so none of them runs,
// and none is remembered as started: the next write records them afresh.
func TestCallJournalGroupCommitFails(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, journalFile)
	j := newCallJournal(dir)
	defer j.close()
	if _, err := j.start("call-first"); err != nil {
		t.Fatal(err)
	}
	ro, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	j.f.Close()
	j.f = ro
	var q []queuedStart
	for i := range 5 {
		b, role, before, err := j.enqueue(fmt.Sprintf("call-%05d", i))
		if b == nil || err != nil {
			t.Fatal(b, err)
		}
		q = append(q, queuedStart{b, role, before, err})
	}
	var wg sync.WaitGroup
	for i, e := range q {
		wg.Go(func() {
			if _, err := j.await(e.b, e.role, e.before, e.err); err == nil {
				t.Errorf("call %d was acknowledged though its write failed", i)
			}
		})
	}
	wg.Wait()
	for i := range 5 {
		if before, err := j.start(fmt.Sprintf("call-%05d", i)); err != nil || before {
			t.Errorf("starting call %d after the failed write: before=%v, %v", i, before, err)
		}
	}
	later := newCallJournal(dir)
	defer later.close()
	for _, id := range []string{"call-first", "call-00000", "call-00004"} {
		if before, _ := later.start(id); !before {
			t.Errorf("%s is lost", id)
		}
	}
}
