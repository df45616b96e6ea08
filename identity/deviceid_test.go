package identity_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/palyra/palyra-go/identity"
)

// RFC 8032 section 7.1, test 1.
const (
	rfc8032Seed   = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
	rfc8032Public = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
	// goldenID was computed independently (Python: hashlib, base64 and the
	// Luhn mod 32 of syncthing) from rfc8032Public.
	goldenID = "EH7DDX-5BYKSR-GCYTLY-7BKAI3-6STE4N-XX3KLZ"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// randomIDs returns n device IDs from a seeded generator.
func randomIDs(n int) []identity.DeviceID {
	r := rand.New(rand.NewChaCha8([32]byte{'p', 'a', 'l', 'y', 'r', 'a'}))
	ids := make([]identity.DeviceID, n)
	for i := range ids {
		for j := range ids[i] {
			ids[i][j] = byte(r.Uint32())
		}
	}
	return ids
}

func TestDeviceIDGolden(t *testing.T) {
	t.Parallel()
	seed := mustHex(t, rfc8032Seed)
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)
	if !bytes.Equal(pub, mustHex(t, rfc8032Public)) {
		t.Fatalf("public key %x, want the RFC 8032 value", pub)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := identity.ParseDeviceKeyPEM(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	if err != nil {
		t.Fatal(err)
	}
	generated, err := identity.GenerateDeviceKey(bytes.NewReader(seed))
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		id   identity.DeviceID
	}{
		{"DeviceIDFromPublicKey", identity.DeviceIDFromPublicKey(pub)},
		{"ParseDeviceKeyPEM", parsed.ID()},
		{"GenerateDeviceKey", generated.ID()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.id.String(); got != goldenID {
				t.Errorf("String() = %s, want %s", got, goldenID)
			}
			if got, want := tt.id.Short(), goldenID[:6]; got != want {
				t.Errorf("Short() = %s, want %s", got, want)
			}
			if got, want := tt.id.URI(), "urn:palyra:device:"+strings.ReplaceAll(goldenID, "-", ""); got != want {
				t.Errorf("URI() = %s, want %s", got, want)
			}
		})
	}
}

func TestDeviceIDRoundTrip(t *testing.T) {
	t.Parallel()
	for _, id := range append(randomIDs(200), identity.DeviceID{}, identity.DeviceID{0xff, 0xff}) {
		s := id.String()
		if len(s) != 41 || strings.Count(s, "-") != 5 {
			t.Fatalf("String() = %q, want 6 groups of 6", s)
		}
		got, err := identity.ParseDeviceID(s)
		if err != nil || got != id {
			t.Fatalf("ParseDeviceID(%q) = %v, %v; want %v", s, got, err, id)
		}
		if !strings.HasPrefix(s, id.Short()) {
			t.Fatalf("Short() = %q is not the start of %q", id.Short(), s)
		}
	}
}

func TestDeviceIDText(t *testing.T) {
	t.Parallel()
	id := randomIDs(1)[0]
	type doc struct {
		ID    identity.DeviceID `json:"id"`
		Unset identity.DeviceID `json:"unset"`
	}
	b, err := json.Marshal(doc{ID: id})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"id":"` + id.String() + `","unset":""}`; string(b) != want {
		t.Errorf("json = %s, want %s", b, want)
	}
	var back doc
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.ID != id || !back.Unset.IsZero() {
		t.Errorf("round trip = %+v, want ID %v and a zero Unset", back, id)
	}
	if id.IsZero() {
		t.Error("a random ID is zero")
	}
	var bad identity.DeviceID
	if err := bad.UnmarshalText([]byte("not an id")); !errors.Is(err, identity.ErrInvalidDeviceID) {
		t.Errorf("UnmarshalText(garbage) = %v, want ErrInvalidDeviceID", err)
	}
}

func TestDeviceIDLogValue(t *testing.T) {
	t.Parallel()
	id := randomIDs(1)[0]
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("hello", "device", id)
	if !strings.Contains(buf.String(), "device="+id.Short()+"\n") {
		t.Errorf("log line %q does not show device=%s", buf.String(), id.Short())
	}
}

// oibID is an ID whose text contains O, I and B, to try the 0, 1 and 8
// spellings on.
func oibID(t testing.TB) identity.DeviceID {
	t.Helper()
	raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString("OIBOIBOIBOIBOIBOIBOIBOIBOIBOIBOI")
	if err != nil {
		t.Fatal(err)
	}
	return identity.DeviceID(raw)
}

func TestParseDeviceIDGoodSpellings(t *testing.T) {
	t.Parallel()
	id := oibID(t)
	canon := id.String()
	compact := strings.ReplaceAll(canon, "-", "")
	digits := strings.NewReplacer("O", "0", "I", "1", "B", "8").Replace(canon)
	if digits == canon {
		t.Fatal("the test ID has no O, I or B")
	}
	tests := []struct{ name, in string }{
		{"canonical", canon},
		{"lowercase", strings.ToLower(canon)},
		{"mixed case", strings.ToLower(canon[:20]) + canon[20:]},
		{"no dashes", compact},
		{"spaces", strings.ReplaceAll(canon, "-", " ")},
		{"surrounding white space", " \t" + canon + "\n"},
		{"groups of four", strings.Join(chunk(compact, 4), " ")},
		{"digits 0 1 8", digits},
		{"digits lowercase no dashes", strings.ToLower(strings.ReplaceAll(digits, "-", ""))},
		{"doubled dashes", strings.ReplaceAll(canon, "-", "--")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := identity.ParseDeviceID(tt.in)
			if err != nil {
				t.Fatalf("ParseDeviceID(%q): %v", tt.in, err)
			}
			if got != id {
				t.Errorf("ParseDeviceID(%q) = %v, want %v", tt.in, got, id)
			}
		})
	}
}

func chunk(s string, n int) []string {
	var out []string
	for len(s) > n {
		out = append(out, s[:n])
		s = s[n:]
	}
	return append(out, s)
}

func TestParseDeviceIDBadSpellings(t *testing.T) {
	t.Parallel()
	canon := randomIDs(1)[0].String()
	// A typo in the second group, which the first check character covers.
	typo := []byte(canon)
	typo[8] = map[bool]byte{true: 'B', false: 'A'}[typo[8] == 'A']
	tests := []struct {
		name, in, want string
	}{
		{"typo", string(typo), "check character mismatch: the device ID has a typo in groups 1-2"},
		{"typo in last group", canon[:len(canon)-1] + map[bool]string{true: "B", false: "A"}[canon[len(canon)-1] == 'A'], "check character mismatch: the device ID has a typo in groups 5-6"},
		{"empty", "", "a device ID has 36 characters, got 0"},
		{"one short", canon[:len(canon)-1], "a device ID has 36 characters, got 35"},
		{"one long", canon + "A", "a device ID has 36 characters, got 37"},
		{"syncthing ID", "P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2", "a device ID has 36 characters, got 56"},
		{"digit 9", "9" + canon[1:], `'9' in group 1 is not a device ID character`},
		{"punctuation", canon[:14] + "!" + canon[15:], `'!' in group 3 is not a device ID character`},
		{"padding", canon[:40] + "=", `'=' in group 6 is not a device ID character`},
		{"non-ASCII", "É" + canon[1:], `'É' in group 1 is not a device ID character`},
		{"invalid UTF-8", "\xff" + canon[1:], `'�' in group 1 is not a device ID character`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := identity.ParseDeviceID(tt.in)
			if !errors.Is(err, identity.ErrInvalidDeviceID) {
				t.Fatalf("ParseDeviceID(%q) = %v, %v; want ErrInvalidDeviceID", tt.in, got, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
			if !got.IsZero() {
				t.Errorf("ParseDeviceID returned %v with an error", got)
			}
		})
	}
}

// TestParseDeviceIDDetectsEverySubstitution replaces every character of
// valid IDs with every other character a person might type and expects the
// check characters to catch each one.
func TestParseDeviceIDDetectsEverySubstitution(t *testing.T) {
	t.Parallel()
	const typed = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567018"
	canonical := func(c byte) byte {
		switch c {
		case '0':
			return 'O'
		case '1':
			return 'I'
		case '8':
			return 'B'
		}
		return c
	}
	for _, id := range append(randomIDs(30), oibID(t), identity.DeviceID{}) {
		compact := []byte(strings.ReplaceAll(id.String(), "-", ""))
		for pos := range compact {
			orig := compact[pos]
			for i := range len(typed) {
				c := typed[i]
				if canonical(c) == orig {
					continue
				}
				compact[pos] = c
				if got, err := identity.ParseDeviceID(string(compact)); !errors.Is(err, identity.ErrInvalidDeviceID) {
					t.Errorf("%s with %q at %d: ParseDeviceID = %v, %v; want a check character mismatch", id, c, pos, got, err)
				}
			}
			compact[pos] = orig
		}
	}
}
