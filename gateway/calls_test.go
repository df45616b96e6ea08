package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/palyra/palyra-go/gateway"
	"github.com/palyra/palyra-go/internal/testaddr"
	"github.com/palyra/palyra-go/internal/testwait"
	"github.com/palyra/palyra-go/node"
	adminv1 "github.com/palyra/palyra-go/proto/admin/v1"
)

// queueFor invokes capability on the offline node id with a queue TTL, as
// a caller that waits, and returns the call's request ID once it is queued
// and a channel that gets what the caller was answered.
func queueFor(t *testing.T, rg *runningGateway, id, capability, args string) (string, <-chan *adminv1.InvokeResponse) {
	t.Helper()
	queued := watchQueued(t, rg, id)
	answered := make(chan *adminv1.InvokeResponse, 1)
	go func() {
		r, err := rg.admin.Invoke(context.Background(), &adminv1.InvokeRequest{
			DeviceId: id, Capability: capability, ArgsJson: []byte(args), TimeoutMs: 30_000, QueueTtlMs: 600_000,
		})
		if err != nil {
			r = &adminv1.InvokeResponse{ErrorCode: "rpc", ErrorMessage: err.Error()}
		}
		answered <- r
	}()
	return testwait.Recv(t, queued, 20*time.Second, "the call to be queued").RequestId, answered
}

// shellSharer pairs a node with rg that runs /bin/sh without asking.
func shellSharer(t *testing.T, rg *runningGateway, name string) *node.Agent {
	t.Helper()
	a := newAgent(t, name)
	if _, err := a.Pair(t.Context(), node.PairOptions{Gateway: rg.g.Addresses()[0], PIN: mint(t, rg, true).Pin}); err != nil {
		t.Fatal(err)
	}
	shareShell(t, a)
	return a
}

// shareShell makes a run /bin/sh without asking.
func shareShell(t *testing.T, a *node.Agent) {
	t.Helper()
	for _, c := range []node.SharingChange{
		{Action: "enable", Name: "shell.exec"},
		{Action: "consent", Name: "shell.exec", Value: "allow"},
		{Action: "allow-command", Value: "/bin/sh"},
	} {
		if err := a.ChangeSharing(c); err != nil {
			t.Fatal(err)
		}
	}
}

// markCall is shell.exec arguments that append word to the file marks.
func markCall(marks, word string) string {
	return fmt.Sprintf(`{"command":"/bin/sh","args":["-c","echo %s >> \"$1\"","sh",%q]}`, word, marks)
}

// TestQueuedCallOutlivesItsCaller: the caller of a queued call goes away
// with the gateway; the restarted gateway delivers the call, and GetCall
// returns its result, waiting for it; the listing finds it by node and
// state.
func TestQueuedCallOutlivesItsCaller(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	addr := testaddr.Restartable(t)
	rg := startGateway(t, dir, addr, nil)
	a := newAgent(t, "later")
	if _, err := a.Pair(t.Context(), node.PairOptions{Gateway: addr, PIN: mint(t, rg, true).Pin}); err != nil {
		t.Fatal(err)
	}
	other := newAgent(t, "other")
	if _, err := other.Pair(t.Context(), node.PairOptions{Gateway: addr, PIN: mint(t, rg, true).Pin}); err != nil {
		t.Fatal(err)
	}
	id, otherID := a.Status().DeviceID, other.Status().DeviceID
	requestID, answered := queueFor(t, rg, id, "system.info", "{}")
	otherRequest, _ := queueFor(t, rg, otherID, "system.info", "{}")

	rg.stop()
	if r := testwait.Recv(t, answered, 20*time.Second, "the caller's end"); r.GetErrorCode() != "rpc" {
		t.Fatalf("the caller got %v from a gateway that stopped", r)
	}
	rg = startGateway(t, dir, addr, nil)
	g := rg.g
	c, err := g.GetCall(t.Context(), strings.ToLower(requestID), 0)
	if err != nil {
		t.Fatal(err)
	}
	if c.RequestID != requestID || c.State != gateway.CallQueued || c.Result != nil || c.Capability != "system.info" ||
		c.DeviceID.String() != id || c.Caller != "gateway admin" || !c.ExpiresAt.After(c.CreatedAt) {
		t.Fatalf("the call after the restart: %+v", c)
	}

	stop := runAgent(a)
	defer stop()
	c, err = g.GetCall(t.Context(), requestID, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	if c.State != gateway.CallDone || c.Result == nil || !c.Result.OK || !strings.Contains(string(c.Result.Output), `"hostname":"`+host+`"`) ||
		c.Attempts != 1 || c.FinishedAt.IsZero() {
		t.Fatalf("the call's kept result: %+v (%+v)", c, c.Result)
	}

	for _, tc := range []struct {
		name string
		f    gateway.CallFilter
		want []string
	}{
		{"all", gateway.CallFilter{}, []string{otherRequest, requestID}},
		{"one node", gateway.CallFilter{DeviceID: id}, []string{requestID}},
		{"done", gateway.CallFilter{States: []gateway.CallState{gateway.CallDone}}, []string{requestID}},
		{"pending", gateway.CallFilter{States: []gateway.CallState{gateway.CallQueued, gateway.CallDelivered}}, []string{otherRequest}},
		{"failed", gateway.CallFilter{States: []gateway.CallState{gateway.CallFailed}}, nil},
		{"limit", gateway.CallFilter{Limit: 1}, []string{otherRequest}},
	} {
		calls, err := g.Calls(t.Context(), tc.f)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, c := range calls {
			got = append(got, c.RequestID)
		}
		if strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	if _, err := g.Calls(t.Context(), gateway.CallFilter{States: []gateway.CallState{"finished"}}); !errors.Is(err, gateway.ErrInvalidArgument) {
		t.Errorf("an unknown state: %v", err)
	}
	if _, err := g.Calls(t.Context(), gateway.CallFilter{Limit: 5000}); !errors.Is(err, gateway.ErrInvalidArgument) {
		t.Errorf("a limit over the bound: %v", err)
	}
}

// TestCancelQueuedCall: a call cancelled while queued never runs on its
// node (a later one does), its caller is told, and the refusals say what
// is wrong.
func TestCancelQueuedCall(t *testing.T) {
	t.Parallel()
	rg := startGateway(t, t.TempDir(), "127.0.0.1:0", nil)
	g := rg.g
	a := shellSharer(t, rg, "cancelled")
	id := a.Status().DeviceID
	marks := filepath.Join(t.TempDir(), "marks")
	cancelled, caller := queueFor(t, rg, id, "shell.exec", markCall(marks, "cancelled"))
	later, _ := queueFor(t, rg, id, "shell.exec", markCall(marks, "later"))

	was, c, err := g.CancelCall(t.Context(), cancelled)
	if err != nil {
		t.Fatal(err)
	}
	if was != gateway.CallQueued || c.State != gateway.CallCancelled || c.Result == nil || c.Result.ErrorCode != "canceled" {
		t.Fatalf("cancelled %s: %+v (%+v)", was, c, c.Result)
	}
	if r := testwait.Recv(t, caller, 20*time.Second, "the caller's answer"); r.GetOk() || r.GetErrorCode() != "canceled" ||
		r.GetErrorMessage() != "the call was cancelled by an admin" {
		t.Fatalf("the caller of the cancelled call got %v", r)
	}
	_, _, err = g.CancelCall(t.Context(), cancelled)
	if !errors.Is(err, gateway.ErrCallEnded) || !strings.Contains(err.Error(), "call "+cancelled+" has ended already (cancelled at ") {
		t.Fatalf("cancelling twice: %v", err)
	}
	unknown := "01KJVKTCGR0000000000000000"
	_, _, err = g.CancelCall(t.Context(), unknown)
	var nf *gateway.NotFoundError
	if !errors.As(err, &nf) || nf.What != "call" || err.Error() != "no queued call "+unknown+" (only calls queued for an offline node are kept)" {
		t.Fatalf("cancelling an unknown call: %v", err)
	}
	if _, err := g.GetCall(t.Context(), unknown, 0); !errors.Is(err, gateway.ErrNotFound) {
		t.Fatalf("getting an unknown call: %v", err)
	}
	if _, err := g.GetCall(t.Context(), "not-a-request", 0); !errors.Is(err, gateway.ErrInvalidArgument) {
		t.Fatalf("getting a malformed request ID: %v", err)
	}

	stop := runAgent(a)
	defer stop()
	c, err = g.GetCall(t.Context(), later, 20*time.Second)
	if err != nil || c.State != gateway.CallDone {
		t.Fatalf("the later call: %+v, %v", c, err)
	}
	// Calls are delivered oldest first, one at a time: had the cancelled
	// one run, it would have run before.
	if b, err := os.ReadFile(marks); err != nil || string(b) != "later\n" {
		t.Fatalf("the node ran %q (%v), want only the later call", b, err)
	}
	if c, err := g.GetCall(t.Context(), cancelled, 0); err != nil || c.State != gateway.CallCancelled || c.Attempts != 0 {
		t.Fatalf("the cancelled call afterwards: %+v, %v", c, err)
	}
}
