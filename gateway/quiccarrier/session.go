package quiccarrier

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/palyra/palyra-go/gateway/carrier"
	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/internal/wire"
	nodev1 "github.com/palyra/palyra-go/proto/node/v1"
)

// session is one authenticated connection: its registry entry and its wire
// state.
type session struct {
	*carrier.Session
	srv      *Server
	conn     *quic.Conn
	notAfter time.Time
}

// closeWire closes ss's connection with e's code. A shutdown that gives
// the node a window closes with the code that carries it
// (wire.ShutdownWithin), and that close is its only word: one packet per
// node. A GoAway frame on the control stream before it would say the same
// and could not be relied on, since a node that has not read it when the
// close arrives never does; waiting for the nodes to read it and hang up
// made a gateway of 10,000 nodes on 2 cores take 3 to 5 s to stop, as
// every node's frame, read and close cost both ends a packet more.
func (ss *session) closeWire(e carrier.End) {
	code := codeFor(e.Kind)
	if e.Kind == carrier.EndShutdown && e.ReconnectWithin > 0 {
		code = quic.ApplicationErrorCode(wire.ShutdownWithin(e.ReconnectWithin))
	}
	_ = ss.conn.CloseWithError(code, e.Message)
}

// close ends ss with kind, reason being both what the node is told and what
// the runtime hears, unless something else ended it first.
func (ss *session) close(kind carrier.EndKind, reason string) {
	ss.srv.reg.End(ss.Session, carrier.End{Kind: kind, Message: reason, Reason: reason})
}

// serveConn runs one connection from authentication to its end.
func (s *Server) serveConn(ctx context.Context, conn *quic.Conn) {
	state := conn.ConnectionState().TLS
	raw := make([][]byte, len(state.PeerCertificates))
	for i, c := range state.PeerCertificates {
		raw[i] = c.Raw
	}
	// The handshake verified the chain (verifyPeer), and Attach checks
	// the device against the store again, so a device revoked since, or
	// one a busy store let through, hears it there.
	var id identity.DeviceID
	if hs := handshakeOf(conn.Context()); hs != nil {
		id = hs.device
	}
	if id.IsZero() || len(state.PeerCertificates) == 0 {
		_ = conn.CloseWithError(CodeProtocol, "device refused")
		return
	}
	ss := &session{
		Session: &carrier.Session{
			ID:        id,
			Transport: wire.TransportQUIC,
			RawCerts:  raw,
			Remote:    conn.RemoteAddr().String(),
		},
		srv:      s,
		conn:     conn,
		notAfter: state.PeerCertificates[0].NotAfter,
	}
	ss.Conn = ss
	ss.Close = ss.closeWire
	if !s.reg.Track(ss.Session) {
		_ = conn.CloseWithError(CodeShutdown, carrier.ShutdownMessage)
		return
	}
	err := s.runSession(ctx, ss)
	reason := s.reg.Detach(ss.Session, goneReason(err))
	s.log.Debug("node connection ended", "device", id, "remote", ss.Remote, "reason", reason, "err", err)
}

// refuseMoreStreams closes the session if the node opens a stream besides
// its control stream (a node only answers the streams the gateway opens);
// it returns when the connection ends.
func (ss *session) refuseMoreStreams(ctx context.Context) {
	str, err := ss.conn.AcceptStream(ctx)
	if err != nil {
		return
	}
	str.CancelRead(0)
	str.CancelWrite(0)
	ss.close(carrier.EndProtocol, "a node opens no stream but its control stream")
}

// goneReason describes err, the end of a session this side did not close.
func goneReason(err error) string {
	var app *quic.ApplicationError
	if errors.As(err, &app) && app.Remote && app.ErrorCode == CodeNoError {
		return "node disconnected"
	}
	var idle *quic.IdleTimeoutError
	if errors.As(err, &idle) {
		return "connection timed out"
	}
	return fmt.Sprintf("connection lost: %v", err)
}

// errLeaseExpired ends a session whose control stream went silent.
var errLeaseExpired = errors.New("lease expired")

// runSession accepts the control stream, attaches the session and serves its
// frames until the connection ends. It closes the connection itself for
// protocol errors and lapsed leases.
func (s *Server) runSession(ctx context.Context, ss *session) error {
	ttl := s.cfg.LeaseTTL
	actx, cancel := context.WithTimeout(ctx, ttl)
	str, err := ss.conn.AcceptStream(actx)
	cancel()
	if err != nil {
		if ctx.Err() == nil && actx.Err() != nil {
			ss.close(carrier.EndProtocol, "no control stream")
		}
		return fmt.Errorf("accepting control stream: %w", err)
	}
	defer str.CancelRead(0)
	lease := s.leases.Hold(func() { ss.close(carrier.EndLeaseExpired, "lease expired") })
	defer lease.Release()
	c := &controlStream{ss: ss, str: str, ttl: ttl, lease: lease}
	go ss.refuseMoreStreams(ctx)

	var f nodev1.Frame
	if err := c.read(&f); err != nil {
		return err
	}
	reg := f.GetRegisterNode()
	if reg == nil {
		return c.protocolError("the first frame must be RegisterNode")
	}
	// Past the Registry's bound on registrations in progress the node is
	// told when to come back before its registration queues on the store.
	// (Handshakes are bounded apart, by Limits.MaxHandshakes: refusing
	// there costs no handshake.)
	release, err := s.reg.Admit()
	if err != nil {
		var busy *carrier.BusyError
		errors.As(err, &busy)
		return c.busy(ctx, busy)
	}
	defer release()
	info := carrier.SessionInfo{
		DeviceID:     ss.ID,
		Name:         reg.GetName(),
		Platform:     reg.GetPlatform(),
		Version:      reg.GetVersion(),
		Capabilities: reg.GetCapabilities(),
		RemoteAddr:   ss.Remote,
		ConnectedAt:  s.reg.Now(),
		CertNotAfter: ss.notAfter,
		Transport:    wire.TransportQUIC,
	}
	// Registering is part of attaching: the runtime hears NodeRegistered
	// under the device's lock in the Registry (other devices' registrations
	// do not wait for it).
	err = s.reg.Attach(ss.Session, func() (carrier.SessionInfo, error) {
		return info, s.rt.NodeRegistered(ctx, info)
	})
	if err != nil {
		if errors.Is(err, carrier.ErrEnded) {
			return err
		}
		var busy *carrier.BusyError
		if errors.As(err, &busy) {
			return c.busy(ctx, busy)
		}
		kind, ecode, msg := carrier.EndRefused, nodev1.Error_CODE_UNKNOWN_DEVICE, "registration refused"
		if errors.Is(err, identity.ErrRevoked) {
			kind, ecode, msg = carrier.EndRevoked, nodev1.Error_CODE_REVOKED, carrier.RevokedReason
		}
		s.log.Info("node registration refused", "device", ss.ID, "err", err)
		_ = c.write(errorFrame(ecode, msg))
		ss.close(kind, msg)
		return fmt.Errorf("registering node: %w", err)
	}
	s.log.Info("node registered", "device", ss.ID, "name", info.Name, "platform", info.Platform, "remote", ss.Remote)
	release()
	// Reachable before the node hears Welcome, so that a node that says it
	// is connected can be called: streams opened meanwhile wait in its
	// accept queue until it serves them.
	s.reg.Ready(ss.Session)
	err = c.write(&nodev1.Frame{Body: &nodev1.Frame_Welcome{Welcome: s.cfg.Welcome(ss.ID, info.ConnectedAt, ss.notAfter)}})
	if err != nil {
		return err
	}

	for {
		f.Reset()
		if err := c.read(&f); err != nil {
			return err
		}
		switch body := f.Body.(type) {
		case *nodev1.Frame_LeaseRenewal:
			s.rt.NodeRenewed(ss.ID, s.reg.Now())
			err = c.write(&nodev1.Frame{Body: &nodev1.Frame_LeaseGranted{LeaseGranted: &nodev1.LeaseGranted{
				Sequence:   body.LeaseRenewal.GetSequence(),
				LeaseTtlMs: ttl.Milliseconds(),
			}}})
		case *nodev1.Frame_RenewCertificate:
			err = c.write(s.renewCertificate(ctx, ss, body.RenewCertificate.GetCsr()))
		case *nodev1.Frame_CapabilitiesChanged:
			s.reg.SetCapabilities(ss.Session, body.CapabilitiesChanged.GetCapabilities())
		case *nodev1.Frame_Event:
			s.rt.NodeEvent(ss.ID, body.Event)
		default:
			return c.protocolError(fmt.Sprintf("unexpected frame %T", f.Body))
		}
		if err != nil {
			return err
		}
	}
}

// busyLinger bounds how long the gateway waits for a node it told to retry
// to close the connection itself: closing first could lose the Error frame
// that says when.
const busyLinger = 2 * time.Second

// busy answers a registration the gateway cannot serve now (its store
// failed, or too many nodes are being admitted): an Error frame
// with the wait, then the close once the node has read it and gone (or
// after busyLinger).
func (c *controlStream) busy(ctx context.Context, b *carrier.BusyError) error {
	secs := int(b.RetryAfter / time.Second)
	c.ss.srv.log.Warn("node registration deferred; asked to retry", "device", c.ss.ID, "retry_in_s", secs, "err", b.Err)
	msg := fmt.Sprintf("gateway busy; retry in %d s", secs)
	f := errorFrame(nodev1.Error_CODE_BUSY, msg)
	f.GetError().RetryAfterMs = b.RetryAfter.Milliseconds()
	if err := c.write(f); err == nil {
		t := time.NewTimer(busyLinger)
		select {
		case <-c.ss.conn.Context().Done():
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
	c.ss.close(carrier.EndBusy, msg)
	return fmt.Errorf("registering node: %w", b)
}

// renewCertificate answers a RenewCertificate frame.
func (s *Server) renewCertificate(ctx context.Context, ss *session, csr []byte) *nodev1.Frame {
	ctx, cancel := context.WithTimeout(ctx, renewCertificateTimeout)
	defer cancel()
	der, err := s.rt.RenewCertificate(ctx, ss.ID, csr)
	if err != nil {
		s.log.Info("certificate renewal refused", "device", ss.ID, "err", err)
		code := nodev1.Error_CODE_INTERNAL
		switch {
		case errors.Is(err, identity.ErrRevoked):
			code = nodev1.Error_CODE_REVOKED
		case errors.Is(err, identity.ErrInvalidCSR):
			code = nodev1.Error_CODE_MALFORMED
		}
		return errorFrame(code, "certificate renewal refused")
	}
	if _, err := x509.ParseCertificate(der); err != nil {
		s.log.Error("registry returned an unparsable certificate", "device", ss.ID, "err", err)
		return errorFrame(nodev1.Error_CODE_INTERNAL, "certificate renewal failed")
	}
	s.log.Info("certificate renewed", "device", ss.ID)
	return &nodev1.Frame{Body: &nodev1.Frame_CertificateRenewed{CertificateRenewed: &nodev1.CertificateRenewed{Certificate: der}}}
}

func errorFrame(code nodev1.Error_Code, msg string) *nodev1.Frame {
	return &nodev1.Frame{Body: &nodev1.Frame_Error{Error: &nodev1.Error{Code: code, Message: msg}}}
}

// controlStream reads and writes frames on a session's control stream,
// holding the lease: it runs only while a read waits for the node, a TTL
// from the read's start (what the gateway does with a frame, such as a
// registration that waits on a busy store, does not count).
type controlStream struct {
	ss    *session
	str   *quic.Stream
	ttl   time.Duration
	lease *carrier.Lease
}

// read reads one frame. A bad frame closes the connection; so does a
// lapsed lease (the Server's Leases), which ends the read.
func (c *controlStream) read(f *nodev1.Frame) error {
	c.lease.Resume()
	err := wire.ReadFrame(c.str, f)
	c.lease.Pause()
	switch {
	case err == nil:
		return nil
	case c.lease.Lapsed():
		return errLeaseExpired
	case errors.Is(err, wire.ErrFrameTooLarge):
		return c.protocolError("frame too large")
	case errors.Is(err, wire.ErrMalformedFrame):
		return c.protocolError("malformed frame")
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		// The node closed its side of the control stream: the session ends.
		c.ss.close(carrier.EndProtocol, "control stream closed")
		return fmt.Errorf("reading control stream: %w", err)
	default:
		return fmt.Errorf("reading control stream: %w", err)
	}
}

// write writes one frame, waiting at most one lease TTL. Only the
// session's goroutine writes.
func (c *controlStream) write(f *nodev1.Frame) error {
	_ = c.str.SetWriteDeadline(time.Now().Add(c.ttl))
	if err := wire.WriteFrame(c.str, f); err != nil {
		return fmt.Errorf("writing control stream: %w", err)
	}
	return nil
}

// protocolError tells the node what it did wrong (best effort) and closes
// the connection.
func (c *controlStream) protocolError(msg string) error {
	_ = c.write(errorFrame(nodev1.Error_CODE_MALFORMED, msg))
	c.ss.close(carrier.EndProtocol, msg)
	return fmt.Errorf("protocol error: %s", msg)
}
