package builtin_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/palyra/palyra-go/node/capability"
	"github.com/palyra/palyra-go/node/capability/builtin"
)

// newRegistry registers the built-ins with cfg, all of them enabled and
// allowed, so that tests reach the handlers through the registry's checks
// as a real call does.
func newRegistry(t *testing.T, cfg builtin.Config) *capability.Registry {
	t.Helper()
	caps := builtin.All(func() builtin.Config { return cfg })
	s := capability.Settings{Enabled: map[string]bool{}, Consent: map[string]capability.Consent{}}
	for _, c := range caps {
		s.Enabled[c.Name] = true
		s.Consent[c.Name] = capability.ConsentAllow
	}
	r, err := capability.NewRegistry(caps, capability.Options{Settings: s})
	if err != nil {
		t.Fatalf("NewRegistry: %v", err)
	}
	return r
}

// invoke calls a capability with args and decodes its output into out.
func invoke(t *testing.T, r *capability.Registry, name, args string, out any) error {
	t.Helper()
	raw, err := r.Invoke(t.Context(), name, capability.Call{RequestID: "test", Args: json.RawMessage(args)})
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatalf("%s output %s: %v", name, raw, err)
	}
	return nil
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

// TestAllDefaults pins the built-ins, their order and the defaults
// DESIGN.md gives them; NewRegistry accepting them checks their names and
// schemas.
func TestAllDefaults(t *testing.T) {
	t.Parallel()
	type def struct {
		name    string
		privacy capability.Privacy
		enabled bool
		consent capability.Consent
	}
	want := []def{
		{"system.info", capability.PrivacyLow, true, capability.ConsentAllow},
		{"system.notify", capability.PrivacyLow, true, capability.ConsentAllow},
		{"clipboard.read", capability.PrivacyPersonal, false, capability.ConsentAllow},
		{"clipboard.write", capability.PrivacyPersonal, false, capability.ConsentAllow},
		{"screen.capture", capability.PrivacySensitive, false, capability.ConsentAsk},
		{"files.read", capability.PrivacyPersonal, false, capability.ConsentAllow},
		{"shell.exec", capability.PrivacySensitive, false, capability.ConsentAsk},
	}
	caps := builtin.All(nil)
	if len(caps) != len(want) {
		t.Fatalf("All returned %d capabilities, want %d", len(caps), len(want))
	}
	for i, c := range caps {
		got := def{c.Name, c.Privacy, c.DefaultEnabled, c.DefaultConsent}
		if got != want[i] {
			t.Errorf("capability %d = %+v, want %+v", i, got, want[i])
		}
		if c.Description == "" {
			t.Errorf("%s has no description", c.Name)
		}
		// A label is words for people: never the ID, and short enough
		// for a menu item.
		if c.Label == "" || c.Label == c.Name || len(c.Label) > 30 {
			t.Errorf("%s has label %q; want a few words other than its ID", c.Name, c.Label)
		}
	}
	r, err := capability.NewRegistry(caps, capability.Options{})
	if err != nil {
		t.Fatalf("NewRegistry(All): %v", err)
	}
	// With the defaults, only the harmless ones run.
	var info map[string]any
	if err := invoke(t, r, "system.info", `{}`, &info); err != nil {
		t.Errorf("system.info by default: %v", err)
	}
	for _, name := range []string{"clipboard.read", "files.read", "shell.exec", "screen.capture"} {
		wantError(t, invoke(t, r, name, `{}`, &info), capability.CodeDisabled)
	}
}
