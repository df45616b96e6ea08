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
// the session: when the session ends the call goes on (and the session's
// end does not wait for it), and it ends when the agent stops, with the
// stop's cause. The session is a carrier's, configured as Run configures
// it, without its wire.
func TestCallLifetimes(t *testing.T) {
	a, started, ended := blockingAgent(t)
	errStop := errors.New("agent stopping")
	running, stop := context.WithCancelCause(context.Background())
	session := func() *carrier.Session {
		cfg := carrier.Config{Now: time.Now, Logger: a.cfg.Logger, Invoke: a.handleInvoke, Calls: running}
		return carrier.NewSession(cfg, &nodev1.Welcome{}, func(*nodev1.Frame) error { return nil })
	}
	answers := make(chan bool, 1)
	run := func(call *carrier.Call) {
		go func() {
			defer call.End()
			_, answer := call.Run(nil)
			answers <- answer
		}()
	}

	s := session()
	run(s.StartCall(&nodev1.Invoke{RequestId: "01M84DQ28HB4S9TYS0GNBPXZ0P", Capability: "test.block", ArgsJson: []byte(`{}`)}))
	testwait.Recv(t, started, 10*time.Second, "the call to start")
	s.EndCalls(context.Background())
	waited := make(chan struct{})
	go func() {
		s.WaitCalls()
		close(waited)
	}()
	testwait.Recv(t, waited, 10*time.Second, "the session's end, not waiting for the call")
	testwait.None(t, ended, "end of the call with its session")
	stop(errStop)
	if cause := testwait.Recv(t, ended, 10*time.Second, "the call to end with the agent"); !errors.Is(cause, errStop) {
		t.Fatalf("the call ended with %v, want the agent's stop", cause)
	}
	if testwait.Recv(t, answers, 10*time.Second, "the call's end") {
		t.Fatal("a call that outlived its session is answered")
	}

	// A gateway's cancel ends the call, with its cause.
	running, stop = context.WithCancelCause(context.Background())
	defer stop(nil)
	s = session()
	call := s.StartCall(&nodev1.Invoke{RequestId: "01M84DQ31HPC0QJ4Z6C7WX7E4M", Capability: "test.block", ArgsJson: []byte(`{}`)})
	run(call)
	testwait.Recv(t, started, 10*time.Second, "the second call to start")
	errCancel := errors.New("caller gave up")
	call.Cancel(errCancel)
	if cause := testwait.Recv(t, ended, 10*time.Second, "the call to end with its cancel"); !errors.Is(cause, errCancel) {
		t.Fatalf("the call ended with %v, want the cancel's cause", cause)
	}
	if testwait.Recv(t, answers, 10*time.Second, "the cancelled call's end") {
		t.Fatal("a cancelled call is answered")
	}
}
