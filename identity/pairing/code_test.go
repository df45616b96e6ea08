package pairing

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
)

func TestNewCodeIssuesValidNonTrivialPINs(t *testing.T) {
	t.Parallel()
	for range 2000 {
		sel, err := RandomSelector(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		c, err := NewCode(rand.Reader, sel)
		if err != nil {
			t.Fatal(err)
		}
		if isTrivial(c.PINSecret) || isTrivial(sel+c.PINSecret) {
			t.Fatalf("issued trivial PIN secret %s", c.PINSecret)
		}
		if len(c.LinkSecret) != LinkSecretSize {
			t.Fatalf("link secret has %d bytes", len(c.LinkSecret))
		}
		p, err := ParsePIN(c.PIN().Display())
		if err != nil {
			t.Fatalf("minted PIN does not parse: %v", err)
		}
		if !p.Equal(c.PIN()) || p.Selector() != sel {
			t.Fatal("PIN changed in a round trip")
		}
	}
}

// A random source that first yields only trivial digit strings must not make
// NewCode issue one.
func TestNewCodeSkipsTrivialDraws(t *testing.T) {
	t.Parallel()
	// 16 link-secret bytes, then 32 zero bytes (secret "000000"), then
	// 32 bytes of the digits 1..6 repeated (a run), then real randomness.
	var run []byte
	for i := range 32 {
		run = append(run, byte(1+i%6))
	}
	r := io.MultiReader(bytes.NewReader(make([]byte, 16+32)), bytes.NewReader(run), rand.Reader)
	c, err := NewCode(r, "12")
	if err != nil {
		t.Fatal(err)
	}
	if c.PINSecret == "000000" || c.PINSecret == "123456" || isTrivial(c.PINSecret) {
		t.Fatalf("issued trivial secret %s", c.PINSecret)
	}
}

func TestNewCodeRejectsBadSelector(t *testing.T) {
	t.Parallel()
	for _, sel := range []string{"", "1", "123", "ab", "1a"} {
		if _, err := NewCode(rand.Reader, sel); err == nil {
			t.Errorf("selector %q accepted", sel)
		}
	}
}

func TestIsTrivial(t *testing.T) {
	t.Parallel()
	for d, want := range map[string]bool{
		"000000": true, "111111": true, "121212": true, "123123": true, "112112": true,
		"123456": true, "654321": true, "890123": true, "210987": true, "101010": true,
		"111222": true, // two distinct digits
		"482915": false, "120934": false, "907316": false, "112358": false,
	} {
		if got := isTrivial(d); got != want {
			t.Errorf("isTrivial(%s) = %v, want %v", d, got, want)
		}
	}
}

func TestParsePIN(t *testing.T) {
	t.Parallel()
	c := &Code{Selector: "42", PINSecret: "907316"}
	valid := c.PIN().Display()
	digits := strings.ReplaceAll(valid, "-", "")
	for _, s := range []string{valid, digits, " " + digits[:3] + " " + digits[3:6] + " " + digits[6:] + " ", digits[:4] + "." + digits[4:], "\t" + valid} {
		p, err := ParsePIN(s)
		if err != nil {
			t.Errorf("ParsePIN(%q): %v", s, err)
			continue
		}
		if p.Display() != valid {
			t.Errorf("ParsePIN(%q) = %s, want %s", s, p.Display(), valid)
		}
	}
	for s, want := range map[string]string{
		"":                       "it has 0 digits",
		"12345678":               "it has 8 digits",
		"1234567890":             "it has 10 digits",
		digits[:8] + "x":         "is not a digit",
		"４２９０７３１６０":              "is not a digit",
		strings.Repeat("1", 100): "too long",
	} {
		_, err := ParsePIN(s)
		if !errors.Is(err, ErrInvalidPIN) || !strings.Contains(err.Error(), want) {
			t.Errorf("ParsePIN(%q) = %v, want an error containing %q", s, err, want)
		}
	}
}

// The check digit catches every single-digit typo and every swap of two
// neighbours, which are the errors people make when typing.
func TestParsePINCatchesTypos(t *testing.T) {
	t.Parallel()
	c := &Code{Selector: "07", PINSecret: "482915"}
	digits := strings.ReplaceAll(c.PIN().Display(), "-", "")
	for i := range len(digits) {
		for d := byte('0'); d <= '9'; d++ {
			if d == digits[i] {
				continue
			}
			typo := digits[:i] + string(d) + digits[i+1:]
			if _, err := ParsePIN(typo); err == nil {
				t.Errorf("typo %s (position %d) accepted", typo, i)
			}
		}
	}
	for i := 0; i+1 < len(digits); i++ {
		if digits[i] == digits[i+1] {
			continue
		}
		swapped := digits[:i] + string(digits[i+1]) + string(digits[i]) + digits[i+2:]
		if _, err := ParsePIN(swapped); err == nil {
			t.Errorf("transposition %s accepted", swapped)
		}
	}
}

func TestSecretsStayOutOfStringsAndLogs(t *testing.T) {
	t.Parallel()
	c, err := NewCode(rand.Reader, "31")
	if err != nil {
		t.Fatal(err)
	}
	pin := c.PIN()
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	log.Info("minted", "code", c, "pin", pin)
	for _, out := range []string{fmt.Sprint(c), fmt.Sprint(pin), fmt.Sprintf("%v %+v", c, pin), logged.String()} {
		if strings.Contains(out, c.PINSecret) || strings.Contains(out, pin.Display()) {
			t.Errorf("secret digits leaked: %q", out)
		}
		if strings.Contains(out, fmt.Sprintf("%x", c.LinkSecret)) {
			t.Errorf("link secret leaked: %q", out)
		}
	}
}
