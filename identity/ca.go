package identity

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/palyra/palyra-go/internal/atomicfile"
)

const (
	// CALifetime is how long a new gateway CA is valid.
	CALifetime = 10 * 365 * 24 * time.Hour

	// CACertFile and CAKeyFile are the file names LoadOrCreateCA uses in the
	// gateway's data directory.
	CACertFile = "ca.crt"
	CAKeyFile  = "ca.key"

	// caOrganization is the subject organization of every gateway CA.
	caOrganization = "Palyra"

	// maxNameLen is the longest CA name in characters (the X.520 upper
	// bound for a common name).
	maxNameLen = 64

	pemTypeCertificate = "CERTIFICATE"
)

// CA is a gateway's certificate authority: a self-signed Ed25519 certificate
// that may sign only end-entity certificates (path length 0), and its key.
// A CA never changes after it is made and is safe for concurrent use.
// Formatting or logging it never shows the key.
type CA struct {
	_    [0]func() // incomparable
	cert *x509.Certificate
	key  *secretKey
	fp   Fingerprint
}

// NewCA creates a CA named name (shown to people, for example
// "Palyra gateway on host"), valid from now minus [Backdate] for
// [CALifetime]. rand may be nil for crypto/rand.
func NewCA(rand io.Reader, name string, now time.Time) (*CA, error) {
	ca, err := newCA(rand, name, now)
	if err != nil {
		return nil, fmt.Errorf("creating CA: %w", err)
	}
	return ca, nil
}

func newCA(rand io.Reader, name string, now time.Time) (*CA, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if now.IsZero() {
		return nil, errors.New("the time is not set")
	}
	if rand == nil {
		rand = cryptoRand
	}
	pub, priv, err := ed25519.GenerateKey(rand)
	if err != nil {
		return nil, fmt.Errorf("generating key: %w", err)
	}
	serial, err := newSerial(rand)
	if err != nil {
		return nil, err
	}
	skid, err := subjectKeyID(pub)
	if err != nil {
		return nil, err
	}
	now = now.UTC().Truncate(time.Second)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{caOrganization}, CommonName: name},
		NotBefore:             now.Add(-Backdate),
		NotAfter:              now.Add(CALifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		SubjectKeyId:          skid,
		SignatureAlgorithm:    x509.PureEd25519,
	}
	der, err := x509.CreateCertificate(rand, tmpl, tmpl, pub, priv)
	if err != nil {
		return nil, fmt.Errorf("signing certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing the new certificate: %w", err)
	}
	return &CA{cert: cert, key: newSecretKey(priv), fp: CertificateFingerprint(der)}, nil
}

// ParseCA loads a CA from its PEM certificate and PEM PKCS#8 key, as
// MarshalPEM writes them. It checks that the certificate is a self-signed CA
// certificate with an Ed25519 key and that the key belongs to it; it does not
// check the validity period. Errors wrap [ErrInvalidCA] or [ErrInvalidKey].
func ParseCA(certPEM, keyPEM []byte) (*CA, error) {
	ca, err := parseCA(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("loading CA: %w", err)
	}
	return ca, nil
}

func parseCA(certPEM, keyPEM []byte) (*CA, error) {
	der, err := decodeSinglePEM(certPEM, pemTypeCertificate)
	if err != nil {
		return nil, fmt.Errorf("%w: certificate: %w", ErrInvalidCA, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("%w: certificate: %w", ErrInvalidCA, err)
	}
	if !cert.BasicConstraintsValid || !cert.IsCA {
		return nil, fmt.Errorf("%w: the certificate is not a CA certificate", ErrInvalidCA)
	}
	if cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("%w: the certificate may not sign certificates (key usage)", ErrInvalidCA)
	}
	caPub, ok := cert.PublicKey.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: the certificate's key is %s, want Ed25519", ErrInvalidCA, keyTypeName(cert.PublicKey))
	}
	if err := cert.CheckSignatureFrom(cert); err != nil {
		return nil, fmt.Errorf("%w: the certificate is not self-signed: %w", ErrInvalidCA, err)
	}
	priv, err := parseEd25519KeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("key: %w", err)
	}
	if !caPub.Equal(priv.Public()) {
		return nil, fmt.Errorf("%w: the key does not belong to the certificate", ErrInvalidCA)
	}
	return &CA{cert: cert, key: newSecretKey(priv), fp: CertificateFingerprint(cert.Raw)}, nil
}

// MarshalPEM returns the CA certificate and key in PEM. keyPEM is secret.
func (ca *CA) MarshalPEM() (certPEM, keyPEM []byte, err error) {
	keyPEM, err = marshalEd25519KeyPEM(ca.key.priv)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding CA key: %w", err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: pemTypeCertificate, Bytes: ca.cert.Raw})
	return certPEM, keyPEM, nil
}

// Certificate returns the CA certificate. Callers must not modify it.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// Fingerprint returns the SHA-256 of the CA certificate's DER, the CA pin in
// pairing links.
func (ca *CA) Fingerprint() Fingerprint { return ca.fp }

// Name returns the CA's name (its subject common name).
func (ca *CA) Name() string { return ca.cert.Subject.CommonName }

// Pool returns a new pool holding only the CA certificate, for
// tls.Config.RootCAs or ClientCAs.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// String returns the CA's name and fingerprint, never key material.
//
// String, Format and LogValue have value receivers so that a CA value is as
// safe to print as a pointer to one.
func (ca CA) String() string {
	if ca.cert == nil {
		return "CA(none)"
	}
	return fmt.Sprintf("CA(%q, %s)", ca.cert.Subject.CommonName, ca.fp)
}

// Format prints String for every verb.
func (ca CA) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, ca.String()) }

// LogValue logs the name and fingerprint.
func (ca CA) LogValue() slog.Value {
	if ca.cert == nil {
		return slog.StringValue("none")
	}
	return slog.GroupValue(slog.String("name", ca.cert.Subject.CommonName), slog.String("fingerprint", ca.fp.String()))
}

// LoadOrCreateCA loads the CA from [CACertFile] and [CAKeyFile] in dir, or,
// when neither exists, creates one named name with crypto/rand and writes
// both (the key with mode 0600, the certificate 0644, each atomically; dir is
// created 0700 if missing). created reports which happened; name is used
// only when creating.
//
// It refuses a key file that group or others may read, a CA that is not
// valid at now, and a directory holding only one of the two files: making a
// new CA there would silently break every paired device. LoadOrCreateCA is
// not safe against another process creating a CA in the same directory at
// the same time; the gateway owns its data directory.
func LoadOrCreateCA(dir, name string, now time.Time) (ca *CA, created bool, err error) {
	ca, created, err = loadOrCreateCA(dir, name, now)
	if err != nil {
		return nil, false, fmt.Errorf("loading or creating CA in %s: %w", dir, err)
	}
	return ca, created, nil
}

func loadOrCreateCA(dir, name string, now time.Time) (*CA, bool, error) {
	if now.IsZero() {
		return nil, false, errors.New("the time is not set")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, err
	}
	certPath, keyPath := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	keyPEM, keyErr := readPrivateFile(keyPath)
	certPEM, certErr := os.ReadFile(certPath)
	keyMissing, certMissing := errors.Is(keyErr, fs.ErrNotExist), errors.Is(certErr, fs.ErrNotExist)
	switch {
	case keyMissing && certMissing:
		ca, err := newCA(nil, name, now)
		if err != nil {
			return nil, false, err
		}
		certPEM, keyPEM, err := ca.MarshalPEM()
		if err != nil {
			return nil, false, err
		}
		if err := atomicfile.Write(keyPath, keyPEM, 0o600); err != nil {
			return nil, false, fmt.Errorf("writing CA key: %w", err)
		}
		if err := atomicfile.Write(certPath, certPEM, 0o644); err != nil {
			return nil, false, fmt.Errorf("writing CA certificate: %w", err)
		}
		return ca, true, nil
	case keyMissing != certMissing:
		have, missing := CAKeyFile, CACertFile
		if keyMissing {
			have, missing = CACertFile, CAKeyFile
		}
		return nil, false, fmt.Errorf("%w: found %s but not %s; restore the missing file, or remove both to create a new CA (every paired device must then pair again)",
			ErrInvalidCA, have, missing)
	case keyErr != nil:
		return nil, false, keyErr
	case certErr != nil:
		return nil, false, certErr
	}
	ca, err := parseCA(certPEM, keyPEM)
	if err != nil {
		return nil, false, err
	}
	if err := checkValidAt(ca.cert, now, "the CA certificate"); err != nil {
		return nil, false, err
	}
	return ca, false, nil
}

// readPrivateFile reads a file that must not be readable by group or others.
func readPrivateFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	// Windows has no Unix permission bits; there the data directory's ACL
	// protects the key.
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s has mode %04o, so group or others may read the CA key; make it private with: chmod 600 %s",
			path, fi.Mode().Perm(), path)
	}
	return io.ReadAll(f)
}

// decodeSinglePEM decodes exactly one PEM block of type typ, allowing only
// white space around it.
func decodeSinglePEM(b []byte, typ string) ([]byte, error) {
	block, rest := pem.Decode(b)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	if block.Type != typ {
		return nil, fmt.Errorf("PEM block is %q, want %q", block.Type, typ)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("unexpected data after the PEM block")
	}
	return block.Bytes, nil
}

// checkName checks a name that goes into a certificate subject.
func checkName(name string) error {
	switch {
	case strings.TrimSpace(name) == "":
		return errors.New("the name is empty")
	case !utf8.ValidString(name):
		return errors.New("the name is not valid UTF-8")
	case utf8.RuneCountInString(name) > maxNameLen:
		return fmt.Errorf("the name has %d characters, at most %d are allowed", utf8.RuneCountInString(name), maxNameLen)
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return errors.New("the name contains control characters")
	case name != strings.TrimSpace(name):
		return errors.New("the name starts or ends with white space")
	}
	return nil
}

// newSerial returns a positive 16-byte serial number with 126 random bits.
func newSerial(rand io.Reader) (*big.Int, error) {
	var b [16]byte
	if _, err := io.ReadFull(rand, b[:]); err != nil {
		return nil, fmt.Errorf("generating serial number: %w", err)
	}
	// Clear the sign bit and set the next one, so the DER encoding is
	// always 16 octets and positive.
	b[0] = b[0]&0x3f | 0x40
	return new(big.Int).SetBytes(b[:]), nil
}

// subjectKeyID is RFC 7093 method 1: the leftmost 160 bits of the SHA-256 of
// the subjectPublicKey bit string.
func subjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidKey, err)
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &spki); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidKey, err)
	}
	sum := sha256.Sum256(spki.PublicKey.Bytes)
	return sum[:20], nil
}
