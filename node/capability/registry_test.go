package capability_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/palyra/palyra-go/node/capability"
)

const objectSchema = `{"type":"object"}`

// echo returns its arguments and reports progress, so tests see what the
// handler was given.
func echo(name string, enabled bool, consent capability.Consent) capability.Capability {
	return capability.Capability{
		Spec: capability.Spec{
			Name:           name,
			Description:    "returns its arguments",
			Schema:         json.RawMessage(`{"type":"object","properties":{"text":{"type":"string","maxLength":10}},"additionalProperties":false}`),
			Privacy:        capability.PrivacyLow,
			DefaultEnabled: enabled,
			DefaultConsent: consent,
		},
		Run: func(ctx context.Context, call capability.Call) (json.RawMessage, error) {
			call.Progress("echoing")
			return call.Args, nil
		},
		Describe: func(args json.RawMessage) string { return "echo " + string(args) },
	}
}

// handler makes an enabled, allowed capability that runs run.
func handler(name string, run capability.Handler) capability.Capability {
	return capability.Capability{
		Spec: capability.Spec{
			Name:           name,
			Description:    "test handler",
			Schema:         json.RawMessage(objectSchema),
			Privacy:        capability.PrivacyPersonal,
			DefaultEnabled: true,
			DefaultConsent: capability.ConsentAllow,
		},
		Run: run,
	}
}

func newRegistry(t *testing.T, caps []capability.Capability, opts capability.Options) *capability.Registry {
	t.Helper()
	r, err := capability.NewRegistry(caps, opts)
	if err != nil {
		t.Fatalf("NewRegistry: %v", err)
	}
	return r
}

// wantError checks err's code and that its message contains each part.
func wantError(t *testing.T, err error, code capability.Code, parts ...string) {
	t.Helper()
	var e *capability.Error
	if !errors.As(err, &e) {
		t.Fatalf("error = %v (%T), want an *Error with %s", err, err, code)
	}
	if e.Code != code {
		t.Fatalf("error = %s %q, want code %s", e.Code, e.Message, code)
	}
	for _, p := range parts {
		if !strings.Contains(e.Message, p) {
			t.Errorf("message %q does not contain %q", e.Message, p)
		}
	}
}

func TestNewRegistryRefuses(t *testing.T) {
	t.Parallel()
	good := echo("test.echo", true, capability.ConsentAllow)
	with := func(edit func(*capability.Capability)) capability.Capability {
		c := good
		edit(&c)
		return c
	}
	for _, tc := range []struct {
		name string
		caps []capability.Capability
		want string
	}{
		{"uppercase", []capability.Capability{with(func(c *capability.Capability) { c.Name = "System.info" })}, "not dotted lowercase"},
		{"one part", []capability.Capability{with(func(c *capability.Capability) { c.Name = "system" })}, "not dotted lowercase"},
		{"empty part", []capability.Capability{with(func(c *capability.Capability) { c.Name = "system..info" })}, "not dotted lowercase"},
		{"dash", []capability.Capability{with(func(c *capability.Capability) { c.Name = "sys-tem.info" })}, "not dotted lowercase"},
		{"empty", []capability.Capability{with(func(c *capability.Capability) { c.Name = "" })}, "not dotted lowercase"},
		{"duplicate", []capability.Capability{good, good}, `"test.echo" is registered twice`},
		{"no handler", []capability.Capability{with(func(c *capability.Capability) { c.Run = nil })}, "has no handler"},
		{"no schema", []capability.Capability{with(func(c *capability.Capability) { c.Schema = nil })}, "schema is empty"},
		{"bad schema", []capability.Capability{with(func(c *capability.Capability) { c.Schema = json.RawMessage(`{"type":"object","anyOf":[]}`) })}, "not valid against metaschema"},
		{"not an object", []capability.Capability{with(func(c *capability.Capability) { c.Schema = json.RawMessage(`{"type":"string"}`) })}, "schema must have type object"},
		{"no privacy", []capability.Capability{with(func(c *capability.Capability) { c.Privacy = 0 })}, "no valid privacy class"},
		{"bad consent", []capability.Capability{with(func(c *capability.Capability) { c.DefaultConsent = 9 })}, "default consent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := capability.NewRegistry(tc.caps, capability.Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewRegistry = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestListGetAndSettings(t *testing.T) {
	t.Parallel()
	r := newRegistry(t, []capability.Capability{
		echo("b.second", false, capability.ConsentAsk),
		echo("a.first", true, capability.ConsentAllow),
		echo("c.third", true, capability.ConsentAllow),
	}, capability.Options{Settings: capability.Settings{
		Enabled: map[string]bool{"b.second": true, "gone.capability": true},
		Consent: map[string]capability.Consent{"c.third": capability.ConsentDeny, "gone.capability": capability.ConsentAllow},
	}})

	var names []string
	for _, info := range r.List() {
		names = append(names, info.Name)
	}
	if !slices.Equal(names, []string{"a.first", "b.second", "c.third"}) {
		t.Errorf("List names = %v, want sorted", names)
	}
	if info, ok := r.Get("b.second"); !ok || !info.Enabled || info.Consent != capability.ConsentAsk {
		t.Errorf("Get(b.second) = %+v, %v; want enabled by the saved settings, consent ask", info, ok)
	}
	if info, _ := r.Get("c.third"); !info.Enabled || info.Consent != capability.ConsentDeny {
		t.Errorf("Get(c.third) = %+v, want the saved consent deny", info)
	}
	if _, ok := r.Get("gone.capability"); ok {
		t.Error("Get found a capability only the settings name")
	}

	// Settings entries for capabilities this build lacks are kept, so
	// saving does not drop them; the copy is the caller's.
	s := r.Settings()
	if !s.Enabled["gone.capability"] || s.Consent["gone.capability"] != capability.ConsentAllow {
		t.Errorf("Settings() = %+v, want the unknown entries kept", s)
	}
	s.Enabled["b.second"] = false
	if info, _ := r.Get("b.second"); !info.Enabled {
		t.Error("changing the map Settings returned changed the registry")
	}
	info, _ := r.Get("a.first")
	info.Schema[0] = 'X'
	if again, _ := r.Get("a.first"); again.Schema[0] != '{' {
		t.Error("changing the schema Get returned changed the registry")
	}
}

func TestInvokeRefusals(t *testing.T) {
	t.Parallel()
	r := newRegistry(t, []capability.Capability{
		echo("test.echo", true, capability.ConsentAllow),
		echo("test.off", false, capability.ConsentAllow),
		echo("test.denied", true, capability.ConsentDeny),
		echo("test.asks", true, capability.ConsentAsk),
	}, capability.Options{}) // no Asker
	ctx := t.Context()

	for _, tc := range []struct {
		name  string
		cap   string
		args  string
		code  capability.Code
		parts []string
	}{
		{"unknown", "test.nothing", `{}`, capability.CodeUnknown, []string{`no capability named "test.nothing" on this node`}},
		{"disabled", "test.off", `{}`, capability.CodeDisabled, []string{"test.off is turned off on this node"}},
		// Disabled comes before the arguments are looked at.
		{"disabled with bad args", "test.off", `{"x":1}`, capability.CodeDisabled, nil},
		{"too large", "test.echo", `{"text":"` + strings.Repeat("a", capability.MaxArgsSize) + `"}`, capability.CodeInvalidArgs, []string{"more than the limit of 64 KiB"}},
		{"schema", "test.echo", `{"text":1}`, capability.CodeInvalidArgs, []string{`argument "text": must be a string`}},
		{"unknown argument", "test.echo", `{"txt":"a"}`, capability.CodeInvalidArgs, []string{`unknown argument "txt"`}},
		{"not JSON", "test.echo", `{text}`, capability.CodeInvalidArgs, []string{"not valid JSON"}},
		// Arguments are checked before consent.
		{"denied with bad args", "test.denied", `{"text":1}`, capability.CodeInvalidArgs, nil},
		{"denied", "test.denied", `{}`, capability.CodeDenied, []string{"the owner does not allow test.denied"}},
		{"nobody to ask", "test.asks", `{}`, capability.CodeDenied, []string{"nobody can answer consent prompts on this node", "set its consent to allow in the node config"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := r.Invoke(ctx, tc.cap, capability.Call{Args: json.RawMessage(tc.args)})
			if out != nil {
				t.Errorf("output %s with an error", out)
			}
			wantError(t, err, tc.code, tc.parts...)
		})
	}
}

func TestInvokeRuns(t *testing.T) {
	t.Parallel()
	r := newRegistry(t, []capability.Capability{echo("test.echo", true, capability.ConsentAllow)}, capability.Options{})
	var progress []string
	out, err := r.Invoke(t.Context(), "test.echo", capability.Call{
		Args:     json.RawMessage(`{"text":"hi"}`),
		Progress: func(m string) { progress = append(progress, m) },
	})
	if err != nil || string(out) != `{"text":"hi"}` {
		t.Fatalf("Invoke = %s, %v", out, err)
	}
	if !slices.Equal(progress, []string{"echoing"}) {
		t.Errorf("progress = %v", progress)
	}
	// No arguments mean {}, and a nil Progress is replaced (echo calls it).
	for _, args := range []json.RawMessage{nil, json.RawMessage(""), json.RawMessage("  ")} {
		out, err := r.Invoke(t.Context(), "test.echo", capability.Call{Args: args})
		if err != nil || string(out) != `{}` {
			t.Errorf("Invoke with args %q = %s, %v; want {}", args, out, err)
		}
	}
}

func TestInvokeHandlerErrors(t *testing.T) {
	t.Parallel()
	r := newRegistry(t, []capability.Capability{
		handler("test.panic", func(context.Context, capability.Call) (json.RawMessage, error) {
			panic("something broke")
		}),
		handler("test.big", func(context.Context, capability.Call) (json.RawMessage, error) {
			return json.Marshal(strings.Repeat("a", capability.MaxOutputSize))
		}),
		handler("test.notjson", func(context.Context, capability.Call) (json.RawMessage, error) {
			return json.RawMessage(`{"a":`), nil
		}),
		handler("test.nothing", func(context.Context, capability.Call) (json.RawMessage, error) {
			return nil, nil
		}),
		handler("test.coded", func(context.Context, capability.Call) (json.RawMessage, error) {
			return nil, fmt.Errorf("checking the path: %w", capability.NewError(capability.CodeNotAllowed, "path x is outside"))
		}),
		handler("test.plain", func(context.Context, capability.Call) (json.RawMessage, error) {
			return nil, errors.New("disk on fire")
		}),
		handler("test.deadline", func(context.Context, capability.Call) (json.RawMessage, error) {
			return nil, fmt.Errorf("waiting: %w", context.DeadlineExceeded)
		}),
		handler("test.wait", func(ctx context.Context, _ capability.Call) (json.RawMessage, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		}),
		echo("test.echo", true, capability.ConsentAllow),
	}, capability.Options{})
	ctx := t.Context()

	for _, tc := range []struct {
		cap   string
		code  capability.Code
		parts []string
	}{
		{"test.panic", capability.CodeFailed, []string{"test.panic failed unexpectedly", "something broke"}},
		{"test.big", capability.CodeOutputTooLarge, []string{"test.big produced 786434 bytes of output, more than the limit of 768 KiB"}},
		{"test.notjson", capability.CodeFailed, []string{"not valid JSON"}},
		{"test.nothing", capability.CodeFailed, []string{"not valid JSON"}},
		{"test.coded", capability.CodeNotAllowed, []string{"checking the path: path x is outside"}},
		{"test.plain", capability.CodeFailed, []string{"test.plain failed: disk on fire"}},
		{"test.deadline", capability.CodeTimeout, []string{"test.deadline did not finish before the call's deadline"}},
	} {
		_, err := r.Invoke(ctx, tc.cap, capability.Call{})
		wantError(t, err, tc.code, tc.parts...)
	}

	// A panic leaves the registry working.
	if _, err := r.Invoke(ctx, "test.echo", capability.Call{}); err != nil {
		t.Errorf("Invoke after a panic: %v", err)
	}

	// The call's own context: canceled before it runs, and a deadline
	// that ends a handler waiting on it.
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	_, err := r.Invoke(canceled, "test.echo", capability.Call{})
	wantError(t, err, capability.CodeCanceled, "test.echo was canceled")

	short, cancelShort := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancelShort()
	_, err = r.Invoke(short, "test.wait", capability.Call{})
	wantError(t, err, capability.CodeTimeout, "test.wait did not finish before the call's deadline")
}

// recorder records Save and OnChange calls.
type recorder struct {
	mu      sync.Mutex
	saved   []capability.Settings
	changes [][]capability.Info
	failing bool
}

func (rec *recorder) save(s capability.Settings) error {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.failing {
		return errors.New("disk full")
	}
	rec.saved = append(rec.saved, s)
	return nil
}

func (rec *recorder) onChange(infos []capability.Info) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.changes = append(rec.changes, infos)
}

func (rec *recorder) counts() (saves, changes int) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return len(rec.saved), len(rec.changes)
}

func infoOf(infos []capability.Info, name string) capability.Info {
	for _, i := range infos {
		if i.Name == name {
			return i
		}
	}
	return capability.Info{}
}

func TestSetEnabledAndConsent(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	r := newRegistry(t, []capability.Capability{
		echo("test.echo", false, capability.ConsentAllow),
		echo("test.other", true, capability.ConsentAllow),
	}, capability.Options{Save: rec.save, OnChange: rec.onChange})

	if err := r.SetEnabled("test.echo", true); err != nil {
		t.Fatalf("SetEnabled: %v", err)
	}
	if _, err := r.Invoke(t.Context(), "test.echo", capability.Call{}); err != nil {
		t.Errorf("Invoke after enabling: %v", err)
	}
	saves, changes := rec.counts()
	if saves != 1 || changes != 1 {
		t.Fatalf("%d saves and %d changes, want 1 and 1", saves, changes)
	}
	if !rec.saved[0].Enabled["test.echo"] {
		t.Errorf("saved %+v, want test.echo enabled", rec.saved[0])
	}
	if info := infoOf(rec.changes[0], "test.echo"); !info.Enabled {
		t.Errorf("OnChange got %+v, want test.echo enabled", info)
	}

	// Setting what is already set changes nothing and saves nothing.
	if err := r.SetEnabled("test.echo", true); err != nil {
		t.Fatal(err)
	}
	if saves, changes := rec.counts(); saves != 1 || changes != 1 {
		t.Errorf("a no-op change saved (%d) or notified (%d)", saves, changes)
	}

	if err := r.SetConsent("test.echo", capability.ConsentDeny); err != nil {
		t.Fatalf("SetConsent: %v", err)
	}
	_, err := r.Invoke(t.Context(), "test.echo", capability.Call{})
	wantError(t, err, capability.CodeDenied)
	if s := r.Settings(); s.Consent["test.echo"] != capability.ConsentDeny {
		t.Errorf("Settings() = %+v, want test.echo denied", s)
	}

	wantError(t, r.SetEnabled("test.nothing", true), capability.CodeUnknown, `no capability named "test.nothing"`)
	wantError(t, r.SetConsent("test.nothing", capability.ConsentAllow), capability.CodeUnknown)
	wantError(t, r.SetConsent("test.echo", capability.Consent(7)), capability.CodeInvalidArgs, "consent must be deny, ask or allow")
}

func TestSaveFailureRollsBack(t *testing.T) {
	t.Parallel()
	rec := &recorder{failing: true}
	r := newRegistry(t, []capability.Capability{echo("test.echo", false, capability.ConsentAsk)},
		capability.Options{Save: rec.save, OnChange: rec.onChange})

	err := r.SetEnabled("test.echo", true)
	if err == nil || !strings.Contains(err.Error(), "saving capability settings: disk full") {
		t.Fatalf("SetEnabled = %v, want the save error", err)
	}
	err = r.SetConsent("test.echo", capability.ConsentAllow)
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("SetConsent = %v, want the save error", err)
	}
	if info, _ := r.Get("test.echo"); info.Enabled || info.Consent != capability.ConsentAsk {
		t.Errorf("after failed saves: %+v, want the defaults", info)
	}
	if s := r.Settings(); len(s.Enabled)+len(s.Consent) != 0 {
		t.Errorf("Settings() = %+v, want none", s)
	}
	_, err = r.Invoke(t.Context(), "test.echo", capability.Call{})
	wantError(t, err, capability.CodeDisabled)
	if _, changes := rec.counts(); changes != 0 {
		t.Errorf("OnChange called %d times for changes that failed", changes)
	}
}

// answering is an Asker with a fixed answer that records the questions.
type answering struct {
	answer capability.Answer
	err    error
	mu     sync.Mutex
	asked  []capability.Question
}

func (a *answering) Ask(ctx context.Context, q capability.Question) (capability.Answer, error) {
	a.mu.Lock()
	a.asked = append(a.asked, q)
	a.mu.Unlock()
	return a.answer, a.err
}

func (a *answering) questions() []capability.Question {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.asked)
}

func TestConsentAsk(t *testing.T) {
	t.Parallel()
	call := capability.Call{RequestID: "01REQ", Caller: "admin@gateway", Args: json.RawMessage(`{"text":"hi"}`)}

	t.Run("allow once", func(t *testing.T) {
		t.Parallel()
		asker := &answering{answer: capability.AnswerAllowOnce}
		rec := &recorder{}
		r := newRegistry(t, []capability.Capability{echo("test.asks", true, capability.ConsentAsk)},
			capability.Options{Asker: asker, Save: rec.save, OnChange: rec.onChange})
		for range 2 {
			if out, err := r.Invoke(t.Context(), "test.asks", call); err != nil || string(out) != `{"text":"hi"}` {
				t.Fatalf("Invoke = %s, %v", out, err)
			}
		}
		qs := asker.questions()
		if len(qs) != 2 {
			t.Fatalf("asked %d times, want each call asked", len(qs))
		}
		want := capability.Question{RequestID: "01REQ", Capability: "test.asks", Description: "returns its arguments", Summary: `echo {"text":"hi"}`, Caller: "admin@gateway"}
		if qs[0] != want {
			t.Errorf("question = %+v\nwant %+v", qs[0], want)
		}
		if saves, changes := rec.counts(); saves != 0 || changes != 0 {
			t.Errorf("allow once saved (%d) or notified (%d)", saves, changes)
		}
	})

	t.Run("always", func(t *testing.T) {
		t.Parallel()
		asker := &answering{answer: capability.AnswerAlways}
		rec := &recorder{}
		r := newRegistry(t, []capability.Capability{echo("test.asks", true, capability.ConsentAsk)},
			capability.Options{Asker: asker, Save: rec.save, OnChange: rec.onChange})
		for range 2 {
			if _, err := r.Invoke(t.Context(), "test.asks", call); err != nil {
				t.Fatalf("Invoke: %v", err)
			}
		}
		if n := len(asker.questions()); n != 1 {
			t.Errorf("asked %d times, want once: always is remembered", n)
		}
		saves, changes := rec.counts()
		if saves != 1 || rec.saved[0].Consent["test.asks"] != capability.ConsentAllow {
			t.Errorf("saved %+v, want test.asks allowed once", rec.saved)
		}
		if changes != 1 || infoOf(rec.changes[0], "test.asks").Consent != capability.ConsentAllow {
			t.Errorf("OnChange calls %v, want one with test.asks allowed", rec.changes)
		}
	})

	t.Run("always, but saving fails", func(t *testing.T) {
		t.Parallel()
		asker := &answering{answer: capability.AnswerAlways}
		rec := &recorder{failing: true}
		r := newRegistry(t, []capability.Capability{echo("test.asks", true, capability.ConsentAsk)},
			capability.Options{Asker: asker, Save: rec.save, OnChange: rec.onChange})
		// The owner allowed this call; only remembering it failed.
		if _, err := r.Invoke(t.Context(), "test.asks", call); err != nil {
			t.Fatalf("Invoke: %v", err)
		}
		if info, _ := r.Get("test.asks"); info.Consent != capability.ConsentAsk {
			t.Errorf("consent = %v, want still ask", info.Consent)
		}
	})

	t.Run("deny", func(t *testing.T) {
		t.Parallel()
		r := newRegistry(t, []capability.Capability{echo("test.asks", true, capability.ConsentAsk)},
			capability.Options{Asker: &answering{answer: capability.AnswerDeny}})
		_, err := r.Invoke(t.Context(), "test.asks", call)
		wantError(t, err, capability.CodeDenied, "the owner refused test.asks")
	})

	t.Run("asker error", func(t *testing.T) {
		t.Parallel()
		r := newRegistry(t, []capability.Capability{echo("test.asks", true, capability.ConsentAsk)},
			capability.Options{Asker: &answering{answer: capability.AnswerAlways, err: errors.New("no display")}})
		_, err := r.Invoke(t.Context(), "test.asks", call)
		wantError(t, err, capability.CodeDenied, "the consent prompt failed: no display")
	})

	t.Run("asker panics", func(t *testing.T) {
		t.Parallel()
		r := newRegistry(t, []capability.Capability{echo("test.asks", true, capability.ConsentAsk)},
			capability.Options{Asker: capability.AskerFunc(func(context.Context, capability.Question) (capability.Answer, error) {
				panic("prompt broke")
			})})
		_, err := r.Invoke(t.Context(), "test.asks", call)
		wantError(t, err, capability.CodeDenied, "prompt broke")
	})

	t.Run("unanswered", func(t *testing.T) {
		t.Parallel()
		// An owner who never answers: the prompt ends with the registry's
		// deadline, and even an allow given after it is a denial.
		asker := capability.AskerFunc(func(ctx context.Context, _ capability.Question) (capability.Answer, error) {
			<-ctx.Done()
			return capability.AnswerAlways, nil
		})
		r := newRegistry(t, []capability.Capability{echo("test.asks", true, capability.ConsentAsk)},
			capability.Options{Asker: asker, AskTimeout: 50 * time.Millisecond})
		_, err := r.Invoke(t.Context(), "test.asks", call)
		wantError(t, err, capability.CodeDenied, "the owner did not answer the consent prompt within 50ms")
		if info, _ := r.Get("test.asks"); info.Consent != capability.ConsentAsk {
			t.Errorf("a late answer changed consent to %v", info.Consent)
		}
	})

	t.Run("caller gives up", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(t.Context())
		asker := capability.AskerFunc(func(ctx context.Context, _ capability.Question) (capability.Answer, error) {
			cancel()
			<-ctx.Done()
			return capability.AnswerDeny, ctx.Err()
		})
		r := newRegistry(t, []capability.Capability{echo("test.asks", true, capability.ConsentAsk)}, capability.Options{Asker: asker})
		_, err := r.Invoke(ctx, "test.asks", call)
		wantError(t, err, capability.CodeCanceled, "test.asks was canceled while waiting for the owner's consent")
	})

	t.Run("unanswered before the call's deadline", func(t *testing.T) {
		t.Parallel()
		asker := capability.AskerFunc(func(ctx context.Context, _ capability.Question) (capability.Answer, error) {
			<-ctx.Done()
			return capability.AnswerDeny, ctx.Err()
		})
		r := newRegistry(t, []capability.Capability{echo("test.asks", true, capability.ConsentAsk)}, capability.Options{Asker: asker})
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		_, err := r.Invoke(ctx, "test.asks", call)
		wantError(t, err, capability.CodeDenied, "the owner did not answer the consent prompt before the call's deadline")
	})

	t.Run("turned off while asking", func(t *testing.T) {
		t.Parallel()
		var r *capability.Registry
		// The owner turns the capability off, then answers the stale
		// prompt: the later choice wins. That SetEnabled returns at all
		// shows Invoke holds no lock while asking.
		asker := capability.AskerFunc(func(ctx context.Context, _ capability.Question) (capability.Answer, error) {
			if err := r.SetEnabled("test.asks", false); err != nil {
				return capability.AnswerDeny, err
			}
			return capability.AnswerAllowOnce, nil
		})
		r = newRegistry(t, []capability.Capability{echo("test.asks", true, capability.ConsentAsk)}, capability.Options{Asker: asker})
		_, err := r.Invoke(t.Context(), "test.asks", call)
		wantError(t, err, capability.CodeDisabled)
	})
}

// TestOnChangeMayChange: OnChange runs outside the locks, so it can read
// and change the registry; the change it makes is delivered too.
func TestOnChangeMayChange(t *testing.T) {
	t.Parallel()
	var r *capability.Registry
	var calls [][]capability.Info
	onChange := func(infos []capability.Info) {
		calls = append(calls, infos)
		if len(calls) == 1 {
			if err := r.SetEnabled("test.b", false); err != nil {
				t.Errorf("SetEnabled from OnChange: %v", err)
			}
		}
	}
	r = newRegistry(t, []capability.Capability{echo("test.a", false, capability.ConsentAllow), echo("test.b", true, capability.ConsentAllow)},
		capability.Options{OnChange: onChange})
	if err := r.SetEnabled("test.a", true); err != nil {
		t.Fatal(err)
	}
	if len(calls) != 2 {
		t.Fatalf("OnChange called %d times, want 2", len(calls))
	}
	if last := calls[1]; !infoOf(last, "test.a").Enabled || infoOf(last, "test.b").Enabled {
		t.Errorf("last OnChange = %+v, want test.a on and test.b off", last)
	}
}

// TestConcurrentInvokeAndToggle runs calls while the capability is turned
// on and off; under -race this checks the locking, and every call ends
// either run or refused as disabled.
func TestConcurrentInvokeAndToggle(t *testing.T) {
	t.Parallel()
	var notified atomic.Int64
	r := newRegistry(t, []capability.Capability{echo("test.echo", true, capability.ConsentAllow)}, capability.Options{
		Save:     func(capability.Settings) error { return nil },
		OnChange: func([]capability.Info) { notified.Add(1) },
	})
	const workers, rounds = 4, 200
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds)
	for w := range workers {
		wg.Go(func() {
			for i := range rounds {
				if w%2 == 0 {
					if err := r.SetEnabled("test.echo", i%2 == 0); err != nil {
						errs <- err
					}
					_ = r.List()
					continue
				}
				out, err := r.Invoke(t.Context(), "test.echo", capability.Call{Args: json.RawMessage(`{"text":"x"}`)})
				switch {
				case err == nil && string(out) != `{"text":"x"}`:
					errs <- fmt.Errorf("output %s", out)
				case err != nil && capability.CodeOf(err) != capability.CodeDisabled:
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if notified.Load() == 0 {
		t.Error("OnChange never called")
	}
	// The last delivery carries the current state.
	if err := r.SetEnabled("test.echo", true); err != nil {
		t.Fatal(err)
	}
	if info, _ := r.Get("test.echo"); !info.Enabled {
		t.Error("not enabled after the last SetEnabled")
	}
}
