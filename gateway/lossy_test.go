package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/palyra/palyra-go/gateway"
	"github.com/palyra/palyra-go/internal/testnetns"
	"github.com/palyra/palyra-go/internal/testrelay"
	"github.com/palyra/palyra-go/node"
	"github.com/palyra/palyra-go/node/capability"
	adminv1 "github.com/palyra/palyra-go/proto/admin/v1"
)

// runCounter is a capability that counts how often each request ran.
type runCounter struct {
	mu   sync.Mutex
	runs map[string]int
}

func (c *runCounter) capability() capability.Capability {
	return capability.Capability{
		Spec: capability.Spec{
			Name:           "test.count",
			Description:    "counts its runs by request ID",
			Schema:         json.RawMessage(`{"type":"object"}`),
			Privacy:        capability.PrivacyLow,
			DefaultEnabled: true,
			DefaultConsent: capability.ConsentAllow,
		},
		Run: func(_ context.Context, call capability.Call) (json.RawMessage, error) {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.runs[call.RequestID]++
			return json.RawMessage(fmt.Sprintf(`{"run":%d}`, c.runs[call.RequestID])), nil
		},
	}
}

// Over a path that loses 5% of the packets each way and adds 100 ms each
// way (the kernel drops; a relay delays), 200 calls all complete or fail
// with a message that says why, and none runs twice.
func TestLossyDelayedPath(t *testing.T) {
	if !testnetns.Enter(t) {
		return
	}
	tcp, udp := testrelay.ListenPair(t)
	relay := testrelay.Start(t, tcp.Addr().String(), 100*time.Millisecond)
	rg := startGateway(t, t.TempDir(), tcp.Addr().String(), nil, func(c *gateway.Config) {
		c.TCPListener, c.PacketConn, c.Advertise = tcp, udp, []string{relay}
	})
	counter := &runCounter{runs: map[string]int{}}
	a := pairedAgent(t, rg, "far away", []capability.Capability{counter.capability()}, 0)
	id := a.Status().DeviceID
	if gws := a.Status().Gateways; len(gws) != 1 || gws[0] != relay {
		t.Fatalf("the node knows the gateway at %v, not only through the relay at %s", gws, relay)
	}
	testnetns.DropShare(t, tcp.Addr().(*net.TCPAddr).Port, 5)
	stop := runAgent(a)
	defer stop()
	waitFor(t, a, time.Minute, "connected over the lossy path", func(s node.Status) bool { return s.State == node.StateConnected })

	const calls, workers = 200, 10
	results := make(chan *adminv1.InvokeResponse, calls)
	jobs := make(chan int, calls)
	for i := range calls {
		jobs <- i
	}
	close(jobs)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range jobs {
				resp, err := rg.admin.Invoke(t.Context(), &adminv1.InvokeRequest{
					DeviceId: id, Capability: "test.count", ArgsJson: []byte(`{}`), TimeoutMs: 30_000,
				})
				if err != nil {
					resp = &adminv1.InvokeResponse{ErrorCode: "rpc", ErrorMessage: err.Error()}
				}
				results <- resp
			}
		})
	}
	start := time.Now()
	wg.Wait()
	took := time.Since(start)
	close(results)
	var succeeded []string
	failed := map[string]int{}
	for resp := range results {
		switch {
		case resp.Ok:
			succeeded = append(succeeded, resp.RequestId)
		case resp.ErrorCode == "" || resp.ErrorMessage == "":
			t.Errorf("call %s failed without saying why: %+v", resp.RequestId, resp)
		default:
			failed[resp.ErrorCode]++
			t.Logf("call %s failed: %s: %s", resp.RequestId, resp.ErrorCode, resp.ErrorMessage)
		}
	}
	counter.mu.Lock()
	defer counter.mu.Unlock()
	for requestID, n := range counter.runs {
		if n > 1 {
			t.Errorf("request %s ran %d times", requestID, n)
		}
	}
	for _, requestID := range succeeded {
		if counter.runs[requestID] != 1 {
			t.Errorf("call %s succeeded, but the node ran it %d times", requestID, counter.runs[requestID])
		}
	}
	if len(succeeded) == 0 {
		t.Error("no call succeeded over the lossy path")
	}
	t.Logf("over 5%% loss and 100 ms each way: %d of %d calls succeeded in %v, failures by code %v", len(succeeded), calls, took.Round(time.Millisecond), failed)
}
