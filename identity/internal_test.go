package identity

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"slices"
	"testing"
	"time"
)

// TestLuhn32Vectors checks the check-character algorithm against values
// published for syncthing's device IDs (13-character chunks; the algorithm
// does not depend on the chunk length).
func TestLuhn32Vectors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want byte
	}{
		// syncthing's example ID P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2.
		{"P56IOI7MZJNU2", 'Y'},
		{"IQGDREYDM2MGT", 'I'},
		{"MGL3BXNPQ6W5B", 'M'},
		{"TBBZ4TJXZWICQ", '2'},
		// syncspirit's luhn32 tests.
		{"WG2IWWALPC2HZ", 'H'},
		{"KHQNO2S5QSILR", 'K'},
		{"MFZWI3DBONSGY", 'C'},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			if got := luhn32([]byte(tt.in)); got != tt.want {
				t.Errorf("luhn32(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestSmallOrderEd25519List derives the encodings of the small-order points
// of edwards25519 from the curve equation and compares them with the
// package's list.
func TestSmallOrderEd25519List(t *testing.T) {
	t.Parallel()
	p := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	mod := func(x *big.Int) *big.Int { return x.Mod(x, p) }
	inv := func(x *big.Int) *big.Int { return new(big.Int).ModInverse(x, p) }
	// d = -121665/121666
	d := mod(new(big.Int).Mul(big.NewInt(-121665), inv(big.NewInt(121666))))
	one := big.NewInt(1)

	// Points of order 1, 2 and 4 have y = 1, -1, 0. Doubling an order-8
	// point gives an order-4 point (y = 0), which happens when x² = -y²;
	// with -x² + y² = 1 + d·x²·y² that is d·y⁴ + 2y² - 1 = 0.
	ys := []*big.Int{big.NewInt(0), big.NewInt(1), new(big.Int).Sub(p, one)}
	s := new(big.Int).ModSqrt(mod(new(big.Int).Add(one, d)), p)
	if s == nil {
		t.Fatal("1+d has no square root")
	}
	for _, sign := range []int64{1, -1} {
		y2 := mod(new(big.Int).Mul(mod(new(big.Int).Add(big.NewInt(-1), new(big.Int).Mul(big.NewInt(sign), s))), inv(d)))
		y := new(big.Int).ModSqrt(y2, p)
		if y == nil {
			continue
		}
		for _, y := range []*big.Int{y, new(big.Int).Sub(p, y)} {
			// x² = (y² - 1) / (d·y² + 1) must have a root for a point.
			num := mod(new(big.Int).Sub(new(big.Int).Mul(y, y), one))
			den := mod(new(big.Int).Add(new(big.Int).Mul(d, new(big.Int).Mul(y, y)), one))
			if new(big.Int).ModSqrt(mod(num.Mul(num, inv(den))), p) != nil {
				ys = append(ys, y)
			}
		}
	}
	// Non-canonical encodings y+p that still fit in 255 bits.
	limit := new(big.Int).Lsh(one, 255)
	for _, y := range slices.Clone(ys) {
		if yp := new(big.Int).Add(y, p); yp.Cmp(limit) < 0 {
			ys = append(ys, yp)
		}
	}

	var want [][32]byte
	for _, y := range ys {
		var enc [32]byte
		be := y.FillBytes(make([]byte, 32))
		for i := range enc {
			enc[i] = be[31-i]
		}
		want = append(want, enc)
	}
	got := smallOrderEd25519[:]
	cmp := func(a, b [32]byte) int { return slices.Compare(a[:], b[:]) }
	slices.SortFunc(want, cmp)
	sorted := slices.Clone(got)
	slices.SortFunc(sorted, cmp)
	if !slices.Equal(sorted, want) {
		t.Errorf("small-order list:\n got %x\nwant %x", sorted, want)
	}
}

// identitySigner claims a small-order public key and "signs" with R = the
// identity point and S = 0, which Ed25519 verification accepts for the
// identity point as key, whatever the message.
type identitySigner struct{ pub ed25519.PublicKey }

func (s identitySigner) Public() crypto.PublicKey { return s.pub }

func (s identitySigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	sig := make([]byte, ed25519.SignatureSize)
	sig[0] = 1
	return sig, nil
}

// TestIssueDeviceCertificateRejectsSmallOrderKey shows why the small-order
// check exists: a CSR for the identity point verifies without any private
// key, and the CA must still refuse it.
func TestIssueDeviceCertificateRejectsSmallOrderKey(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, time.November, 2, 10, 30, 0, 0, time.UTC)
	ca, err := NewCA(rand.Reader, "test", now)
	if err != nil {
		t.Fatal(err)
	}
	pub := make(ed25519.PublicKey, ed25519.PublicKeySize)
	pub[0] = 1 // the identity point
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "nobody"},
	}, identitySigner{pub})
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		t.Fatal(err)
	}
	if err := csr.CheckSignature(); err != nil {
		t.Fatalf("the forged CSR should verify, showing the danger: %v", err)
	}
	_, err = ca.IssueDeviceCertificate(csrDER, IssueOptions{Now: now})
	if !errors.Is(err, ErrInvalidCSR) || !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("IssueDeviceCertificate = %v, want ErrInvalidCSR and ErrInvalidKey", err)
	}
}

func TestCheckDeviceEd25519Key(t *testing.T) {
	t.Parallel()
	good, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	type keyCase struct {
		name string
		pub  ed25519.PublicKey
		ok   bool
	}
	tests := []keyCase{
		{"generated", good, true},
		{"short", good[:31], false},
	}
	for i, bad := range smallOrderEd25519 {
		signed := bad
		signed[31] |= 0x80
		tests = append(tests,
			keyCase{name: fmt.Sprintf("small order %d", i), pub: bad[:]},
			keyCase{name: fmt.Sprintf("small order %d with sign bit", i), pub: signed[:]})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := checkDeviceEd25519Key(tt.pub)
			if (err == nil) != tt.ok {
				t.Errorf("checkDeviceEd25519Key = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
