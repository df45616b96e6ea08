package admin

import (
	"errors"
	"fmt"
)

// The kinds of refusal, to test with errors.Is. Every error the admin API
// returns is one of them, or the context's error when a call was given up;
// its text is a message for a person.
var (
	// ErrNotFound: no such pairing request, device or node (NotFoundError
	// says which).
	ErrNotFound = errors.New("not found")
	// ErrInvalidArgument: an argument is out of bounds or does not parse
	// (InvalidArgumentError says which).
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrAlreadyDecided: the pairing request was approved or rejected
	// before.
	ErrAlreadyDecided = errors.New("pairing request already decided")
	// ErrRequestExpired: the pairing request expired before the decision.
	ErrRequestExpired = errors.New("pairing request expired")
	// ErrRevoked: the device is revoked.
	ErrRevoked = errors.New("device revoked")
	// ErrUnavailable: this gateway does not offer the call (no node
	// runtime, no event stream).
	ErrUnavailable = errors.New("not available on this gateway")
	// ErrTooManyCodes: no pairing code can be opened until some are used
	// or expire.
	ErrTooManyCodes = errors.New("too many open pairing codes")
	// ErrCannotLink: the gateway's addresses or name do not make a valid
	// pairing link.
	ErrCannotLink = errors.New("cannot build a pairing link")
	// ErrCallEnded: the queued call has ended (done, failed, expired or
	// cancelled) and cannot be cancelled.
	ErrCallEnded = errors.New("call already ended")
	// ErrInternal: the gateway failed (InternalError); its log says why.
	ErrInternal = errors.New("internal error")
)

// NotFoundError names what was not found.
type NotFoundError struct {
	// What is "pairing request", "device", "node" or "call".
	What string
	// ID is the request or device ID asked for.
	ID string
}

func (e *NotFoundError) Error() string {
	switch e.What {
	case "pairing request":
		return fmt.Sprintf("no pairing request %q", e.ID)
	case "node":
		return fmt.Sprintf("no node %s (it has not connected since pairing, or was removed)", e.ID)
	case "call":
		return fmt.Sprintf("no queued call %s (only calls queued for an offline node are kept)", e.ID)
	}
	return fmt.Sprintf("no %s %s", e.What, e.ID)
}

// Is makes errors.Is(err, ErrNotFound) true.
func (e *NotFoundError) Is(target error) bool { return target == ErrNotFound }

// InvalidArgumentError names the argument that was refused, and why.
type InvalidArgumentError struct {
	// Argument is "ttl", "name", "device_id", "timeout", "capability",
	// "args", "request_id", "state", "limit" or "wait".
	Argument string
	// Err says what is wrong with it; its text is the message.
	Err error
}

func (e *InvalidArgumentError) Error() string { return e.Err.Error() }

// Unwrap returns the reason (a dispatch or identity error, say).
func (e *InvalidArgumentError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrInvalidArgument) true.
func (e *InvalidArgumentError) Is(target error) bool { return target == ErrInvalidArgument }

func invalid(argument, format string, args ...any) error {
	return &InvalidArgumentError{Argument: argument, Err: fmt.Errorf(format, args...)}
}

// DecisionError says why a pairing request could not be approved or
// rejected: Err is ErrAlreadyDecided, ErrRequestExpired or ErrRevoked.
type DecisionError struct {
	RequestID string
	// Decision is "approved" or "rejected".
	Decision string
	Err      error
}

func (e *DecisionError) Error() string {
	switch e.Err {
	case ErrRequestExpired:
		return fmt.Sprintf("pairing request %s expired before it was %s", e.RequestID, e.Decision)
	case ErrRevoked:
		return fmt.Sprintf("the device of pairing request %s is revoked; the request was rejected", e.RequestID)
	}
	return fmt.Sprintf("pairing request %s is no longer pending: it was decided already", e.RequestID)
}

func (e *DecisionError) Unwrap() error { return e.Err }

// InternalError is a failure of the gateway itself (its store, say). Its
// message says what failed, for a person; the cause is in Err and in the
// gateway's log.
type InternalError struct {
	Msg string
	Err error
}

func (e *InternalError) Error() string { return e.Msg }

func (e *InternalError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrInternal) true.
func (e *InternalError) Is(target error) bool { return target == ErrInternal }

// refusal is a refusal of one kind with its own message.
type refusal struct {
	kind error
	msg  string
	// cause, if any, is what went wrong underneath.
	cause error
}

func refuse(kind error, cause error, format string, args ...any) error {
	return &refusal{kind: kind, msg: fmt.Sprintf(format, args...), cause: cause}
}

func (e *refusal) Error() string { return e.msg }

func (e *refusal) Unwrap() []error {
	if e.cause == nil {
		return []error{e.kind}
	}
	return []error{e.kind, e.cause}
}
