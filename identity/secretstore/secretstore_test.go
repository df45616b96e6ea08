package secretstore

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidateName(t *testing.T) {
	t.Parallel()
	good := []string{
		"a",
		"0",
		"default",
		"device-key",
		"device.key.pem",
		"ca_cert",
		"gw-2.example",
		"a-",
		"a_",
		"con1",      // only con, prn, aux, nul, comN and lptN are devices
		"comx",      // comN needs a digit
		"nullable",  // stem is "nullable", not "nul"
		"console.x", // stem is "console"
		strings.Repeat("a", 64),
	}
	bad := []string{
		"",
		".",
		"..",
		".hidden",
		"-flag",
		"_x",
		"a..b",
		"a.",
		"key.pem.",
		"Default",
		"device key",
		"a/b",
		"../etc",
		`a\b`,
		"a:b",
		"tab\tx",
		"new\nline",
		"nul\x00",
		"é",
		"con",
		"nul.pem",
		"aux",
		"prn.x",
		"com1",
		"lpt9.key",
		strings.Repeat("a", 65),
	}
	for _, name := range good {
		if err := ValidateName(name); err != nil {
			t.Errorf("ValidateName(%q) = %v, want nil", name, err)
		}
	}
	for _, name := range bad {
		err := ValidateName(name)
		if !errors.Is(err, ErrInvalidName) {
			t.Errorf("ValidateName(%q) = %v, want ErrInvalidName", name, err)
			continue
		}
		if !strings.Contains(err.Error(), "a-z, 0-9") {
			t.Errorf("ValidateName(%q) error %q does not say what is allowed", name, err)
		}
	}
}

func TestValidateNameErrorIsBounded(t *testing.T) {
	t.Parallel()
	err := ValidateName(strings.Repeat("x", 10000))
	if err == nil || len(err.Error()) > 400 {
		t.Fatalf("error for a 10,000-byte name: %d bytes, want a short error", len(err.Error()))
	}
}

func TestMaxValueSizeEncodesToMaxItemSize(t *testing.T) {
	t.Parallel()
	// The keychain base64-encodes values; MaxValueSize must be the largest
	// value whose encoding fits MaxItemSize.
	if got := (MaxValueSize + 2) / 3 * 4; got != MaxItemSize {
		t.Errorf("MaxValueSize %d encodes to %d bytes, want %d", MaxValueSize, got, MaxItemSize)
	}
	if got := (MaxValueSize + 1 + 2) / 3 * 4; got <= MaxItemSize {
		t.Errorf("MaxValueSize+1 encodes to %d bytes, want over %d", got, MaxItemSize)
	}
}

func TestOpen(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "secrets")
	tests := []struct {
		name     string
		kind     string
		profile  string
		dir      string
		wantKind string
		wantErr  string
		wantIs   error
	}{
		{name: "keychain", kind: "keychain", profile: "default", wantKind: KindKeychain},
		{name: "file", kind: "file", profile: "default", dir: dir, wantKind: KindFile},
		{name: "empty kind", kind: "", profile: "default", wantErr: `choose "keychain" (the OS keychain) or "file"`},
		{name: "unknown kind", kind: "memory", profile: "default", wantErr: `unknown secret store "memory"`},
		{name: "kind is case sensitive", kind: "Keychain", profile: "default", wantErr: `choose "keychain"`},
		{name: "keychain bad profile", kind: "keychain", profile: "../x", wantIs: ErrInvalidName},
		{name: "file bad profile", kind: "file", profile: "", dir: dir, wantIs: ErrInvalidName},
		{name: "file without dir", kind: "file", profile: "default", wantErr: "no directory given"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := Open(tt.kind, tt.profile, tt.dir)
			if tt.wantErr == "" && tt.wantIs == nil {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				if s.Kind() != tt.wantKind {
					t.Errorf("Kind() = %q, want %q", s.Kind(), tt.wantKind)
				}
				return
			}
			if err == nil {
				t.Fatalf("Open succeeded, want an error")
			}
			// A nil pointer in a non-nil interface would defeat callers'
			// s == nil checks.
			if s != nil {
				t.Errorf("Open returned store %#v with error, want nil", s)
			}
			if tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not contain %q", err, tt.wantErr)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %q is not %v", err, tt.wantIs)
			}
		})
	}
}
