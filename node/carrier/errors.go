package carrier

import (
	"errors"
	"fmt"

	"github.com/palyra/palyra-go/identity"
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
	// session ends under it (not when the gateway cancels the call): the
	// gateway will deliver it again on the next session, so the node may
	// let it finish and keep its result.
	ErrSessionEnded = errors.New("the session to the gateway ended")
)

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
	default:
		sentinel = ErrProtocol
	}
	return fmt.Errorf("%w: the gateway says %q (%v)", sentinel, e.GetMessage(), e.GetCode())
}
