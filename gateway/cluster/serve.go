package cluster

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/internal/wire"
	nodev1 "github.com/palyra/palyra-go/proto/node/v1"
	peerv1 "github.com/palyra/palyra-go/proto/peer/v1"
)

// callReadTimeout bounds reading a call's first frame.
const callReadTimeout = 5 * time.Second

// maxCallTimeout bounds what a peer may ask a call to wait (the
// dispatcher's longest timeout).
const maxCallTimeout = 10 * time.Minute

// MaxStreams caps the calls in flight on one peer connection
// (quiccarrier.Peers.MaxStreams).
const MaxStreams = maxStreams

// ServePeer serves a connection another gateway made (its certificate was
// verified by VerifyPeer during the handshake): each stream is one call.
// It returns once the connection and its calls have ended.
func (c *Cluster) ServePeer(ctx context.Context, conn *quic.Conn) {
	c.incoming.Add(1)
	defer c.incoming.Add(-1)
	stop := context.AfterFunc(ctx, func() { _ = conn.CloseWithError(0, "gateway shutting down") })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		str, err := conn.AcceptStream(ctx)
		if err != nil {
			return
		}
		wg.Go(func() { c.serveCall(ctx, str) })
	}
}

// parseCall checks a call's fields and returns what they name.
func parseCall(call *peerv1.Call) (identity.DeviceID, time.Duration, error) {
	id, err := identity.ParseDeviceID(call.GetDeviceId())
	if err != nil {
		return identity.DeviceID{}, 0, fmt.Errorf("the call's device: %w", err)
	}
	switch {
	case call.GetEpoch() == 0:
		return identity.DeviceID{}, 0, fmt.Errorf("the call names no session epoch")
	case call.GetInvoke() == nil || call.GetInvoke().GetRequestId() == "" || call.GetInvoke().GetCapability() == "":
		return identity.DeviceID{}, 0, fmt.Errorf("the call has no invocation, request ID or capability")
	case call.GetTimeoutMs() <= 0:
		return identity.DeviceID{}, 0, fmt.Errorf("the call's timeout of %d ms is not positive", call.GetTimeoutMs())
	}
	return id, min(time.Duration(call.GetTimeoutMs())*time.Millisecond, maxCallTimeout), nil
}

func refusal(reason peerv1.Refusal_Reason, format string, args ...any) *peerv1.Reply {
	return &peerv1.Reply{Body: &peerv1.Reply_Refusal{Refusal: &peerv1.Refusal{Reason: reason, Message: fmt.Sprintf(format, args...)}}}
}

// serveCall runs the call on str: it refuses it unless the node's session
// here has the epoch the caller's route named, so a call routed to a
// session that has ended here is routed again by the caller, not lost or
// run on a session it did not mean.
func (c *Cluster) serveCall(ctx context.Context, str *quic.Stream) {
	defer str.CancelRead(codeDone)
	defer str.Close()
	_ = str.SetReadDeadline(time.Now().Add(callReadTimeout))
	var call peerv1.Call
	if err := wire.ReadFrame(str, &call); err != nil {
		c.log.Info("reading a forwarded call", "err", err)
		str.CancelWrite(codeDone)
		return
	}
	_ = str.SetReadDeadline(time.Time{})
	var mu sync.Mutex
	reply := func(r *peerv1.Reply) {
		mu.Lock()
		defer mu.Unlock()
		_ = str.SetWriteDeadline(time.Now().Add(callReadTimeout))
		if err := wire.WriteFrame(str, r); err != nil {
			c.log.Info("answering a forwarded call", "err", err)
		}
	}
	id, timeout, err := parseCall(&call)
	if err != nil {
		reply(refusal(peerv1.Refusal_REASON_MALFORMED, "%v", err))
		return
	}
	switch epoch := c.cfg.Local.Epoch(id); {
	case epoch == 0:
		reply(refusal(peerv1.Refusal_REASON_NOT_HERE, "gateway %s holds no session of node %s", c.cfg.ID, id))
		return
	case epoch != call.GetEpoch():
		reply(refusal(peerv1.Refusal_REASON_STALE_EPOCH, "node %s's session on gateway %s is epoch %d, not %d", id, c.cfg.ID, epoch, call.GetEpoch()))
		return
	}
	// The caller resets the stream when it gives up: the call ends here
	// too, and the node is told to stop.
	callCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	go func() {
		var b [1]byte
		if _, err := str.Read(b[:]); err != nil {
			cancel()
		}
	}()
	res := c.cfg.Local.Run(callCtx, id, call.GetInvoke(), timeout, func(p *nodev1.Progress) {
		reply(&peerv1.Reply{Body: &peerv1.Reply_Progress{Progress: p}})
	})
	reply(&peerv1.Reply{Body: &peerv1.Reply_Result{Result: res}})
}
