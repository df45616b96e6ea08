//go:build unix

package identity_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/palyra/palyra-go/identity"
)

func TestLoadOrCreateCA(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data", "gateway")
	ca, created, err := identity.LoadOrCreateCA(dir, "gw", testNow)
	if err != nil || !created {
		t.Fatalf("LoadOrCreateCA = %v, %v; want a new CA", created, err)
	}
	wantModes := map[string]os.FileMode{identity.CAKeyFile: 0o600, identity.CACertFile: 0o644}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(wantModes) {
		t.Errorf("directory holds %v, want only %s and %s (no temporary files)", entries, identity.CAKeyFile, identity.CACertFile)
	}
	for name, mode := range wantModes {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s has mode %v, want %v", name, fi.Mode().Perm(), mode)
		}
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("new data directory mode %v, %v; want 0700", fi.Mode().Perm(), err)
	}

	again, created, err := identity.LoadOrCreateCA(dir, "another name", testNow.Add(time.Hour))
	if err != nil || created {
		t.Fatalf("second LoadOrCreateCA = %v, %v; want the existing CA", created, err)
	}
	if again.Fingerprint() != ca.Fingerprint() || again.Name() != "gw" {
		t.Errorf("loaded %v, want %v", again, ca)
	}
	certPEM, _, err := ca.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	onDisk, err := os.ReadFile(filepath.Join(dir, identity.CACertFile))
	if err != nil || !bytes.Equal(onDisk, certPEM) {
		t.Errorf("ca.crt differs from MarshalPEM: %v", err)
	}
}

func TestLoadOrCreateCARefuses(t *testing.T) {
	t.Parallel()
	// Each case creates a CA in a fresh directory, damages it and loads it.
	tests := []struct {
		name   string
		now    time.Time
		damage func(t *testing.T, dir string)
		want   string
		is     error
	}{
		{
			name:   "key readable by others",
			now:    testNow,
			damage: func(t *testing.T, dir string) { chmod(t, filepath.Join(dir, identity.CAKeyFile), 0o644) },
			want:   "chmod 600",
		},
		{
			name:   "key readable by group",
			now:    testNow,
			damage: func(t *testing.T, dir string) { chmod(t, filepath.Join(dir, identity.CAKeyFile), 0o640) },
			want:   "has mode 0640",
		},
		{
			name:   "certificate missing",
			now:    testNow,
			damage: func(t *testing.T, dir string) { remove(t, filepath.Join(dir, identity.CACertFile)) },
			want:   "found " + identity.CAKeyFile,
			is:     identity.ErrInvalidCA,
		},
		{
			name:   "key missing",
			now:    testNow,
			damage: func(t *testing.T, dir string) { remove(t, filepath.Join(dir, identity.CAKeyFile)) },
			want:   "but not",
			is:     identity.ErrInvalidCA,
		},
		{
			name:   "certificate corrupt",
			now:    testNow,
			damage: func(t *testing.T, dir string) { write(t, filepath.Join(dir, identity.CACertFile), "junk", 0o644) },
			want:   "no PEM block",
			is:     identity.ErrInvalidCA,
		},
		{
			name:   "key replaced",
			now:    testNow,
			damage: replaceKey,
			want:   "the key does not belong to the certificate",
			is:     identity.ErrInvalidCA,
		},
		{
			name:   "CA expired",
			now:    testNow.Add(identity.CALifetime + time.Second),
			damage: func(*testing.T, string) {},
			want:   "the CA certificate expired at 2036-",
			is:     identity.ErrExpired,
		},
		{
			name:   "clock before the CA",
			now:    testNow.Add(-time.Hour),
			damage: func(*testing.T, string) {},
			want:   "is not valid until",
			is:     identity.ErrExpired,
		},
		{
			name: "key is a directory",
			now:  testNow,
			damage: func(t *testing.T, dir string) {
				remove(t, filepath.Join(dir, identity.CAKeyFile))
				mkdir(t, filepath.Join(dir, identity.CAKeyFile))
			},
			want: "not a regular file",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if _, _, err := identity.LoadOrCreateCA(dir, "gw", testNow); err != nil {
				t.Fatal(err)
			}
			tt.damage(t, dir)
			before := snapshot(t, dir)
			ca, created, err := identity.LoadOrCreateCA(dir, "gw", tt.now)
			if err == nil || ca != nil || created {
				t.Fatalf("LoadOrCreateCA = %v, %v, %v; want an error", ca, created, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %q does not wrap %v", err, tt.is)
			}
			if after := snapshot(t, dir); after != before {
				t.Errorf("a refused load changed the directory:\n%s\nto\n%s", before, after)
			}
		})
	}
}

func replaceKey(t *testing.T, dir string) {
	_, keyPEM, err := newTestCA(t, "other").MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, identity.CAKeyFile), string(keyPEM), 0o600)
}

// snapshot describes a directory's files, modes and contents.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s %v", e.Name(), fi.Mode())
		if fi.Mode().IsRegular() {
			data, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, " %x", sha256.Sum256(data))
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func remove(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}

func mkdir(t *testing.T, path string) {
	t.Helper()
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	chmod(t, path, mode)
}
