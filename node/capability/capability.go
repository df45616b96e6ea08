// Package capability is the node's registry of what it shares: each
// capability's name, description, argument schema, privacy class, whether
// it is enabled and whether running it needs the owner's consent. The
// registry is the node's last word on every invocation: it checks the
// capability exists and is enabled, validates the arguments against the
// schema, asks for consent where needed (deny when nobody answers), and
// only then runs the handler.
//
// It knows nothing of transports or the gateway; node.Agent connects it to
// the session.
package capability

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/palyra/palyra-go/internal/callcode"
)

// Privacy classifies what a capability exposes, most private last.
type Privacy int

const (
	// PrivacyLow: facts about the machine anyone on the gateway may know
	// (system.info) or harmless effects (system.notify).
	PrivacyLow Privacy = iota + 1
	// PrivacyPersonal: the owner's data (clipboard, files).
	PrivacyPersonal
	// PrivacySensitive: what is on screen, running programs.
	PrivacySensitive
)

func (p Privacy) String() string {
	switch p {
	case PrivacyLow:
		return "low"
	case PrivacyPersonal:
		return "personal"
	case PrivacySensitive:
		return "sensitive"
	}
	return fmt.Sprintf("Privacy(%d)", int(p))
}

// Consent says whether running a capability needs the owner's answer.
type Consent int

const (
	// ConsentDeny: never run it (the zero value, so the default is deny).
	ConsentDeny Consent = iota
	// ConsentAsk: ask the owner each time; deny when nobody answers.
	ConsentAsk
	// ConsentAllow: run it without asking.
	ConsentAllow
)

func (c Consent) String() string {
	switch c {
	case ConsentDeny:
		return "deny"
	case ConsentAsk:
		return "ask"
	case ConsentAllow:
		return "allow"
	}
	return fmt.Sprintf("Consent(%d)", int(c))
}

// ParseConsent parses "deny", "ask" or "allow".
func ParseConsent(s string) (Consent, error) {
	switch s {
	case "deny":
		return ConsentDeny, nil
	case "ask":
		return ConsentAsk, nil
	case "allow":
		return ConsentAllow, nil
	}
	return 0, fmt.Errorf("consent must be deny, ask or allow, not %q", s)
}

// Spec describes a capability.
type Spec struct {
	// Name is dotted lowercase, e.g. "system.info".
	Name        string
	Description string
	// Label is what a person reads in menus and windows, a few words
	// ("Read the clipboard"); the Name stays the ID that admins and the
	// command line use.
	Label string
	// Schema is the JSON Schema the arguments (a JSON object) must match;
	// see Schema for how it is checked.
	Schema  json.RawMessage
	Privacy Privacy
	// DefaultEnabled and DefaultConsent apply until the owner changes them.
	DefaultEnabled bool
	DefaultConsent Consent
}

// Call is one invocation as the handler sees it.
type Call struct {
	RequestID string
	// Args is a JSON object that matched the Spec's schema.
	Args json.RawMessage
	// Caller names who asked, for consent prompts and logs.
	Caller string
	// Progress reports progress (may be called from any goroutine); never
	// nil for handlers.
	Progress func(message string)
}

// Handler runs a capability. It must honour ctx (deadline, cancellation)
// and return errors made with NewError where the caller should see a
// specific code.
type Handler func(ctx context.Context, call Call) (output json.RawMessage, err error)

// Capability is a Spec with the code that runs it.
type Capability struct {
	Spec
	Run Handler
	// Describe turns a call's arguments into a line a person reads in a
	// consent prompt ("run /usr/bin/uname -a"); nil uses the capability's
	// description.
	Describe func(args json.RawMessage) string
}

// Info is a capability as the registry lists it.
type Info struct {
	Spec
	Enabled bool
	Consent Consent
}

// Code classifies invocation errors for the wire and for people. The
// values are internal/callcode's, which the gateway shares.
type Code string

const (
	CodeUnknown        Code = callcode.UnknownCapability
	CodeDisabled       Code = callcode.Disabled
	CodeInvalidArgs    Code = callcode.InvalidArguments
	CodeDenied         Code = callcode.Denied
	CodeUnsupported    Code = callcode.Unsupported
	CodeNotAllowed     Code = callcode.NotAllowed
	CodeOutputTooLarge Code = callcode.OutputTooLarge
	CodeTimeout        Code = callcode.Timeout
	CodeCanceled       Code = callcode.Canceled
	CodeFailed         Code = callcode.Failed
	// CodeInterrupted: the node started the call before and no longer has
	// its result (its process ended meanwhile, most often), so the call is
	// not run again when the gateway delivers it once more.
	CodeInterrupted Code = callcode.Interrupted
)

// Error is an invocation error with a code and a message meant for people.
type Error struct {
	Code    Code
	Message string
}

func (e *Error) Error() string { return e.Message }

// Is makes errors.Is(err, &Error{Code: c}) match any Error with code c.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && (t.Message == "" || t.Message == e.Message)
}

// NewError returns an *Error with a formatted message.
func NewError(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns err's code: an *Error's own, CodeTimeout or CodeCanceled
// for context errors, CodeFailed otherwise.
func CodeOf(err error) Code {
	var e *Error
	switch {
	case errors.As(err, &e):
		return e.Code
	case errors.Is(err, context.DeadlineExceeded):
		return CodeTimeout
	case errors.Is(err, context.Canceled):
		return CodeCanceled
	}
	return CodeFailed
}

// Answer is the owner's answer to a consent question.
type Answer int

const (
	// AnswerDeny (the zero value) refuses this call.
	AnswerDeny Answer = iota
	// AnswerAllowOnce runs this call only.
	AnswerAllowOnce
	// AnswerAlways runs this call and sets the capability's consent to
	// allow from now on.
	AnswerAlways
)

// Question is what a consent prompt shows.
type Question struct {
	RequestID   string
	Capability  string
	Description string
	// Label is the capability's Label, for people.
	Label string
	// Summary is what exactly is asked ("run /usr/bin/uname -a").
	Summary string
	Caller  string
}

// Asker asks the owner. Ask must return when ctx ends (the registry gives
// it a deadline); an error or a late answer is a denial.
type Asker interface {
	Ask(ctx context.Context, q Question) (Answer, error)
}

// AskerFunc adapts a function to Asker.
type AskerFunc func(ctx context.Context, q Question) (Answer, error)

func (f AskerFunc) Ask(ctx context.Context, q Question) (Answer, error) { return f(ctx, q) }

// Settings are the owner's choices, persisted by the node: only entries
// that differ from a capability's defaults need be present.
type Settings struct {
	Enabled map[string]bool    `json:"enabled,omitempty"`
	Consent map[string]Consent `json:"consent,omitempty"`
}

// MarshalText and UnmarshalText make Consent read and write as its name in
// JSON (also as map values).
func (c Consent) MarshalText() ([]byte, error) {
	switch c {
	case ConsentDeny, ConsentAsk, ConsentAllow:
		return []byte(c.String()), nil
	}
	return nil, fmt.Errorf("invalid consent %d", int(c))
}

func (c *Consent) UnmarshalText(b []byte) error {
	v, err := ParseConsent(string(b))
	if err != nil {
		return err
	}
	*c = v
	return nil
}

// MarshalText and UnmarshalText make Privacy read and write as its name.
func (p Privacy) MarshalText() ([]byte, error) {
	switch p {
	case PrivacyLow, PrivacyPersonal, PrivacySensitive:
		return []byte(p.String()), nil
	}
	return nil, fmt.Errorf("invalid privacy class %d", int(p))
}

func (p *Privacy) UnmarshalText(b []byte) error {
	for _, v := range []Privacy{PrivacyLow, PrivacyPersonal, PrivacySensitive} {
		if v.String() == string(b) {
			*p = v
			return nil
		}
	}
	return fmt.Errorf("privacy class must be low, personal or sensitive, not %q", b)
}
