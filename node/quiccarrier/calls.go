package quiccarrier

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
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
	workers := callWorkers{work: make(chan func()), done: make(chan struct{})}
	defer close(workers.done)
	var starting sync.WaitGroup
	defer starting.Wait()
	for {
		str, err := c.conn.AcceptStream(ctx)
		if err != nil {
			return
		}
		starting.Add(1)
		workers.run(func() {
			call := c.readCall(str)
			starting.Done()
			if call != nil {
				c.serveCall(str, call)
			}
		})
	}
}

// callWorkers runs a connection's calls on goroutines that stay a while
// for the next one. A call's code (the schema check above all) grows a new
// goroutine's stack, and growing and copying it again for every call took
// a twentieth of a busy node's CPU.
type callWorkers struct {
	work chan func()
	// done is closed when no more calls come: idle workers leave.
	done chan struct{}
	idle atomic.Int32
}

const (
	// maxIdleCallWorkers bounds the workers that wait for a call.
	maxIdleCallWorkers = 8
	// callWorkerIdle is how long a worker waits for a call before it
	// leaves.
	callWorkerIdle = 5 * time.Second
)

// run runs f on an idle worker, or on a new one when none is idle.
func (w *callWorkers) run(f func()) {
	select {
	case w.work <- f:
	default:
		go w.loop(f)
	}
}

func (w *callWorkers) loop(f func()) {
	var idle *time.Timer
	for {
		f()
		if w.idle.Add(1) > maxIdleCallWorkers {
			w.idle.Add(-1)
			return
		}
		if idle == nil {
			idle = time.NewTimer(callWorkerIdle)
		} else {
			idle.Reset(callWorkerIdle)
		}
		more := false
		select {
		case f = <-w.work:
			more = true
		case <-idle.C:
		case <-w.done:
		}
		w.idle.Add(-1)
		if !more {
			return
		}
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
	// The gateway's side of the stream holds nothing more for the node: a
	// Cancel frame it may send is followed by STOP_SENDING, which is what
	// the node acts on, so no goroutine of each call waits on a read.
	defer str.CancelRead(0)
	inv := call.Invoke()
	stopWatching := context.AfterFunc(str.Context(), func() {
		var se *quic.StreamError
		if errors.As(context.Cause(str.Context()), &se) && se.Remote {
			call.Cancel(fmt.Errorf("%w: %w", context.Canceled, carrier.ErrCanceledByGateway))
		}
	})
	defer stopWatching()

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
	// Its own close ends str.Context too.
	stopWatching()
	if err := send(&nodev1.Frame{Body: &nodev1.Frame_Result{Result: res}}); err != nil {
		c.s.Log().Info("could not send a call's result", "request_id", inv.GetRequestId(), "err", err)
		str.CancelWrite(0)
		return
	}
	_ = str.Close()
}
