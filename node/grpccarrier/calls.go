package grpccarrier

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/palyra/palyra-go/internal/callcode"
	"github.com/palyra/palyra-go/internal/wire"
	"github.com/palyra/palyra-go/node/carrier"
	nodev1 "github.com/palyra/palyra-go/proto/node/v1"
)

// startCall runs inv on its own goroutine. Running a request ID at most
// once is the node agent's business (it remembers recent IDs); here a second
// Invoke with the ID of a running call, which the gateway sends only after
// it gave up on the first, takes over the ID for Cancel.
func (c *Conn) startCall(inv *nodev1.Invoke) {
	id := inv.GetRequestId()
	cl := c.s.StartCall(inv)
	c.callsMu.Lock()
	if _, dup := c.calls[id]; dup {
		c.s.Log().Info("the gateway sent a call that is still running", "request_id", id)
	}
	c.calls[id] = cl
	c.callsMu.Unlock()
	go func() {
		defer cl.End()
		c.runCall(cl, func() {
			c.callsMu.Lock()
			if c.calls[id] == cl {
				delete(c.calls, id)
			}
			c.callsMu.Unlock()
		})
	}()
}

// cancelCall cancels the call cn names, if it is running.
func (c *Conn) cancelCall(cn *nodev1.Cancel) {
	c.callsMu.Lock()
	cl := c.calls[cn.GetRequestId()]
	c.callsMu.Unlock()
	if cl != nil {
		cl.Cancel(fmt.Errorf("%w: %w (%s)", context.Canceled, carrier.ErrCanceledByGateway, cn.GetReason()))
	}
}

// runCall runs one call until it finishes, its deadline passes or it is
// canceled, calls finished, and submits the result unless nobody waits for
// it any more. (finished comes first: once the gateway has the result it
// may send the same request ID again.)
func (c *Conn) runCall(cl *carrier.Call, finished func()) {
	inv := cl.Invoke()
	progress := func(msg string) {
		p := &nodev1.Frame{Body: &nodev1.Frame_Progress{Progress: &nodev1.Progress{RequestId: inv.GetRequestId(), Message: msg}}}
		if err := c.send(p); err != nil {
			c.s.Log().Debug("could not send progress", "request_id", inv.GetRequestId(), "err", err)
		}
	}
	res, answer := cl.Run(progress)
	finished()
	if !answer {
		// The gateway canceled the call or the session has ended: nobody
		// waits for the result.
		return
	}
	res.DeviceId = c.s.Welcome().GetDeviceId()
	if proto.Size(res) > wire.MaxFrameSize {
		res = &nodev1.Result{
			RequestId:    inv.GetRequestId(),
			DeviceId:     c.s.Welcome().GetDeviceId(),
			ErrorCode:    callcode.OutputTooLarge,
			ErrorMessage: fmt.Sprintf("the result is larger than %d bytes", wire.MaxFrameSize),
		}
	}
	sctx, cancel := context.WithTimeout(cl.Context(), submitTimeout)
	defer cancel()
	if _, err := c.client.SubmitCapabilityResult(sctx, res); err != nil {
		c.s.Log().Info("could not submit a call's result", "request_id", inv.GetRequestId(), "err", err)
	}
}
