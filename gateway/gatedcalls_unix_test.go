//go:build unix

package gateway_test

// Calls of a shell script that waits on a named pipe: they need /bin/sh,
// mkfifo and signals, so they run where those exist.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/palyra/palyra-go/gateway"
	"github.com/palyra/palyra-go/internal/testaddr"
	"github.com/palyra/palyra-go/node"
	adminv1 "github.com/palyra/palyra-go/proto/admin/v1"
)

// TestCancelDeliveredCall: a call cancelled while its node runs it is
// stopped there (its command is killed, having done what it did), keeps
// the gateway's answer rather than the node's, and is not delivered again.
func TestCancelDeliveredCall(t *testing.T) {
	t.Parallel()
	rg := startGateway(t, t.TempDir(), "127.0.0.1:0", nil)
	g := rg.g
	a := newAgent(t, "running")
	call := queueGatedCall(t, rg, a, `echo $$ > "$1.pid"; echo start >> "$1"; read line < "$2"; echo run >> "$1"`)
	stop := runAgent(a)
	defer func() { stop() }()
	waitForFile(t, call.marks, "start\n")

	was, c, err := g.CancelCall(t.Context(), call.requestID)
	if err != nil {
		t.Fatal(err)
	}
	if was != gateway.CallDelivered || c.State != gateway.CallCancelled || c.Attempts != 1 {
		t.Fatalf("cancelled %s: %+v", was, c)
	}
	// The node kills the command (its process ends; nobody writes its
	// pipe, which would let it go on).
	b, err := os.ReadFile(call.marks + ".pid")
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
		if time.Now().After(deadline) {
			t.Fatalf("the node did not stop the cancelled command (pid %d)", pid)
		}
		<-tick.C
	}
	if b, _ := os.ReadFile(call.marks); string(b) != "start\n" {
		t.Fatalf("the command went on after the cancel: %q", b)
	}

	// A reconnect delivers nothing again; a later call runs.
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	waitOnline(t, rg, call.device, false)
	stop = runAgent(a)
	after, _ := queueFor(t, rg, call.device, "shell.exec", markCall(call.marks, "after"))
	if c, err := g.GetCall(t.Context(), after, 20*time.Second); err != nil || c.State != gateway.CallDone {
		t.Fatalf("a call after the cancel: %+v, %v", c, err)
	}
	if b, _ := os.ReadFile(call.marks); string(b) != "start\nafter\n" {
		t.Fatalf("marks %q, want the cancelled command's start and the later call", b)
	}
	c, err = g.GetCall(t.Context(), call.requestID, 0)
	if err != nil || c.State != gateway.CallCancelled || c.Attempts != 1 || c.Result.ErrorMessage != "the call was cancelled by an admin" {
		t.Fatalf("the cancelled call at the end: %+v (%+v), %v", c, c.Result, err)
	}
}

// TestCallOutlivesSession: a call running when its session drops (here:
// the gateway restarts) goes on; the restarted gateway delivers it again,
// gets the kept result, and the command has run once.
func TestCallOutlivesSession(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	addr := testaddr.Restartable(t)
	rg := startGateway(t, dataDir, addr, nil)
	a := newAgent(t, "steady")
	// The call starts, then waits for the test to let it finish.
	call := queueGatedCall(t, rg, a, `echo start >> "$1"; read line < "$2"; echo run >> "$1"`)
	id, requestID, marks, gate := call.device, call.requestID, call.marks, call.gate
	stop := runAgent(a)
	defer stop()
	waitForFile(t, marks, "start\n")

	rg.stop()
	waitState(t, a, node.StateOffline)
	rg = startGateway(t, dataDir, addr, nil)
	done := watchInvocation(t, rg, id, requestID)
	// Let the command finish only now, with the node between sessions or
	// already on the new one.
	// Opening the pipe without blocking fails when nobody reads it: the
	// command was stopped with the session.
	w, err := os.OpenFile(gate, os.O_WRONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatalf("the command did not outlive its session: %v", err)
	}
	if _, err := w.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	w.Close()
	select {
	case e := <-done:
		if e.Message != "ok" {
			t.Fatalf("redelivered call: %s", e.Message)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the restarted gateway never got the call's result")
	}
	b, err := os.ReadFile(marks)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "start\nrun\n" {
		t.Fatalf("the command ran as %q, want once", b)
	}
}

// TestCallNotRunAgainAfterNodeRestart: a call the node started, then quit
// (or crashed) without answering, is refused when the gateway delivers it
// to the node's next process, rather than run a second time.
func TestCallNotRunAgainAfterNodeRestart(t *testing.T) {
	t.Parallel()
	dataDir, nodeDir := t.TempDir(), t.TempDir()
	addr := testaddr.Restartable(t)
	rg := startGateway(t, dataDir, addr, nil)
	a := agentIn(t, nodeDir, "restarting")
	// The command marks its start and then waits on a pipe nobody writes.
	call := queueGatedCall(t, rg, a, `echo start >> "$1"; read line < "$2"`)
	id, requestID, marks := call.device, call.requestID, call.marks
	stop := runAgent(a)
	waitForFile(t, marks, "start\n")

	// The gateway goes away, then the node process ends with the call
	// unanswered: the gateway still has it as delivered.
	rg.stop()
	waitState(t, a, node.StateOffline)
	if err := stop(); err != nil {
		t.Fatalf("stopping the first node process: %v", err)
	}
	rg = startGateway(t, dataDir, addr, nil)
	done := watchInvocation(t, rg, id, requestID)
	again := agentIn(t, nodeDir, "restarting")
	stopAgain := runAgent(again)
	defer stopAgain()
	select {
	case e := <-done:
		if !strings.Contains(e.Message, "interrupted") {
			t.Fatalf("redelivered call after the node restarted: %s", e.Message)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the redelivered call got no answer")
	}
	if b, err := os.ReadFile(marks); err != nil || string(b) != "start\n" {
		t.Fatalf("the command ran as %q (%v), want once", b, err)
	}
}

// gatedCall is a queued shell.exec call of a script that is given a file
// to mark its progress in ($1) and a named pipe to wait on ($2).
type gatedCall struct {
	device, requestID string
	marks, gate       string
}

// queueGatedCall pairs a with rg, shares /bin/sh from it with consent
// "allow", and queues the call of script for it; the call reaches the node
// once it runs.
func queueGatedCall(t *testing.T, rg *runningGateway, a *node.Agent, script string) gatedCall {
	t.Helper()
	if _, err := a.Pair(t.Context(), node.PairOptions{Gateway: rg.g.Addresses()[0], PIN: mint(t, rg, true).Pin}); err != nil {
		t.Fatal(err)
	}
	call := gatedCall{device: a.Status().DeviceID, marks: filepath.Join(t.TempDir(), "marks"), gate: filepath.Join(t.TempDir(), "gate")}
	shareShell(t, a)
	if err := syscall.Mkfifo(call.gate, 0o600); err != nil {
		t.Fatal(err)
	}
	queuedEvent := watchQueued(t, rg, call.device)
	go func() {
		_, _ = rg.admin.Invoke(context.Background(), &adminv1.InvokeRequest{
			DeviceId:   call.device,
			Capability: "shell.exec",
			ArgsJson:   []byte(fmt.Sprintf(`{"command":"/bin/sh","args":["-c",%q,"sh",%q,%q],"timeout_ms":60000}`, script, call.marks, call.gate)),
			TimeoutMs:  60_000,
			QueueTtlMs: 120_000,
		})
	}()
	select {
	case e := <-queuedEvent:
		call.requestID = e.RequestId
	case <-time.After(20 * time.Second):
		t.Fatal("call never queued")
	}
	return call
}

// waitForFile polls until path holds want, bounded by a deadline.
func waitForFile(t *testing.T, path, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(path); err == nil && string(b) == want {
			return
		}
		<-tick.C
	}
	t.Fatalf("%s never held %q", path, want)
}

// watchInvocation returns a channel that gets the outcome event of the
// call requestID (its message is "ok" or the error).
func watchInvocation(t *testing.T, rg *runningGateway, id, requestID string) <-chan *adminv1.Event {
	return watchEvent(t, rg, id, func(e *adminv1.Event) bool {
		return e.Kind == "invocation" && e.RequestId == requestID && !strings.HasPrefix(e.Message, "queued")
	})
}
