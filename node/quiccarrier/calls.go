package quiccarrier

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/palyra/palyra-go/internal/wire"
	"github.com/palyra/palyra-go/node/carrier"
	nodev1 "github.com/palyra/palyra-go/proto/node/v1"
)

const (
	// invokeReadTimeout bounds reading the Invoke frame of a new stream.
	invokeReadTimeout = 10 * time.Second
	// resultWriteTimeout bounds writing progress and the result.
	resultWriteTimeout = 10 * time.Second
)

// acceptCalls serves the streams the gateway opens, one call each, until
// ctx ends or the connection fails. It returns once every call has
// started (or its stream turned out to hold none); the session's end
// waits for the calls themselves as carrier.Session.EndCalls says.
func (c *Conn) acceptCalls(ctx context.Context) {
	var starting sync.WaitGroup
	defer starting.Wait()
	for {
		str, err := c.conn.AcceptStream(ctx)
		if err != nil {
			return
		}
		starting.Add(1)
		go func() {
			call := c.readCall(str)
			starting.Done()
			if call != nil {
				c.serveCall(str, call)
			}
		}()
	}
}

// readCall reads the Invoke on a new stream and starts its call; nil if
// the stream holds none.
func (c *Conn) readCall(str *quic.Stream) *carrier.Call {
	_ = str.SetReadDeadline(time.Now().Add(invokeReadTimeout))
	var f nodev1.Frame
	if err := wire.ReadFrame(str, &f); err != nil {
		c.s.Log().Info("unreadable call from the gateway", "err", err)
		str.CancelRead(0)
		str.CancelWrite(0)
		return nil
	}
	inv := f.GetInvoke()
	if inv == nil {
		c.s.Log().Info("call stream without an Invoke", "frame", fmt.Sprintf("%T", f.Body))
		str.CancelRead(0)
		str.CancelWrite(0)
		return nil
	}
	_ = str.SetReadDeadline(time.Time{})
	return c.s.StartCall(inv)
}

// serveCall runs call, which came on str, until it finishes, its deadline
// passes or the gateway cancels it, and writes the result.
func (c *Conn) serveCall(str *quic.Stream, call *carrier.Call) {
	defer call.End()
	defer str.CancelRead(0)
	inv := call.Invoke()
	// A Cancel frame from the gateway ends the call. The read waits for
	// the frame's first byte by itself: at every call's end it fails, the
	// read side cancelled below, and an error that nobody reads is then
	// not also formatted (as ReadFrame's would be).
	go func() {
		var first [1]byte
		if _, err := io.ReadFull(str, first[:]); err != nil {
			return
		}
		var g nodev1.Frame
		if err := wire.ReadFrame(io.MultiReader(bytes.NewReader(first[:]), str), &g); err != nil {
			return
		}
		if cn := g.GetCancel(); cn != nil {
			call.Cancel(fmt.Errorf("%w: %s", context.Canceled, cn.GetReason()))
		}
	}()

	var writeMu sync.Mutex
	send := func(f *nodev1.Frame) error {
		writeMu.Lock()
		defer writeMu.Unlock()
		_ = str.SetWriteDeadline(time.Now().Add(resultWriteTimeout))
		return wire.WriteFrame(str, f)
	}
	progress := func(msg string) {
		_ = send(&nodev1.Frame{Body: &nodev1.Frame_Progress{Progress: &nodev1.Progress{RequestId: inv.GetRequestId(), Message: msg}}})
	}
	res, answer := call.Run(progress)
	if !answer {
		// The gateway gave up, or the session is gone: nobody reads the
		// result.
		str.CancelWrite(0)
		return
	}
	if err := send(&nodev1.Frame{Body: &nodev1.Frame_Result{Result: res}}); err != nil {
		c.s.Log().Info("could not send a call's result", "request_id", inv.GetRequestId(), "err", err)
		str.CancelWrite(0)
		return
	}
	_ = str.Close()
}
