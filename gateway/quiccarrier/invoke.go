package quiccarrier

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/palyra/palyra-go/gateway/carrier"
	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/internal/wire"
	nodev1 "github.com/palyra/palyra-go/proto/node/v1"
)

// cancelWriteTimeout bounds telling a node that its caller gave up.
const cancelWriteTimeout = time.Second

// Invoke sends inv to device id on a new stream of its current session and
// waits for the result, calling progress (if not nil) for each Progress
// frame. When ctx ends first the node is sent Cancel and Invoke returns
// ctx's error. Errors wrap carrier.ErrNodeOffline (no QUIC session),
// carrier.ErrNodeGone or carrier.ErrBadAnswer.
func (s *Server) Invoke(ctx context.Context, id identity.DeviceID, inv *nodev1.Invoke, progress func(*nodev1.Progress)) (*nodev1.Result, error) {
	// A session replaced while the call runs stays open until it is done.
	ss, done, err := carrier.StartCall(s.reg, id, func(ss *session) bool { return ss.srv == s })
	if err != nil {
		return nil, err
	}
	defer done()
	return ss.invoke(ctx, inv, progress)
}

func (ss *session) invoke(ctx context.Context, inv *nodev1.Invoke, progress func(*nodev1.Progress)) (*nodev1.Result, error) {
	str, err := ss.conn.OpenStreamSync(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: %w", carrier.ErrNodeGone, err)
	}
	// The Invoke frame and a Cancel may race to be written.
	var writeMu sync.Mutex
	write := func(f *nodev1.Frame) error {
		writeMu.Lock()
		defer writeMu.Unlock()
		return wire.WriteFrame(str, f)
	}
	stop := context.AfterFunc(ctx, func() {
		_ = str.SetWriteDeadline(time.Now().Add(cancelWriteTimeout))
		_ = write(&nodev1.Frame{Body: &nodev1.Frame_Cancel{Cancel: &nodev1.Cancel{
			RequestId: inv.GetRequestId(),
			Reason:    context.Cause(ctx).Error(),
		}}})
		_ = str.Close()
		str.CancelRead(0)
	})
	defer func() {
		if stop() {
			// Done without cancelling: release both directions.
			_ = str.Close()
			finishRead(str)
		}
	}()
	if err := write(&nodev1.Frame{Body: &nodev1.Frame_Invoke{Invoke: inv}}); err != nil {
		return nil, ss.invokeErr(ctx, "sending the call", err)
	}
	var f nodev1.Frame
	for {
		f.Reset()
		if err := wire.ReadFrame(str, &f); err != nil {
			return nil, ss.invokeErr(ctx, "waiting for the result", err)
		}
		switch body := f.Body.(type) {
		case *nodev1.Frame_Progress:
			if body.Progress.GetRequestId() != inv.GetRequestId() {
				return nil, fmt.Errorf("%w: progress for request %q", carrier.ErrBadAnswer, body.Progress.GetRequestId())
			}
			if progress != nil {
				progress(body.Progress)
			}
		case *nodev1.Frame_Result:
			if body.Result.GetRequestId() != inv.GetRequestId() {
				return nil, fmt.Errorf("%w: result for request %q", carrier.ErrBadAnswer, body.Result.GetRequestId())
			}
			return body.Result, nil
		case *nodev1.Frame_Error:
			return nil, fmt.Errorf("%w: %s", carrier.ErrBadAnswer, body.Error.GetMessage())
		default:
			return nil, fmt.Errorf("%w: unexpected frame %T", carrier.ErrBadAnswer, f.Body)
		}
	}
}

// finishRead ends str's read side: by its end, when the node's FIN has
// come (a node closes its side after the result), else by STOP_SENDING.
func finishRead(str *quic.Stream) {
	_ = str.SetReadDeadline(time.Now())
	var b [1]byte
	if _, err := str.Read(b[:]); err != io.EOF {
		str.CancelRead(0)
	}
}

// invokeErr explains a stream error during a call: the caller gave up, the
// session ended, or the node broke the protocol.
func (ss *session) invokeErr(ctx context.Context, doing string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var app *quic.ApplicationError
	var idle *quic.IdleTimeoutError
	if ss.conn.Context().Err() != nil || errors.As(err, &app) || errors.As(err, &idle) {
		return fmt.Errorf("%w (%s): %w", carrier.ErrNodeGone, doing, err)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: the node ended the call without a result", carrier.ErrBadAnswer)
	}
	if errors.Is(err, wire.ErrFrameTooLarge) || errors.Is(err, wire.ErrMalformedFrame) {
		return fmt.Errorf("%w: %w", carrier.ErrBadAnswer, err)
	}
	return fmt.Errorf("%s: %w", doing, err)
}
