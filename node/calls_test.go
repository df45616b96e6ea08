package node

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/palyra/palyra-go/identity/secretstore"
	"github.com/palyra/palyra-go/internal/testwait"
	"github.com/palyra/palyra-go/node/capability"
	"github.com/palyra/palyra-go/node/carrier"
	"github.com/palyra/palyra-go/node/netwatch"
	nodev1 "github.com/palyra/palyra-go/proto/node/v1"
)

// blockingAgent is an agent sharing test.block, which runs until its
// context ends and then reports why on ended.
func blockingAgent(t *testing.T) (a *Agent, started <-chan struct{}, ended <-chan error) {
	t.Helper()
	dir := t.TempDir()
	secrets, err := secretstore.NewFile(filepath.Join(dir, "secrets"))
	if err != nil {
		t.Fatal(err)
	}
	start, end := make(chan struct{}, 8), make(chan error, 8)
	a, err = New(Config{
		ConfigDir: dir, Secrets: secrets, Name: "calls",
		NetworkEvents: func(context.Context) <-chan netwatch.Event { return nil },
		Capabilities: []capability.Capability{{
			Spec: capability.Spec{
				Name: "test.block", Description: "runs until its context ends",
				Schema:  json.RawMessage(`{"type":"object"}`),
				Privacy: capability.PrivacyLow, DefaultEnabled: true, DefaultConsent: capability.ConsentAllow,
			},
			Run: func(ctx context.Context, _ capability.Call) (json.RawMessage, error) {
				start <- struct{}{}
				<-ctx.Done()
				end <- context.Cause(ctx)
				return nil, ctx.Err()
			},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return a, start, end
}

// A call's context follows the agent's Run and the gateway's cancel, not
// the session: when the session ends the call goes on (and its delivery
// is answered at once), and it ends when the agent stops, with the stop's
// cause.
func TestCallLifetimes(t *testing.T) {
	a, started, ended := blockingAgent(t)
	errStop := errors.New("agent stopping")
	running, stop := context.WithCancelCause(context.Background())
	a.running = running

	session, endSession := context.WithCancelCause(context.Background())
	results := make(chan *nodev1.Result, 1)
	go func() {
		results <- a.handleInvoke(session, &nodev1.Invoke{RequestId: "01M84DQ28HB4S9TYS0GNBPXZ0P", Capability: "test.block", ArgsJson: []byte(`{}`)}, nil)
	}()
	testwait.Recv(t, started, 10*time.Second, "the call to start")
	endSession(carrier.ErrSessionEnded)
	if res := testwait.Recv(t, results, 10*time.Second, "the delivery's answer once the session ended"); res.GetErrorCode() != string(capability.CodeCanceled) {
		t.Fatalf("delivery answered %v when its session ended", res)
	}
	testwait.None(t, ended, "end of the call with its session")
	stop(errStop)
	if cause := testwait.Recv(t, ended, 10*time.Second, "the call to end with the agent"); !errors.Is(cause, errStop) {
		t.Fatalf("the call ended with %v, want the agent's stop", cause)
	}

	// A gateway's cancel ends the call, and the delivery waits for it.
	a.running = context.Background()
	call, cancel := context.WithCancelCause(context.Background())
	go func() {
		results <- a.handleInvoke(call, &nodev1.Invoke{RequestId: "01M84DQ31HPC0QJ4Z6C7WX7E4M", Capability: "test.block", ArgsJson: []byte(`{}`)}, nil)
	}()
	testwait.Recv(t, started, 10*time.Second, "the second call to start")
	errCancel := errors.New("caller gave up")
	cancel(errCancel)
	if cause := testwait.Recv(t, ended, 10*time.Second, "the call to end with its cancel"); !errors.Is(cause, errCancel) {
		t.Fatalf("the call ended with %v, want the cancel's cause", cause)
	}
	if res := testwait.Recv(t, results, 10*time.Second, "the cancelled call's result"); res.GetOk() {
		t.Fatalf("a cancelled call answered %v", res)
	}
}
