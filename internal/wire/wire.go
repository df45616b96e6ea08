// Package wire frames protobuf messages on a byte stream for the node
// protocol's QUIC carrier: a 4-byte big-endian length, then the encoded
// message. It also holds the QUIC application error codes and the carriers'
// names both ends share, so that the node need not import the gateway to
// read them.
//
// It owns framing only; it must not import quic-go, the gateway or the node.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
)

// The node protocol's two carriers, as sessions and statuses name them on
// both ends.
const (
	TransportQUIC = "quic"
	TransportGRPC = "grpc"
)

// MaxFrameSize is the largest encoded message a frame may carry, in bytes.
const MaxFrameSize = 1 << 20

// MaxGatewayAddresses is how many gateway addresses a Welcome may name
// (Welcome.gateway_addresses), and so how many a node keeps: a gateway of
// a larger cluster names its own and some of the others'. It bounds what
// a node stores on a gateway's word.
const MaxGatewayAddresses = 16

// headerSize is the length prefix's size.
const headerSize = 4

var (
	// ErrFrameTooLarge: a frame's length prefix (or a message to write)
	// exceeds MaxFrameSize.
	ErrFrameTooLarge = errors.New("frame too large")

	// ErrMalformedFrame: a frame's body does not decode as the expected
	// message.
	ErrMalformedFrame = errors.New("malformed frame")
)

// marshalOptions are deterministic so equal messages give equal frames.
var marshalOptions = proto.MarshalOptions{Deterministic: true}

// AppendFrame appends m's frame (length prefix and body) to b.
func AppendFrame(b []byte, m proto.Message) ([]byte, error) {
	start := len(b)
	b = append(b, 0, 0, 0, 0)
	b, err := marshalOptions.MarshalAppend(b, m)
	if err != nil {
		return b[:start], fmt.Errorf("encoding frame: %w", err)
	}
	n := len(b) - start - headerSize
	if n > MaxFrameSize {
		return b[:start], fmt.Errorf("encoding frame: %w: %d bytes, the limit is %d", ErrFrameTooLarge, n, MaxFrameSize)
	}
	binary.BigEndian.PutUint32(b[start:], uint32(n))
	return b, nil
}

// smallFrame is the size of the buffers that frames are read into and
// written from and then reused: most frames are a call's or a result's few
// hundred bytes, and each call would otherwise allocate both ends' frames.
// Decoding copies what it keeps (proto.Unmarshal does not alias its input),
// and a Write must not keep its buffer, so a buffer is free again once the
// frame is decoded or written.
const smallFrame = 4 << 10

var buffers = sync.Pool{New: func() any {
	b := make([]byte, 0, smallFrame)
	return &b
}}

// WriteFrame writes m to w as one frame, in a single Write call.
func WriteFrame(w io.Writer, m proto.Message) error {
	bp := buffers.Get().(*[]byte)
	defer buffers.Put(bp) // still the small buffer, if m's frame outgrew it
	b, err := AppendFrame((*bp)[:0], m)
	if err != nil {
		return err
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("writing frame: %w", err)
	}
	return nil
}

// ReadFrame reads one frame from r and decodes it into m (which it resets
// first). It checks the length prefix against MaxFrameSize before
// allocating, and grows the body as it arrives, so a peer that claims a
// large frame and stalls holds what it sent, not what it claimed. Errors wrap ErrFrameTooLarge, ErrMalformedFrame, io.EOF (a
// clean end before any byte of a frame), io.ErrUnexpectedEOF (a frame cut
// short), or r's own error.
func ReadFrame(r io.Reader, m proto.Message) error {
	var hdr [headerSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return err // a clean end; callers compare with io.EOF
		}
		return fmt.Errorf("reading frame header: %w", err)
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > MaxFrameSize {
		return fmt.Errorf("reading frame: %w: %d bytes, the limit is %d", ErrFrameTooLarge, n, MaxFrameSize)
	}
	var buf []byte
	if n <= smallFrame {
		bp := buffers.Get().(*[]byte)
		defer buffers.Put(bp)
		buf = *bp
	}
	body, err := readBody(r, int(n), buf)
	if err != nil {
		return fmt.Errorf("reading frame body (%d bytes): %w", n, err)
	}
	if err := proto.Unmarshal(body, m); err != nil {
		return fmt.Errorf("reading frame: %w: %w", ErrMalformedFrame, err)
	}
	return nil
}

// readChunk is the most a frame's body grows by before its bytes arrive.
const readChunk = 16 << 10

// readBody reads n bytes from r into buf (nil, or a buffer to reuse),
// growing it in chunks of at most readChunk.
func readBody(r io.Reader, n int, buf []byte) ([]byte, error) {
	body := buf[:0]
	for len(body) < n {
		k := min(n-len(body), readChunk)
		body = slices.Grow(body, k)
		got, err := io.ReadFull(r, body[len(body):len(body)+k])
		body = body[:len(body)+got]
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	return body, nil
}

// QUIC application error codes of the node protocol: the code a connection is
// closed with says why, so the node can tell "revoked" from "network down".
// The gateway re-exports them with quic-go's type (gateway/quiccarrier).
const (
	// CodeNoError: a normal close (the node is going away).
	CodeNoError = 0x0
	// CodeShutdown: the gateway is shutting down.
	CodeShutdown = 0x100
	// CodeRevoked: the device was revoked or removed.
	CodeRevoked = 0x101
	// CodeReplaced: a newer session of the same device took over.
	CodeReplaced = 0x102
	// CodeLeaseExpired: the node did not renew its lease in time.
	CodeLeaseExpired = 0x103
	// CodeProtocol: the peer broke the protocol (garbage, oversized or
	// unexpected frames, no control stream).
	CodeProtocol = 0x104
	// CodeRefused: the gateway refused the registration.
	CodeRefused = 0x105
	// CodeInternal: the gateway failed.
	CodeInternal = 0x106
	// CodeBusy: the gateway could not serve the registration now (its store
	// failed) and said when to retry, in an Error frame (CODE_BUSY) sent
	// before the close.
	CodeBusy = 0x107
	// CodeShutdownWithin is the first of the codes a shutting-down gateway
	// closes with when it asks its nodes to come back within a window:
	// the code is CodeShutdownWithin plus the window in milliseconds
	// (ShutdownWithin). Over QUIC this close is the GoAway. A GoAway frame
	// on the control stream ahead of it could not be relied on: once a
	// connection's close arrives, quic-go fails every read of its
	// streams, frames received before the close included. The close is
	// the gateway's last word, and is answered again to every packet a
	// node sends after it, so the window goes with it.
	CodeShutdownWithin = 0x1_0000
)

// MaxShutdownWindow is the longest window the close codes carry, and the
// longest a node accepts from a GoAway.
const MaxShutdownWindow = 5 * time.Minute

// ShutdownWithin is the code a gateway shutting down with a window of
// within closes with, the window held within [0, MaxShutdownWindow].
func ShutdownWithin(within time.Duration) uint64 {
	return CodeShutdownWithin + uint64(min(max(within, 0), MaxShutdownWindow).Milliseconds())
}

// ShutdownWindow is the window a ShutdownWithin code carries; ok is false
// for any other code.
func ShutdownWindow(code uint64) (within time.Duration, ok bool) {
	if code < CodeShutdownWithin || code > CodeShutdownWithin+uint64(MaxShutdownWindow.Milliseconds()) {
		return 0, false
	}
	return time.Duration(code-CodeShutdownWithin) * time.Millisecond, true
}

// ALPN is the application protocol the node and the gateway negotiate on
// QUIC.
const ALPN = "palyra-node/1"

// GRPCPingInterval is how often a node on the gRPC carrier pings the
// gateway (HTTP/2 PING) when it has heard nothing, so a TCP connection
// that silently died is closed within about 15 s (with the ping's own
// timeout). 10 s is the shortest interval grpc-go's client allows; the
// gateway's keepalive enforcement must accept pings this often, or it
// would end the connection with "too_many_pings".
const GRPCPingInterval = 10 * time.Second
