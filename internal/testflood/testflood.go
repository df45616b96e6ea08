// Package testflood floods a server from a child process, for the tests of
// its connection limits: idle TCP connections, idle HTTP/2 connections
// over TLS without a client certificate, and half-open QUIC handshakes.
// The child is the test binary run again (its TestMain calls Main first),
// so the flood's sockets, open files and memory are not the server's, as
// they would not be in an attack. Floods go to loopback addresses only and
// end by themselves: each is bounded in count and in time (Spec.Hold).
package testflood

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// specEnv carries a child's Spec, as JSON.
const specEnv = "PALYRA_TESTFLOOD"

// maxErrors bounds Report.Errors.
const maxErrors = 5

// Kind is what a flood sends.
type Kind string

// The floods.
const (
	// IdleTCP connects and sends nothing.
	IdleTCP Kind = "idle-tcp"
	// IdleHTTP2 completes a TLS handshake without a client certificate,
	// sends the HTTP/2 preface and nothing more: a pairing connection that
	// never starts pairing.
	IdleHTTP2 Kind = "idle-http2"
	// HalfOpenQUIC starts QUIC handshakes (quic-go's own Initial packets,
	// with a real ClientHello) and reads nothing back, so that none gets
	// past its first flight; the client retransmits its Initials as it
	// would on a lossy path.
	HalfOpenQUIC Kind = "half-open-quic"
)

// Spec says what a flood does.
type Spec struct {
	Kind Kind
	// Target is the server's HOST:PORT; Source the loopback address the
	// flood comes from.
	Target, Source string
	// Count is how many connections or handshakes the flood opens.
	Count int
	// Hold bounds the flood: its connections are kept (and its handshakes
	// retransmitted) at most this long, then closed.
	Hold time.Duration
}

// Report is what a flood saw.
type Report struct {
	// Opened counts the TCP connections established (or reset by the
	// server before the dial returned), or the QUIC handshakes started;
	// Failed the TCP dials that failed otherwise, and Errors says why (a
	// few of the distinct errors).
	Opened, Failed int
	Errors         []string
	// ClosedByServer counts the TCP connections the server closed within
	// Hold, StillOpen those it had not closed by then.
	ClosedByServer, StillOpen int
	// Longest is the longest a TCP connection stayed open before the
	// server closed it.
	Longest time.Duration
	// Took is how long opening them all took.
	Took time.Duration
}

// The child's lines on standard output.
const (
	openedLine = "testflood: opened"
	reportLine = "testflood: report "
)

// Flood is a flood running in a child process.
type Flood struct {
	spec   Spec
	opened chan struct{}
	report chan Report
	// stderr holds what the child said otherwise, for failures.
	stderr *bytes.Buffer
	cmd    *exec.Cmd
	waited chan struct{}
}

// Start runs spec in a child process. The child is killed at the end of
// the test if it is still running.
func Start(t testing.TB, spec Spec) *Flood {
	t.Helper()
	if spec.Count <= 0 || spec.Hold <= 0 || spec.Hold > 5*time.Minute {
		t.Fatalf("testflood: a flood needs a count and a hold of at most 5 minutes: %+v", spec)
	}
	b, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	f := &Flood{spec: spec, opened: make(chan struct{}), report: make(chan Report, 1), stderr: new(bytes.Buffer), waited: make(chan struct{})}
	f.cmd = exec.Command(os.Args[0], "-test.run=^$")
	f.cmd.Env = append(os.Environ(), specEnv+"="+string(b))
	f.cmd.Stderr = f.stderr
	out, err := f.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := f.cmd.Start(); err != nil {
		t.Fatalf("starting the flood's child process: %v", err)
	}
	go f.read(out)
	t.Cleanup(func() {
		select {
		case <-f.waited:
		default:
			_ = f.cmd.Process.Kill()
			<-f.waited
		}
	})
	return f
}

// read follows the child's output, then waits for its end.
func (f *Flood) read(out interface{ Read([]byte) (int, error) }) {
	defer close(f.waited)
	sc := bufio.NewScanner(out)
	var once sync.Once
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == openedLine:
			once.Do(func() { close(f.opened) })
		case strings.HasPrefix(line, reportLine):
			var r Report
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, reportLine)), &r); err == nil {
				f.report <- r
			}
		}
	}
	_ = f.cmd.Wait()
}

// Done is closed when the child has ended.
func (f *Flood) Done() <-chan struct{} { return f.waited }

// WaitOpened waits, bounded, until the child has opened everything.
func (f *Flood) WaitOpened(t testing.TB) {
	t.Helper()
	limit := f.spec.Hold + 30*time.Second
	timer := time.NewTimer(limit)
	defer timer.Stop()
	select {
	case <-f.opened:
	case <-f.waited:
		t.Fatalf("the flood %s ended before it opened its connections:\n%s", f.spec.Kind, f.stderr)
	case <-timer.C:
		t.Fatalf("the flood %s did not open its connections within %v", f.spec.Kind, limit)
	}
}

// Wait waits, bounded by the flood's Hold and a margin, for the child's
// report.
func (f *Flood) Wait(t testing.TB) Report {
	t.Helper()
	limit := f.spec.Hold + 30*time.Second
	timer := time.NewTimer(limit)
	defer timer.Stop()
	select {
	case r := <-f.report:
		return r
	case <-f.waited:
		// The report, if any, was sent before the child's end.
		select {
		case r := <-f.report:
			return r
		default:
		}
		t.Fatalf("the flood %s ended without a report:\n%s", f.spec.Kind, f.stderr)
	case <-timer.C:
		t.Fatalf("no report from the flood %s within %v", f.spec.Kind, limit)
	}
	return Report{}
}

// Main runs the flood of a child process and exits; in any other process
// it returns at once. A test binary's TestMain calls it first.
func Main() {
	raw, ok := os.LookupEnv(specEnv)
	if !ok {
		return
	}
	var spec Spec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		fmt.Fprintf(os.Stderr, "testflood: reading the spec: %v\n", err)
		os.Exit(2)
	}
	opened := func() { fmt.Println(openedLine) }
	var r Report
	var err error
	switch spec.Kind {
	case IdleTCP, IdleHTTP2:
		r, err = floodTCP(spec, opened)
	case HalfOpenQUIC:
		r, err = floodQUIC(spec, opened)
	default:
		err = fmt.Errorf("no flood of kind %q", spec.Kind)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "testflood: %v\n", err)
		os.Exit(2)
	}
	b, _ := json.Marshal(r)
	fmt.Println(reportLine + string(b))
	os.Exit(0)
}
