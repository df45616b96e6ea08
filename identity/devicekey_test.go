package identity_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/palyra/palyra-go/identity"
)

func TestDeviceKeyPEMRoundTrip(t *testing.T) {
	t.Parallel()
	k := newTestDeviceKey(t)
	b, err := k.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("-----BEGIN PRIVATE KEY-----\n")) {
		t.Errorf("MarshalPEM = %q, want a PRIVATE KEY block", b)
	}
	back, err := identity.ParseDeviceKeyPEM(b)
	if err != nil {
		t.Fatal(err)
	}
	if back.ID() != k.ID() || !back.Public().Equal(k.Public()) {
		t.Errorf("round trip gave %v, want %v", back, k)
	}
	if back.ID() != identity.DeviceIDFromPublicKey(k.Public()) {
		t.Error("ID() is not derived from Public()")
	}
	again, err := back.MarshalPEM()
	if err != nil || !bytes.Equal(again, b) {
		t.Errorf("MarshalPEM after parsing = %q, %v; want the same bytes", again, err)
	}
}

func TestParseDeviceKeyPEMRejects(t *testing.T) {
	t.Parallel()
	good, err := newTestDeviceKey(t).MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(good)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalPKCS8PrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	ecSEC1, err := x509.MarshalECPrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	enc := func(typ string, headers map[string]string, der []byte) []byte {
		return pem.EncodeToMemory(&pem.Block{Type: typ, Headers: headers, Bytes: der})
	}
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "no PEM block found"},
		{"not PEM", []byte("hello"), "no PEM block found"},
		{"DER without PEM", block.Bytes, "no PEM block found"},
		{"certificate block", enc("CERTIFICATE", nil, block.Bytes), `PEM block is "CERTIFICATE"`},
		{"EC PRIVATE KEY block", enc("EC PRIVATE KEY", nil, ecSEC1), `PEM block is "EC PRIVATE KEY"`},
		{"ECDSA key", enc("PRIVATE KEY", nil, ecDER), "the key is ECDSA P-256, want Ed25519"},
		{"encrypted", enc("PRIVATE KEY", map[string]string{"Proc-Type": "4,ENCRYPTED"}, block.Bytes), "PEM block has headers"},
		{"trailing data", append(bytes.Clone(good), "junk"...), "unexpected data after the PEM block"},
		{"two keys", append(bytes.Clone(good), good...), "unexpected data after the PEM block"},
		{"truncated DER", enc("PRIVATE KEY", nil, block.Bytes[:len(block.Bytes)-1]), "invalid key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			k, err := identity.ParseDeviceKeyPEM(tt.in)
			if !errors.Is(err, identity.ErrInvalidKey) || k != nil {
				t.Fatalf("ParseDeviceKeyPEM = %v, %v; want ErrInvalidKey", k, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
		})
	}
	if _, err := identity.ParseDeviceKeyPEM(append([]byte("\n\n"), append(bytes.Clone(good), " \n"...)...)); err != nil {
		t.Errorf("white space around the block: %v", err)
	}
}

// TestDeviceKeyNeverShowsKeyMaterial formats and logs a key every way we
// can think of and looks for its secret in any encoding.
func TestDeviceKeyNeverShowsKeyMaterial(t *testing.T) {
	t.Parallel()
	seed := mustHex(t, rfc8032Seed)
	k, err := identity.GenerateDeviceKey(bytes.NewReader(seed))
	if err != nil {
		t.Fatal(err)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	var secrets []string
	for _, b := range [][]byte{seed, priv, seed[:8], seed[24:]} {
		secrets = append(secrets,
			hex.EncodeToString(b), strings.ToUpper(hex.EncodeToString(b)),
			base64.StdEncoding.EncodeToString(b), base64.RawURLEncoding.EncodeToString(b),
			strings.Trim(fmt.Sprint([]byte(b)), "[]"), // the decimal form %d and %v give
			string(b))
	}

	var outputs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%d", "%x", "%X", "%q", "%T"} {
		outputs = append(outputs,
			fmt.Sprintf(verb, k), fmt.Sprintf(verb, *k), fmt.Sprintf(verb, k.Signer()),
			fmt.Sprintf(verb, []any{k}), fmt.Sprintf(verb, struct{ K *identity.DeviceKey }{k}))
	}
	var text, js bytes.Buffer
	slog.New(slog.NewTextHandler(&text, nil)).Info("key", "key", k, "signer", k.Signer())
	slog.New(slog.NewJSONHandler(&js, nil)).Info("key", "key", k, "signer", k.Signer())
	outputs = append(outputs, k.String(), text.String(), js.String())

	for _, out := range outputs {
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("output %q contains key material %q", out, s)
			}
		}
	}
	if want := "DeviceKey(" + goldenID[:6] + "…, private)"; k.String() != want {
		t.Errorf("String() = %q, want %q", k.String(), want)
	}
	if !strings.Contains(text.String(), goldenID[:6]) {
		t.Errorf("log %q does not name the device", text.String())
	}
	if _, ok := k.Signer().(ed25519.PrivateKey); ok {
		t.Error("Signer() is the private key itself")
	}
}

func TestDeviceKeySign(t *testing.T) {
	t.Parallel()
	k := newTestDeviceKey(t)
	msg := []byte("palyra renewal challenge v1\x00nonce")
	if !ed25519.Verify(k.Public(), msg, k.Sign(msg)) {
		t.Error("Sign does not verify with ed25519.Verify")
	}
	const ctx = "palyra renewal challenge v1"
	sig, err := k.SignWithContext(ctx, msg)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		pub     ed25519.PublicKey
		ctx     string
		msg     []byte
		wantErr bool
	}{
		{"good", k.Public(), ctx, msg, false},
		{"other context", k.Public(), ctx + "x", msg, true},
		{"other message", k.Public(), ctx, []byte("other"), true},
		{"other key", newTestDeviceKey(t).Public(), ctx, msg, true},
		{"empty context", k.Public(), "", msg, true},
		{"short key", k.Public()[:16], ctx, msg, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if err := identity.VerifyWithContext(tt.pub, tt.ctx, tt.msg, sig); (err != nil) != tt.wantErr {
				t.Errorf("VerifyWithContext = %v, want error %v", err, tt.wantErr)
			}
		})
	}
	if ed25519.Verify(k.Public(), msg, sig) {
		t.Error("a context signature verifies as plain Ed25519")
	}
	if _, err := k.SignWithContext("", msg); err == nil {
		t.Error("SignWithContext accepted an empty context")
	}
}

func TestCreateCSR(t *testing.T) {
	t.Parallel()
	k := newTestDeviceKey(t)
	tests := []struct{ name, in, wantCN string }{
		{"named", "alice-laptop", "alice-laptop"},
		{"unnamed", "", k.ID().String()},
		{"unicode", "Zoë's laptop", "Zoë's laptop"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			der, err := k.CreateCSR(nil, tt.in)
			if err != nil {
				t.Fatal(err)
			}
			csr, err := x509.ParseCertificateRequest(der)
			if err != nil {
				t.Fatal(err)
			}
			if err := csr.CheckSignature(); err != nil {
				t.Errorf("CSR signature: %v", err)
			}
			if pub, ok := csr.PublicKey.(ed25519.PublicKey); !ok || !pub.Equal(k.Public()) {
				t.Errorf("CSR key %v, want the device key", csr.PublicKey)
			}
			if csr.Subject.CommonName != tt.wantCN {
				t.Errorf("CSR common name %q, want %q", csr.Subject.CommonName, tt.wantCN)
			}
		})
	}
	if _, err := k.CreateCSR(nil, "\xff"); err == nil {
		t.Error("CreateCSR accepted invalid UTF-8")
	}
}
