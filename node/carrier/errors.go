package carrier

import (
	"errors"
	"fmt"
	"time"

	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/internal/wire"
	nodev1 "github.com/palyra/palyra-go/proto/node/v1"
)

// Errors the carriers' Dial and Serve return, to be tested with errors.Is.
// Network failures are returned wrapped as they are.
var (
	// ErrRevoked: the gateway refused this device as revoked, at the
	// handshake or by ending the session. It is identity.ErrRevoked, so
	// either name matches.
	ErrRevoked = identity.ErrRevoked
	// ErrCertificateRefused: the gateway refused the device certificate for
	// another reason (unknown CA, expired, none presented).
	ErrCertificateRefused = errors.New("gateway refused the device certificate")
	// ErrReplaced: another session of this device took over.
	ErrReplaced = errors.New("session replaced by a newer session of this device")
	// ErrLeaseExpired: the lease lapsed (the gateway ended the session, or
	// stopped granting renewals).
	ErrLeaseExpired = errors.New("lease expired")
	// ErrGatewayShutdown: the gateway shut down.
	ErrGatewayShutdown = errors.New("gateway shut down")
	// ErrRegistrationRefused: the gateway refused the registration.
	ErrRegistrationRefused = errors.New("gateway refused the registration")
	// ErrProtocol: one side broke the node protocol.
	ErrProtocol = errors.New("node protocol error")
	// ErrSessionEnded is the cause of a running call's context when its
	// session ends under it (not when the gateway cancels the call) and
	// Config.Calls is not set: the gateway will deliver it again on the
	// next session, which is why with Calls the call goes on instead.
	ErrSessionEnded = errors.New("the session to the gateway ended")
	// ErrCanceledByGateway is the cause of a running call's context when
	// the gateway canceled the call (its caller gave up), on either
	// carrier.
	ErrCanceledByGateway = errors.New("the gateway canceled the call")
	// ErrGatewayBusy is what a *BusyError is: the gateway could not serve
	// the registration now (its store failed) and asked the node to come
	// back later. Nothing is wrong with the device or the network.
	ErrGatewayBusy = errors.New("gateway busy")
	// ErrConnectionRefused: the gateway answered over UDP and refused the
	// QUIC connection (CONNECTION_REFUSED: its cap on handshakes in
	// progress, or quic-go's full accept queue). The path works and the
	// gateway is up; a later attempt gets in.
	ErrConnectionRefused = errors.New("the gateway refused the QUIC connection for now (too many handshakes in progress)")
)

// BusyError is a busy gateway's answer, with the wait it asked for.
type BusyError struct {
	RetryAfter time.Duration
	// Message is the gateway's, e.g. "gateway busy; retry in 4 s".
	Message string
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("the gateway is busy and asked to be tried again in %s: %q", e.RetryAfter, e.Message)
}

// Is makes errors.Is(err, ErrGatewayBusy) hold.
func (e *BusyError) Is(target error) bool { return target == ErrGatewayBusy }

// GoAwayError is a gateway's notice that it is shutting down (a GoAway
// frame): the node reconnects at a moment drawn at random within Within,
// and does not count the end of the session as a failure.
type GoAwayError struct {
	Within  time.Duration
	Message string
}

func (e *GoAwayError) Error() string {
	return fmt.Sprintf("the gateway is shutting down and asked to be reconnected to within %s: %q", e.Within, e.Message)
}

// Is makes errors.Is(err, ErrGatewayShutdown) hold.
func (e *GoAwayError) Is(target error) bool { return target == ErrGatewayShutdown }

// maxGoAwayWindow bounds the window a gateway may ask for, as
// maxBusyRetry bounds a busy gateway's wait; the close codes that carry a
// window (wire.ShutdownWithin) stop there too.
const maxGoAwayWindow = wire.MaxShutdownWindow

// GoAway maps a GoAway frame to a *GoAwayError, its window held within
// [0, maxGoAwayWindow].
func GoAway(g *nodev1.GoAway) *GoAwayError {
	ms := min(max(g.GetReconnectWithinMs(), 0), maxGoAwayWindow.Milliseconds())
	return &GoAwayError{Within: time.Duration(ms) * time.Millisecond, Message: g.GetMessage()}
}

// ReconnectWithin returns the window a shutting-down gateway asked the
// node to reconnect within, if err is its GoAway.
func ReconnectWithin(err error) (time.Duration, bool) {
	var g *GoAwayError
	if errors.As(err, &g) {
		return g.Within, true
	}
	return 0, false
}

// maxBusyRetry bounds the wait a gateway may ask for, so that a broken or
// hostile answer cannot park a node for good; minBusyRetry keeps a node
// from retrying in a loop on an answer of zero.
const (
	minBusyRetry = time.Second
	maxBusyRetry = 5 * time.Minute
)

// Busy is a busy gateway's answer asking for retryAfter, held within
// sensible bounds.
func Busy(retryAfter time.Duration, message string) *BusyError {
	return &BusyError{RetryAfter: min(max(retryAfter, minBusyRetry), maxBusyRetry), Message: message}
}

// RetryAfter returns the wait a busy gateway asked for, if err is its
// answer.
func RetryAfter(err error) (time.Duration, bool) {
	var b *BusyError
	if errors.As(err, &b) {
		return b.RetryAfter, true
	}
	return 0, false
}

// EndsAttempt reports whether err, from one address or carrier, says what
// any other address or carrier of the same gateway would: its verdict on
// this device, or that it is busy. Either way the node does not try the
// others (a busy gateway's store is the same behind each of them).
func EndsAttempt(err error) bool {
	return IsVerdict(err) || errors.Is(err, ErrGatewayBusy)
}

// ProvesQUIC reports whether err, a QUIC attempt's failure, is an answer
// of the gateway over UDP that asks the node to come back later (busy, the
// connection refused for now, a GoAway): the path works, so the node stays
// on QUIC and does not take the gRPC fallback for it.
func ProvesQUIC(err error) bool {
	_, goAway := ReconnectWithin(err)
	return goAway || errors.Is(err, ErrGatewayBusy) || errors.Is(err, ErrConnectionRefused)
}

// IsVerdict reports whether err is the gateway's verdict on this device
// (revoked, certificate or registration refused), which another address or
// carrier of the same gateway would repeat.
func IsVerdict(err error) bool {
	return errors.Is(err, ErrRevoked) || errors.Is(err, ErrCertificateRefused) ||
		errors.Is(err, ErrRegistrationRefused)
}

// ErrorFrame maps an Error frame from the gateway to this package's errors.
func ErrorFrame(e *nodev1.Error) error {
	var sentinel error
	switch e.GetCode() {
	case nodev1.Error_CODE_REVOKED:
		sentinel = ErrRevoked
	case nodev1.Error_CODE_UNKNOWN_DEVICE:
		sentinel = ErrRegistrationRefused
	case nodev1.Error_CODE_BUSY:
		// Bounded before the multiplication, which could overflow.
		ms := min(max(e.GetRetryAfterMs(), 0), maxBusyRetry.Milliseconds())
		return Busy(time.Duration(ms)*time.Millisecond, e.GetMessage())
	default:
		sentinel = ErrProtocol
	}
	return fmt.Errorf("%w: the gateway says %q (%v)", sentinel, e.GetMessage(), e.GetCode())
}
