package capability

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"runtime/debug"
	"slices"
	"sync"
	"time"
)

const (
	// MaxArgsSize bounds a call's arguments (JSON bytes).
	MaxArgsSize = 64 << 10
	// MaxOutputSize bounds a handler's output (JSON bytes), so that a
	// result fits the node protocol's 1 MiB frame with room to spare.
	MaxOutputSize = 768 << 10
	// DefaultAskTimeout is how long a consent prompt waits for the owner
	// before the call is denied.
	DefaultAskTimeout = 60 * time.Second
)

// namePattern: dotted lowercase, at least two parts ("system.info").
var namePattern = regexp.MustCompile(`^[a-z0-9_]+(\.[a-z0-9_]+)+$`)

// Options configure a Registry.
type Options struct {
	// Settings are the owner's saved choices (may be zero).
	Settings Settings
	// Save persists changed settings. It is called outside the registry's
	// locks, one change at a time; when it fails the change is not made.
	// Nil: changes are not persisted.
	Save func(Settings) error
	// Asker asks the owner for consent. Nil: nobody can answer, so
	// capabilities whose consent is ask are denied.
	Asker Asker
	// AskTimeout bounds each consent prompt; no answer in time is a
	// denial. Zero means DefaultAskTimeout.
	AskTimeout time.Duration
	// OnChange is called after enabled or consent changed, with the new
	// List(). It is called outside the registry's locks and never
	// concurrently with itself; changes made while it runs are delivered
	// by another call once it returns, so the last call always carries the
	// current state (possibly from another goroutine than the change's).
	OnChange func([]Info)
	// Logger logs invocations and refusals; nil discards.
	Logger *slog.Logger
}

// Registry holds the node's capabilities and the owner's choices about
// them, and runs invocations through the checks every call must pass.
// It is safe for concurrent use.
type Registry struct {
	save       func(Settings) error
	asker      Asker
	askTimeout time.Duration
	onChange   func([]Info)
	log        *slog.Logger

	// entries and names are fixed at construction.
	entries map[string]*entry
	names   []string // sorted

	// changeMu serializes changes, so that Save sees them in order and a
	// failed Save can simply not apply its change. It is held while Save
	// runs, never while OnChange runs.
	changeMu sync.Mutex

	// mu guards settings.
	mu sync.Mutex
	// settings are the owner's explicit choices: entries for capabilities
	// they set (even to the default), plus entries naming capabilities
	// this build does not have, kept so that saving does not drop them.
	settings Settings

	// notifyMu guards notifying and notifyPending, which make OnChange
	// deliveries one at a time and coalesced.
	notifyMu      sync.Mutex
	notifying     bool
	notifyPending bool
}

type entry struct {
	Capability
	schema *Schema
}

// NewRegistry checks the capabilities and applies the saved settings.
// It refuses malformed or duplicate names, a missing handler, a privacy
// class or default consent out of range, and schemas that do not compile
// or do not describe an object. Settings naming capabilities it does not
// know are not applied (they are logged, and kept when saving).
func NewRegistry(caps []Capability, opts Options) (*Registry, error) {
	r := &Registry{
		save:       opts.Save,
		asker:      opts.Asker,
		askTimeout: opts.AskTimeout,
		onChange:   opts.OnChange,
		log:        opts.Logger,
		entries:    make(map[string]*entry, len(caps)),
	}
	if r.askTimeout <= 0 {
		r.askTimeout = DefaultAskTimeout
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	for _, c := range caps {
		if !namePattern.MatchString(c.Name) {
			return nil, fmt.Errorf("capability name %q is not dotted lowercase (like system.info)", c.Name)
		}
		if _, dup := r.entries[c.Name]; dup {
			return nil, fmt.Errorf("capability %q is registered twice", c.Name)
		}
		if c.Run == nil {
			return nil, fmt.Errorf("capability %q has no handler", c.Name)
		}
		if c.Privacy < PrivacyLow || c.Privacy > PrivacySensitive {
			return nil, fmt.Errorf("capability %q has no valid privacy class (%v)", c.Name, c.Privacy)
		}
		if _, err := c.DefaultConsent.MarshalText(); err != nil {
			return nil, fmt.Errorf("capability %q: default consent: %w", c.Name, err)
		}
		schema, err := CompileSchema(c.Schema)
		if err != nil {
			return nil, fmt.Errorf("capability %q: %w", c.Name, err)
		}
		// Arguments travel as a JSON object; a schema for anything else
		// would accept no call, or calls the registry then refuses.
		if schema.typ != "object" {
			return nil, fmt.Errorf("capability %q: schema must have type object", c.Name)
		}
		c.Schema = bytes.Clone(c.Schema)
		r.entries[c.Name] = &entry{Capability: c, schema: schema}
		r.names = append(r.names, c.Name)
	}
	slices.Sort(r.names)

	r.settings = Settings{Enabled: map[string]bool{}, Consent: map[string]Consent{}}
	for name, on := range opts.Settings.Enabled {
		if _, ok := r.entries[name]; !ok {
			r.log.Warn("saved settings name an unknown capability; not applied", "capability", name)
		}
		r.settings.Enabled[name] = on
	}
	for name, c := range opts.Settings.Consent {
		if _, err := c.MarshalText(); err != nil {
			r.log.Warn("saved settings hold an invalid consent; ignored", "capability", name, "consent", int(c))
			continue
		}
		if _, ok := r.entries[name]; !ok {
			r.log.Warn("saved settings name an unknown capability; not applied", "capability", name)
		}
		r.settings.Consent[name] = c
	}
	return r, nil
}

// List returns every capability with its current state, sorted by name.
func (r *Registry) List() []Info {
	r.mu.Lock()
	defer r.mu.Unlock()
	infos := make([]Info, 0, len(r.names))
	for _, name := range r.names {
		infos = append(infos, r.infoLocked(r.entries[name]))
	}
	return infos
}

// Get returns one capability with its current state.
func (r *Registry) Get(name string) (Info, bool) {
	e, ok := r.entries[name]
	if !ok {
		return Info{}, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.infoLocked(e), true
}

func (r *Registry) infoLocked(e *entry) Info {
	spec := e.Spec
	spec.Schema = bytes.Clone(spec.Schema) // callers may not change ours
	on, consent := r.stateLocked(e)
	return Info{Spec: spec, Enabled: on, Consent: consent}
}

// stateLocked returns a capability's effective enabled and consent.
func (r *Registry) stateLocked(e *entry) (enabled bool, consent Consent) {
	enabled, consent = e.DefaultEnabled, e.DefaultConsent
	if on, ok := r.settings.Enabled[e.Name]; ok {
		enabled = on
	}
	if c, ok := r.settings.Consent[e.Name]; ok {
		consent = c
	}
	return enabled, consent
}

// Settings returns the owner's current choices, for saving.
func (r *Registry) Settings() Settings {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.settingsLocked()
}

func (r *Registry) settingsLocked() Settings {
	return Settings{Enabled: maps.Clone(r.settings.Enabled), Consent: maps.Clone(r.settings.Consent)}
}

// SetEnabled turns a capability on or off. The change is saved (through
// Options.Save) before it takes effect; if saving fails, nothing changes
// and the error is returned.
func (r *Registry) SetEnabled(name string, on bool) error {
	return r.change(name, func(s Settings) { s.Enabled[name] = on })
}

// SetConsent sets whether a capability runs, asks, or is refused; saved
// like SetEnabled.
func (r *Registry) SetConsent(name string, c Consent) error {
	if _, err := c.MarshalText(); err != nil {
		return NewError(CodeInvalidArgs, "consent must be deny, ask or allow")
	}
	return r.change(name, func(s Settings) { s.Consent[name] = c })
}

// change applies edit to a copy of the settings, saves the copy, and only
// then makes it current and notifies.
func (r *Registry) change(name string, edit func(Settings)) error {
	e, ok := r.entries[name]
	if !ok {
		return unknownError(name)
	}
	r.changeMu.Lock()
	r.mu.Lock()
	beforeOn, beforeConsent := r.stateLocked(e)
	next := r.settingsLocked()
	edit(next)
	same := maps.Equal(next.Enabled, r.settings.Enabled) && maps.Equal(next.Consent, r.settings.Consent)
	r.mu.Unlock()
	if same {
		r.changeMu.Unlock()
		return nil
	}
	if r.save != nil {
		// Save gets its own copy: it may keep it.
		if err := r.save(Settings{Enabled: maps.Clone(next.Enabled), Consent: maps.Clone(next.Consent)}); err != nil {
			r.changeMu.Unlock()
			return fmt.Errorf("saving capability settings: %w", err)
		}
	}
	r.mu.Lock()
	r.settings = next
	afterOn, afterConsent := r.stateLocked(e)
	r.mu.Unlock()
	r.changeMu.Unlock()

	if beforeOn != afterOn || beforeConsent != afterConsent {
		r.log.Info("capability changed", "capability", name, "enabled", afterOn, "consent", afterConsent)
		r.notify()
	}
	return nil
}

// notify delivers the current List() to OnChange, one delivery at a time:
// a goroutine that finds a delivery running leaves its change to it.
func (r *Registry) notify() {
	if r.onChange == nil {
		return
	}
	r.notifyMu.Lock()
	r.notifyPending = true
	if r.notifying {
		r.notifyMu.Unlock()
		return
	}
	r.notifying = true
	for r.notifyPending {
		r.notifyPending = false
		r.notifyMu.Unlock()
		r.deliver()
		r.notifyMu.Lock()
	}
	r.notifying = false
	r.notifyMu.Unlock()
}

// deliver calls OnChange, containing a panic so that notifying stays
// consistent.
func (r *Registry) deliver() {
	defer func() {
		if p := recover(); p != nil {
			r.log.Error("OnChange panicked", "panic", p, "stack", string(debug.Stack()))
		}
	}()
	r.onChange(r.List())
}

// Invoke runs a call through the checks, in order: the capability exists,
// is enabled, the arguments fit MaxArgsSize and match the schema, and the
// owner consents (asking if needed); then the handler runs, and its output
// must be JSON within MaxOutputSize. Errors are *Error values.
func (r *Registry) Invoke(ctx context.Context, name string, call Call) (json.RawMessage, error) {
	out, err := r.invoke(ctx, name, call)
	// Every call passes here: its log attributes are built only for a
	// logger that keeps them.
	logged := r.log.Enabled(ctx, slog.LevelInfo)
	if err != nil {
		if logged {
			r.log.Info("invocation refused or failed", "capability", name, "request_id", call.RequestID, "caller", call.Caller, "code", CodeOf(err), "error", err)
		}
		return nil, err
	}
	if logged {
		r.log.Info("invocation done", "capability", name, "request_id", call.RequestID, "caller", call.Caller, "output_bytes", len(out))
	}
	return out, nil
}

func (r *Registry) invoke(ctx context.Context, name string, call Call) (json.RawMessage, error) {
	e, ok := r.entries[name]
	if !ok {
		return nil, unknownError(name)
	}
	r.mu.Lock()
	on, _ := r.stateLocked(e)
	r.mu.Unlock()
	if !on {
		return nil, disabledError(name)
	}

	if len(bytes.TrimSpace(call.Args)) == 0 {
		call.Args = json.RawMessage("{}")
	}
	if len(call.Args) > MaxArgsSize {
		return nil, NewError(CodeInvalidArgs, "arguments are %d bytes, more than the limit of %d KiB", len(call.Args), MaxArgsSize>>10)
	}
	if err := e.schema.Validate(call.Args); err != nil {
		return nil, err
	}

	if err := r.consent(ctx, e, call); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, contextError(name, err)
	}

	if call.Progress == nil {
		call.Progress = func(string) {}
	}
	out, err := r.run(ctx, e, call)
	if err != nil {
		return nil, handlerError(name, err)
	}
	if len(out) > MaxOutputSize {
		return nil, NewError(CodeOutputTooLarge, "%s produced %d bytes of output, more than the limit of %d KiB", name, len(out), MaxOutputSize>>10)
	}
	if !json.Valid(out) {
		return nil, NewError(CodeFailed, "%s produced output that is not valid JSON (a bug in the capability)", name)
	}
	return out, nil
}

// consent applies the owner's choice for the capability, asking if that
// is the choice; nil means go ahead.
func (r *Registry) consent(ctx context.Context, e *entry, call Call) error {
	r.mu.Lock()
	_, consent := r.stateLocked(e)
	r.mu.Unlock()
	switch consent {
	case ConsentAllow:
		return nil
	case ConsentAsk:
		if err := r.ask(ctx, e, call); err != nil {
			return err
		}
		// The owner may have turned it off or set it to deny while the
		// prompt was open; their latest word counts.
		r.mu.Lock()
		on, consent := r.stateLocked(e)
		r.mu.Unlock()
		switch {
		case !on:
			return disabledError(e.Name)
		case consent == ConsentDeny:
			return deniedError(e.Name)
		}
		return nil
	}
	return deniedError(e.Name)
}

// ask asks the owner about one call; nil means go ahead.
func (r *Registry) ask(ctx context.Context, e *entry, call Call) error {
	if r.asker == nil {
		return NewError(CodeDenied, "%s needs the owner's consent for each call, and nobody can answer consent prompts on this node; to allow it without asking, set its consent to allow in the node config", e.Name)
	}
	q := Question{
		RequestID:   call.RequestID,
		Capability:  e.Name,
		Label:       e.Label,
		Description: e.Description,
		Summary:     r.describe(e, call.Args),
		Caller:      call.Caller,
	}
	askCtx, cancel := context.WithTimeout(ctx, r.askTimeout)
	defer cancel()
	answer, err := r.askOwner(askCtx, q)
	// Unanswered in time is a denial, whichever deadline came first; an
	// answer that arrives late counts as none.
	switch {
	case errors.Is(ctx.Err(), context.Canceled):
		// The caller gave up, not the owner.
		return NewError(CodeCanceled, "%s was canceled while waiting for the owner's consent", e.Name)
	case ctx.Err() != nil:
		return NewError(CodeDenied, "%s was not allowed: the owner did not answer the consent prompt before the call's deadline", e.Name)
	case askCtx.Err() != nil:
		return NewError(CodeDenied, "%s was not allowed: the owner did not answer the consent prompt within %v", e.Name, r.askTimeout)
	case err != nil:
		return NewError(CodeDenied, "%s was not allowed: the consent prompt failed: %v", e.Name, err)
	}
	switch answer {
	case AnswerAllowOnce:
		return nil
	case AnswerAlways:
		if err := r.SetConsent(e.Name, ConsentAllow); err != nil {
			// The owner allowed this call; only remembering it failed.
			r.log.Error("could not remember consent", "capability", e.Name, "error", err)
		}
		return nil
	}
	return NewError(CodeDenied, "the owner refused %s", e.Name)
}

// askOwner calls the Asker, turning a panic into an error.
func (r *Registry) askOwner(ctx context.Context, q Question) (answer Answer, err error) {
	defer func() {
		if p := recover(); p != nil {
			r.log.Error("consent asker panicked", "panic", p, "stack", string(debug.Stack()))
			answer, err = AnswerDeny, fmt.Errorf("asker panicked: %v", p)
		}
	}()
	return r.asker.Ask(ctx, q)
}

// describe returns the prompt's summary of a call, falling back to the
// capability's description.
func (r *Registry) describe(e *entry, args json.RawMessage) (summary string) {
	if e.Describe == nil {
		return e.Description
	}
	defer func() {
		if p := recover(); p != nil {
			r.log.Error("describing a call panicked", "capability", e.Name, "panic", p, "stack", string(debug.Stack()))
			summary = e.Description
		}
	}()
	if s := e.Describe(args); s != "" {
		return s
	}
	return e.Description
}

// run calls the handler, turning a panic into an error: a bug in one
// capability must not take the node down.
func (r *Registry) run(ctx context.Context, e *entry, call Call) (out json.RawMessage, err error) {
	defer func() {
		if p := recover(); p != nil {
			r.log.Error("capability panicked", "capability", e.Name, "request_id", call.RequestID, "panic", p, "stack", string(debug.Stack()))
			out, err = nil, NewError(CodeFailed, "%s failed unexpectedly (a bug in the capability: %v)", e.Name, p)
		}
	}()
	return e.Run(ctx, call)
}

// handlerError turns a handler's error into an *Error.
func handlerError(name string, err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		// Keep the handler's wrapping, which says what it was doing.
		return &Error{Code: e.Code, Message: err.Error()}
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return contextError(name, err)
	}
	return NewError(CodeFailed, "%s failed: %v", name, err)
}

func contextError(name string, err error) *Error {
	if CodeOf(err) == CodeTimeout {
		return NewError(CodeTimeout, "%s did not finish before the call's deadline", name)
	}
	return NewError(CodeCanceled, "%s was canceled", name)
}

func disabledError(name string) *Error {
	return NewError(CodeDisabled, "%s is turned off on this node", name)
}

func deniedError(name string) *Error {
	return NewError(CodeDenied, "the owner does not allow %s", name)
}

func unknownError(name string) *Error {
	return NewError(CodeUnknown, "no capability named %q on this node", name)
}
