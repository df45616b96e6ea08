package grpccarrier

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/palyra/palyra-go/internal/callcode"
	"github.com/palyra/palyra-go/internal/wire"
	nodev1 "github.com/palyra/palyra-go/proto/node/v1"
)

// errCanceledByGateway is the cause of a call's context when the gateway
// sent Cancel.
var errCanceledByGateway = errors.New("the gateway canceled the call")

// call is a running call, for Cancel to find.
type call struct {
	cancel context.CancelCauseFunc
}

// startCall runs inv on its own goroutine. Running a request ID at most
// once is the node agent's business (it remembers recent IDs); here a second
// Invoke with the ID of a running call, which the gateway sends only after
// it gave up on the first, takes over the ID for Cancel.
func (c *Conn) startCall(ctx context.Context, calls *sync.WaitGroup, inv *nodev1.Invoke) {
	id := inv.GetRequestId()
	callCtx, cancel := context.WithCancelCause(ctx)
	cl := &call{cancel: cancel}
	c.callsMu.Lock()
	if _, dup := c.calls[id]; dup {
		c.s.Log().Info("the gateway sent a call that is still running", "request_id", id)
	}
	c.calls[id] = cl
	c.callsMu.Unlock()
	calls.Go(func() {
		defer cancel(nil)
		c.runCall(callCtx, inv, func() {
			c.callsMu.Lock()
			if c.calls[id] == cl {
				delete(c.calls, id)
			}
			c.callsMu.Unlock()
		})
	})
}

// cancelCall cancels the call cn names, if it is running.
func (c *Conn) cancelCall(cn *nodev1.Cancel) {
	c.callsMu.Lock()
	cl := c.calls[cn.GetRequestId()]
	c.callsMu.Unlock()
	if cl != nil {
		cl.cancel(fmt.Errorf("%w: %w (%s)", context.Canceled, errCanceledByGateway, cn.GetReason()))
	}
}

// runCall runs one call until it finishes, its deadline passes or it is
// canceled, calls finished, and submits the result unless nobody waits for
// it any more. (finished comes first: once the gateway has the result it
// may send the same request ID again.)
func (c *Conn) runCall(callCtx context.Context, inv *nodev1.Invoke, finished func()) {
	progress := func(msg string) {
		p := &nodev1.Frame{Body: &nodev1.Frame_Progress{Progress: &nodev1.Progress{RequestId: inv.GetRequestId(), Message: msg}}}
		if err := c.send(p); err != nil {
			c.s.Log().Debug("could not send progress", "request_id", inv.GetRequestId(), "err", err)
		}
	}
	res, _ := c.s.RunCall(callCtx, inv, progress)
	finished()
	res.DeviceId = c.s.Welcome().GetDeviceId()
	if callCtx.Err() != nil {
		// The gateway canceled the call or the session is ending: nobody
		// waits for the result.
		return
	}
	if proto.Size(res) > wire.MaxFrameSize {
		res = &nodev1.Result{
			RequestId:    inv.GetRequestId(),
			DeviceId:     c.s.Welcome().GetDeviceId(),
			ErrorCode:    callcode.OutputTooLarge,
			ErrorMessage: fmt.Sprintf("the result is larger than %d bytes", wire.MaxFrameSize),
		}
	}
	sctx, cancel := context.WithTimeout(callCtx, submitTimeout)
	defer cancel()
	if _, err := c.client.SubmitCapabilityResult(sctx, res); err != nil {
		c.s.Log().Info("could not submit a call's result", "request_id", inv.GetRequestId(), "err", err)
	}
}
