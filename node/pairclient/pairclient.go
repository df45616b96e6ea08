// Package pairclient is the device's side of pairing over the network: it
// dials the gateway's Pairing service, runs the exchange of identity/pairing
// over it, reports when the request waits for approval, and returns the
// verified result. It stores nothing; the node agent does.
package pairclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/palyra/palyra-go/internal/retryinfo"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/identity/pairing"
	pairingv1 "github.com/palyra/palyra-go/proto/pairing/v1"
)

// ErrUnreachable means there is no connection to the gateway.
var ErrUnreachable = errors.New("cannot reach the gateway")

// ErrThrottled is what a *ThrottledError is: the gateway refused the
// attempt before it began, for too many attempts from this address or too
// many at once. Nothing was tried; the same attempt later may work.
var ErrThrottled = errors.New("the gateway is refusing pairing attempts for now")

// ThrottledError is the gateway's refusal to begin an attempt, with its
// words and how long it asked the device to wait.
type ThrottledError struct {
	Address string
	// Message is the gateway's, e.g. "too many pairing attempts from
	// this address; try again in 10 s".
	Message    string
	RetryAfter time.Duration
}

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("the gateway at %s refused to start pairing: %s", e.Address, e.Message)
}

// Is makes errors.Is(err, ErrThrottled) hold.
func (e *ThrottledError) Is(target error) bool { return target == ErrThrottled }

// maxRetryAfter bounds what a gateway may ask a device to wait, so that a
// broken or hostile answer cannot park a node for good.
const maxRetryAfter = time.Hour

// throttled reads the gateway's refusal from a ResourceExhausted status
// with a RetryInfo detail; nil for any other status (gRPC itself says
// ResourceExhausted of a message over its size limit).
func throttled(addr string, st *status.Status) error {
	if st.Code() != codes.ResourceExhausted {
		return nil
	}
	after, ok := retryinfo.After(st)
	if !ok {
		return nil
	}
	return &ThrottledError{Address: addr, Message: st.Message(), RetryAfter: min(max(after, time.Second), maxRetryAfter)}
}

// Pending describes a request that waits for an admin.
type Pending struct {
	RequestID        string
	VerificationCode string
	ExpiresAt        time.Time
	// Address is the gateway that holds the request.
	Address string
	// Resumable is what Resume needs to collect the answer on a new
	// connection; its GrantKey is secret.
	Resumable pairing.Resumable
}

// Options describe one pairing attempt.
type Options struct {
	// Address is the gateway's HOST:PORT (TCP).
	Address    string
	Credential pairing.Credential
	Key        *identity.DeviceKey
	Name       string
	Platform   string
	Rand       io.Reader
	Now        func() time.Time
	// OnPending is called once when the request waits for approval.
	OnPending func(Pending)
}

// Pair runs one pairing attempt. With a link, the gateway must present a
// chain that includes the CA the link pins, before any pairing message is
// sent.
func Pair(ctx context.Context, opts Options) (*pairing.Result, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if err := pairing.CheckAddress(opts.Address); err != nil {
		return nil, err
	}
	var pin *identity.Fingerprint
	if l, ok := opts.Credential.(*pairing.Link); ok {
		pin = &l.CAPin
	}

	// The gateway is authenticated by the PAKE (its certificate is bound
	// into the exchange) and, with a link, by the CA pin.
	conn, gw, err := dial(opts.Address, func(certs []*x509.Certificate, raw [][]byte) error {
		return checkPin(pin, certs, raw, opts.Now())
	})
	if err != nil {
		return nil, err
	}
	defer conn.Close()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := pairingv1.NewPairingClient(conn).Pair(ctx)
	if err != nil {
		return nil, gw.classify(err)
	}
	// The stream exists only on a connection whose TLS handshake is done,
	// so the gateway's chain has been seen.
	seen := gw.seenChain()
	if len(seen) == 0 {
		return nil, fmt.Errorf("%w at %s: no TLS certificate seen", ErrUnreachable, opts.Address)
	}

	dev, hello, err := pairing.StartDevice(pairing.DeviceConfig{
		Rand: opts.Rand, Key: opts.Key, Name: opts.Name, Platform: opts.Platform, ServerChain: seen,
	}, opts.Credential)
	if err != nil {
		return nil, err
	}
	if err := stream.Send(&pairingv1.PairRequest{Message: &pairingv1.PairRequest_ClientHello{ClientHello: hello}}); err != nil {
		return nil, gw.classify(recvErr(stream, err))
	}
	resp, err := stream.Recv()
	if err != nil {
		return nil, gw.classify(err)
	}
	finish, err := dev.HandleServerHello(resp.GetServerHello())
	if err != nil {
		return nil, err
	}
	if err := stream.Send(&pairingv1.PairRequest{Message: &pairingv1.PairRequest_ClientFinish{ClientFinish: finish}}); err != nil {
		return nil, gw.classify(recvErr(stream, err))
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			return nil, gw.classify(err)
		}
		switch m := resp.Message.(type) {
		case *pairingv1.PairResponse_Pending:
			if opts.OnPending != nil {
				r, err := dev.Resumable()
				if err != nil {
					return nil, err
				}
				opts.OnPending(Pending{
					RequestID:        m.Pending.RequestId,
					VerificationCode: dev.VerificationCode(),
					ExpiresAt:        time.UnixMilli(m.Pending.ExpiresAtUnixMs),
					Address:          opts.Address,
					Resumable:        r,
				})
			}
		case *pairingv1.PairResponse_ServerFinish:
			return dev.HandleServerFinish(m.ServerFinish, opts.Now())
		default:
			return nil, fmt.Errorf("%w: unexpected answer from the gateway", pairing.ErrMalformed)
		}
	}
}

// checkPin verifies, for a link, that the presented chain contains the
// pinned CA and that the leaf was issued by it.
func checkPin(pin *identity.Fingerprint, certs []*x509.Certificate, raw [][]byte, now time.Time) error {
	if len(certs) == 0 {
		return errors.New("the gateway presented no certificate")
	}
	if pin == nil {
		return nil
	}
	for _, c := range certs[1:] {
		if identity.CertificateFingerprint(c.Raw).Equal(*pin) {
			if err := identity.VerifyServerCertificate(c, raw, "", now); err != nil {
				return fmt.Errorf("%w: %w", pairing.ErrCAMismatch, err)
			}
			return nil
		}
	}
	return pairing.ErrCAMismatch
}

// recvErr returns the stream's status when Send failed because the server
// already ended the stream.
func recvErr(stream interface{ RecvMsg(any) error }, sendErr error) error {
	if errors.Is(sendErr, io.EOF) {
		var discard pairingv1.PairResponse
		if err := stream.RecvMsg(&discard); err != nil {
			return err
		}
	}
	return sendErr
}

// gateway is one connection to a gateway's Pairing service, with what its
// TLS handshake showed.
type gateway struct {
	addr string

	mu sync.Mutex
	// chain and refused are set by the handshake; guarded by mu.
	chain   [][]byte
	refused error
}

// dial connects to the Pairing service at addr. check sees the gateway's
// chain during the handshake and may refuse it.
func dial(addr string, check func(certs []*x509.Certificate, raw [][]byte) error) (*grpc.ClientConn, *gateway, error) {
	gw := &gateway{addr: addr}
	tlsConfig := &tls.Config{
		MinVersion: tls.VersionTLS13,
		// The callers authenticate the gateway in check (and the PAKE).
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			raw := make([][]byte, len(cs.PeerCertificates))
			for i, c := range cs.PeerCertificates {
				raw[i] = c.Raw
			}
			err := check(cs.PeerCertificates, raw)
			gw.mu.Lock()
			defer gw.mu.Unlock()
			gw.chain, gw.refused = raw, err
			return err
		},
	}
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(credentials.NewTLS(tlsConfig)))
	if err != nil {
		return nil, nil, fmt.Errorf("connecting to gateway %s: %w", addr, err)
	}
	return conn, gw, nil
}

// seenChain is the chain the gateway presented; it is set once a stream
// exists, since streams only open on a handshaken connection.
func (gw *gateway) seenChain() [][]byte {
	gw.mu.Lock()
	defer gw.mu.Unlock()
	return gw.chain
}

// classify maps what went wrong to the package's errors, keeping the
// gateway's words where they help.
func (gw *gateway) classify(err error) error {
	gw.mu.Lock()
	refused := gw.refused
	gw.mu.Unlock()
	addr := gw.addr
	if refused != nil {
		return fmt.Errorf("connecting to gateway %s: %w", addr, refused)
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	// The gateway reports outcomes with the pairing package's sentinel
	// messages; map them back so callers can use errors.Is.
	for _, outcome := range []error{pairing.ErrWrongCode, pairing.ErrRejected, pairing.ErrRequestExpired, pairing.ErrDeviceRevoked,
		pairing.ErrRequestUnknown, pairing.ErrRequestCollected} {
		if st.Message() == outcome.Error() {
			return outcome
		}
	}
	if err := throttled(addr, st); err != nil {
		return err
	}
	switch st.Code() {
	case codes.PermissionDenied:
		return errors.New(st.Message())
	case codes.DeadlineExceeded:
		return fmt.Errorf("pairing with %s timed out (%s): %w", addr, st.Message(), context.DeadlineExceeded)
	case codes.Unavailable:
		return fmt.Errorf("%w at %s (is the gateway running, and is the address right?)", ErrUnreachable, addr)
	case codes.Canceled:
		return context.Canceled
	}
	return fmt.Errorf("pairing with %s: %s", addr, st.Message())
}

// RenewOptions describe renewing a certificate that ran out.
type RenewOptions struct {
	Address string
	Key     *identity.DeviceKey
	// CA is the gateway CA the device paired with; the gateway's TLS chain
	// must verify against it.
	CA   *x509.Certificate
	Name string
	Rand io.Reader
	Now  func() time.Time
}

// RenewExpired gets a new certificate for the device's key from a gateway
// it paired with, by signing the gateway's challenge. It returns the
// certificate (DER), verified against the CA.
func RenewExpired(ctx context.Context, opts RenewOptions) ([]byte, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	// Addresses may be IPs, so the chain is checked against the pinned CA
	// rather than by the standard host name check.
	conn, gw, err := dial(opts.Address, func(_ []*x509.Certificate, raw [][]byte) error {
		if err := identity.VerifyServerCertificate(opts.CA, raw, "", opts.Now()); err != nil {
			return fmt.Errorf("the gateway's certificate is not from the CA this device paired with: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := pairingv1.NewPairingClient(conn).RenewExpired(ctx)
	if err != nil {
		return nil, gw.classify(err)
	}
	csr, err := opts.Key.CreateCSR(opts.Rand, opts.Name)
	if err != nil {
		return nil, err
	}
	start := &pairingv1.RenewStart{DeviceId: opts.Key.ID().String(), Csr: csr}
	if err := stream.Send(&pairingv1.RenewRequest{Message: &pairingv1.RenewRequest_Start{Start: start}}); err != nil {
		return nil, gw.classify(recvErr(stream, err))
	}
	resp, err := stream.Recv()
	if err != nil {
		return nil, gw.classify(err)
	}
	seen := gw.seenChain()
	if len(seen) == 0 {
		return nil, fmt.Errorf("%w at %s: no TLS certificate seen", ErrUnreachable, opts.Address)
	}
	sig, err := opts.Key.SignWithContext(pairing.RenewalContext,
		pairing.RenewalMessage(resp.GetChallenge(), identity.CertificateFingerprint(seen[0]), csr))
	if err != nil {
		return nil, err
	}
	if err := stream.Send(&pairingv1.RenewRequest{Message: &pairingv1.RenewRequest_Signature{Signature: sig}}); err != nil {
		return nil, gw.classify(recvErr(stream, err))
	}
	if resp, err = stream.Recv(); err != nil {
		return nil, gw.classify(err)
	}
	der := resp.GetCertificate()
	id, err := identity.VerifyDeviceCertificate(opts.CA, [][]byte{der}, opts.Now())
	if err != nil {
		return nil, fmt.Errorf("the renewed certificate does not verify: %w", err)
	}
	if id != opts.Key.ID() {
		return nil, fmt.Errorf("the gateway renewed the certificate of another device (%s)", id)
	}
	return der, nil
}

// ResumeOptions describe collecting the answer to a request that waited
// for approval when its first connection ended.
type ResumeOptions struct {
	// Pending is the request as OnPending reported it.
	Pending Pending
	Key     *identity.DeviceKey
	Now     func() time.Time
	// OnPending is called once if the request still waits for approval.
	OnPending func(Pending)
}

// Resume collects the gateway's answer to a pending request: it proves
// this is the device that made the request by signing the gateway's
// challenge with the device key, waits while the request is pending, and
// returns the verified result. The gateway must present the TLS
// certificate the request's exchange was bound to.
func Resume(ctx context.Context, opts ResumeOptions) (*pairing.Result, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	p := opts.Pending
	dev, err := pairing.ResumeDevice(opts.Key, p.Resumable)
	if err != nil {
		return nil, err
	}
	leaf := identity.CertificateFingerprint(p.Resumable.ServerChain[0])
	conn, gw, err := dial(p.Address, func(_ []*x509.Certificate, raw [][]byte) error {
		if len(raw) == 0 || !identity.CertificateFingerprint(raw[0]).Equal(leaf) {
			return errors.New("the gateway presents another TLS certificate than when this pairing request was made; pair again")
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := pairingv1.NewPairingClient(conn).Resume(ctx)
	if err != nil {
		return nil, gw.classify(err)
	}
	start := &pairingv1.ResumeStart{RequestId: p.RequestID, DeviceId: opts.Key.ID().String()}
	if err := stream.Send(&pairingv1.ResumeRequest{Message: &pairingv1.ResumeRequest_Start{Start: start}}); err != nil {
		return nil, gw.classify(recvErr(stream, err))
	}
	resp, err := stream.Recv()
	if err != nil {
		return nil, gw.classify(err)
	}
	sig, err := opts.Key.SignWithContext(pairing.ResumeContext, pairing.ResumeMessage(resp.GetChallenge(), leaf, p.RequestID))
	if err != nil {
		return nil, err
	}
	if err := stream.Send(&pairingv1.ResumeRequest{Message: &pairingv1.ResumeRequest_Signature{Signature: sig}}); err != nil {
		return nil, gw.classify(recvErr(stream, err))
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			return nil, gw.classify(err)
		}
		switch m := resp.Message.(type) {
		case *pairingv1.ResumeResponse_Pending:
			if opts.OnPending != nil {
				p.ExpiresAt = time.UnixMilli(m.Pending.ExpiresAtUnixMs)
				opts.OnPending(p)
			}
		case *pairingv1.ResumeResponse_ServerFinish:
			return dev.HandleServerFinish(m.ServerFinish, opts.Now())
		default:
			return nil, fmt.Errorf("%w: unexpected answer from the gateway", pairing.ErrMalformed)
		}
	}
}
