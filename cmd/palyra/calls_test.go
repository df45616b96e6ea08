package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/palyra/palyra-go/internal/syncbuf"
	"github.com/palyra/palyra-go/internal/testaddr"
)

// callOut is what `calls get --json` and `calls list --json` print.
type callOut struct {
	RequestID  string          `json:"request_id"`
	DeviceID   string          `json:"device_id"`
	Capability string          `json:"capability"`
	State      string          `json:"state"`
	Deliveries int             `json:"deliveries"`
	OK         *bool           `json:"ok"`
	Output     json.RawMessage `json:"output"`
	Error      *struct {
		Code, Message string
	} `json:"error"`
}

// waitQueued polls `calls list` until a call of the device is queued that
// is not among known, and returns its request ID.
func waitQueued(t *testing.T, c *cli, id string, known ...string) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(deadline) {
		var calls []callOut
		c.mustJSON(&calls, "calls", "list", "--node", id, "--state", "queued", "--json")
		for _, call := range calls {
			if !strings.Contains(strings.Join(known, " "), call.RequestID) {
				return call.RequestID
			}
		}
		<-tick.C
	}
	t.Fatalf("no new call queued for %s", id)
	return ""
}

// TestCLIQueuedCallAfterItsCallerDied: the command that queued a call ends
// with its gateway; after the gateway restarts, `calls get` waits for the
// call, saying so, and prints its result; `calls list` finds it, `calls
// cancel` refuses what has ended and cancels what is queued.
func TestCLIQueuedCallAfterItsCallerDied(t *testing.T) {
	c := newCLI(t)
	addr, _, stopGateway := c.stoppable(nil, "listening on ", "gateway", "run", "--listen", testaddr.Restartable(t))
	nodeEnv := c.pairNode(addr)
	var devs []map[string]any
	c.mustJSON(&devs, "devices", "list", "--json")
	id := devs[0]["device_id"].(string)

	caller := make(chan int, 1)
	go func() {
		rc, _, _ := c.run(nil, "", "nodes", "invoke", id, "system.info", "--queue-ttl", "10m", "--json")
		caller <- rc
	}()
	requestID := waitQueued(t, c, id)
	stopGateway()
	select {
	case rc := <-caller:
		if rc == 0 {
			t.Fatal("the caller succeeded against a gateway that stopped")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the caller did not end with its gateway")
	}
	c.background(nil, "listening on ", "gateway", "run", "--listen", addr)

	var got callOut
	c.mustJSON(&got, "calls", "get", requestID, "--no-wait", "--json")
	if got.State != "queued" || got.OK != nil || got.Capability != "system.info" || got.DeviceID != id {
		t.Fatalf("calls get --no-wait of the queued call: %+v", got)
	}
	// A second call, which waits in vain and is then cancelled.
	go func() { c.run(nil, "", "nodes", "invoke", id, "system.info", "--queue-ttl", "10m") }()
	second := waitQueued(t, c, id, requestID)
	rc, _, errOut := c.run(nil, "", "calls", "get", second, "--wait", "100ms")
	if rc != 1 || !strings.Contains(errOut, "waiting for its result") || !strings.Contains(errOut, "call "+second+" is still queued") {
		t.Fatalf("calls get --wait 100ms of a queued call: exit %d: %s", rc, errOut)
	}
	c.wantLines("calls cancel "+second, "cancelled "+second+": it was still queued; node "+id+" will never run it")

	// Waiting for the first one, which the node's return delivers.
	var out, waitErr syncbuf.Buffer
	waited := make(chan int, 1)
	go func() {
		waited <- run(t.Context(), c.environment("", &out, &waitErr, nil), []string{"calls", "get", requestID, "--json"})
	}()
	waitForLine(t, &waitErr, "call "+requestID+" (system.info on "+id+") is queued; waiting for its result")
	c.background(nodeEnv, "connected to ", "node", "run")
	select {
	case rc := <-waited:
		if rc != 0 {
			t.Fatalf("calls get: exit %d: %s", rc, waitErr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("calls get never got the result")
	}
	if err := json.Unmarshal([]byte(out.String()), &got); err != nil {
		t.Fatalf("calls get --json: %v\n%s", err, out.String())
	}
	host, _ := os.Hostname()
	if got.State != "done" || got.OK == nil || !*got.OK || got.Error != nil || got.Deliveries != 1 ||
		!strings.Contains(string(got.Output), `"hostname": "`+host+`"`) && !strings.Contains(string(got.Output), `"hostname":"`+host+`"`) {
		t.Fatalf("the kept result: %+v %s", got, got.Output)
	}
	// For people: the output alone, as nodes invoke prints it.
	rc, text, errOut := c.run(nil, "", "calls", "get", requestID)
	if rc != 0 || !strings.Contains(text, `"hostname": "`+host+`"`) {
		t.Fatalf("calls get: exit %d: %s%s", rc, text, errOut)
	}

	var calls []callOut
	c.mustJSON(&calls, "calls", "list", "--node", id, "--json")
	if len(calls) != 2 || calls[0].RequestID != second || calls[0].State != "cancelled" || calls[1].State != "done" {
		t.Fatalf("calls list: %+v", calls)
	}
	c.mustJSON(&calls, "calls", "list", "--state", "done,failed", "--limit", "1", "--json")
	if len(calls) != 1 || calls[0].RequestID != requestID {
		t.Fatalf("calls list --state done,failed: %+v", calls)
	}
	c.wantLines("calls list --state failed", "no queued calls")
	c.wantLines("calls list", "REQUEST  DEVICE  CAPABILITY  STATE  DELIVERIES  CREATED", second+"  "+id+"  system.info  cancelled  0  ",
		requestID+"  "+id+"  system.info  done  1  ")

	for _, tc := range []struct {
		args []string
		want string
		rc   int
	}{
		{[]string{"calls", "cancel", requestID}, "call " + requestID + " has ended already (done at ", 1},
		{[]string{"calls", "get", "01KJVKTCGR0000000000000000"}, "no queued call 01KJVKTCGR0000000000000000 (only calls queued for an offline node are kept)", 1},
		{[]string{"calls", "get", "not-a-request"}, `request ID "not-a-request"`, 1},
		// A bad flag value is a usage error.
		{[]string{"calls", "list", "--state", "finished"}, `--state: no call state "finished"`, 2},
	} {
		if rc, _, errOut := c.run(nil, "", tc.args...); rc != tc.rc || !strings.Contains(errOut, tc.want) {
			t.Errorf("palyra %s: exit %d: %s, want %q", strings.Join(tc.args, " "), rc, errOut, tc.want)
		}
	}
}
