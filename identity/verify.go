package identity

import (
	"crypto/ed25519"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// VerifyDeviceCertificate verifies the certificates a device presented (leaf
// first, as crypto/tls passes rawCerts) against the gateway's CA certificate
// at time now, and returns the DeviceID they prove.
//
// A device presents exactly one certificate, signed by caCert, valid at now,
// for client authentication, with an Ed25519 key whose DeviceID is both its
// common name and its URI subject alternative name. This is the one function
// that turns a presented certificate into a DeviceID; revocation is the
// caller's to check (see [ErrRevoked]).
//
// Errors wrap [ErrUntrusted], [ErrExpired] or [ErrNotDeviceCertificate].
func VerifyDeviceCertificate(caCert *x509.Certificate, rawCerts [][]byte, now time.Time) (DeviceID, error) {
	id, err := verifyDevice(caCert, rawCerts, now)
	if err != nil {
		return DeviceID{}, fmt.Errorf("verifying device certificate: %w", err)
	}
	return id, nil
}

func verifyDevice(caCert *x509.Certificate, rawCerts [][]byte, now time.Time) (DeviceID, error) {
	switch len(rawCerts) {
	case 0:
		return DeviceID{}, fmt.Errorf("%w: no certificate was presented", ErrNotDeviceCertificate)
	case 1:
	default:
		return DeviceID{}, fmt.Errorf("%w: %d certificates were presented; a device presents only its own", ErrNotDeviceCertificate, len(rawCerts))
	}
	leaf, err := x509.ParseCertificate(rawCerts[0])
	if err != nil {
		return DeviceID{}, fmt.Errorf("%w: %w", ErrUntrusted, err)
	}
	if err := verifyChain(caCert, leaf, nil, now, x509.ExtKeyUsageClientAuth); err != nil {
		if errors.Is(err, errWrongUsage) {
			return DeviceID{}, fmt.Errorf("%w: the certificate is not for client authentication", ErrNotDeviceCertificate)
		}
		return DeviceID{}, err
	}
	return deviceIDOf(leaf)
}

// deviceIDOf checks that a verified leaf is a device certificate and returns
// its DeviceID.
func deviceIDOf(leaf *x509.Certificate) (DeviceID, error) {
	if leaf.IsCA {
		return DeviceID{}, fmt.Errorf("%w: the certificate is a CA certificate", ErrNotDeviceCertificate)
	}
	if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
		return DeviceID{}, fmt.Errorf("%w: the certificate is not for client authentication", ErrNotDeviceCertificate)
	}
	if leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return DeviceID{}, fmt.Errorf("%w: the certificate's key may not sign (key usage)", ErrNotDeviceCertificate)
	}
	pub, ok := leaf.PublicKey.(ed25519.PublicKey)
	if !ok {
		return DeviceID{}, fmt.Errorf("%w: the certificate's key is %s, device keys are Ed25519", ErrNotDeviceCertificate, keyTypeName(leaf.PublicKey))
	}
	id := DeviceIDFromPublicKey(pub)
	for _, u := range leaf.URIs {
		if strings.HasPrefix(u.String(), gatewayURIPrefix) {
			return DeviceID{}, fmt.Errorf("%w: it is a gateway's certificate (%s)", ErrNotDeviceCertificate, u)
		}
	}
	if len(leaf.DNSNames)+len(leaf.IPAddresses)+len(leaf.EmailAddresses) != 0 || len(leaf.URIs) != 1 {
		return DeviceID{}, fmt.Errorf("%w: the certificate must name exactly one device URI and nothing else", ErrNotDeviceCertificate)
	}
	if got := leaf.URIs[0].String(); got != id.URI() {
		return DeviceID{}, fmt.Errorf("%w: the certificate names %q, but its key belongs to device %s", ErrNotDeviceCertificate, got, id)
	}
	if got := leaf.Subject.CommonName; got != id.String() {
		return DeviceID{}, fmt.Errorf("%w: the certificate's common name is %q, but its key belongs to device %s", ErrNotDeviceCertificate, got, id)
	}
	return id, nil
}

// VerifyServerCertificate verifies the certificates a gateway presented
// (leaf first) against a CA certificate the node pinned, at time now: the
// leaf must chain to caCert and be for server authentication, and, when host
// is not empty, name host (a DNS name or an IP literal, without port).
//
// Errors wrap [ErrUntrusted], [ErrExpired] or [ErrNotServerCertificate].
func VerifyServerCertificate(caCert *x509.Certificate, rawCerts [][]byte, host string, now time.Time) error {
	if err := verifyServer(caCert, rawCerts, host, now); err != nil {
		return fmt.Errorf("verifying gateway certificate: %w", err)
	}
	return nil
}

func verifyServer(caCert *x509.Certificate, rawCerts [][]byte, host string, now time.Time) error {
	if len(rawCerts) == 0 {
		return fmt.Errorf("%w: no certificate was presented", ErrNotServerCertificate)
	}
	leaf, err := x509.ParseCertificate(rawCerts[0])
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUntrusted, err)
	}
	var intermediates *x509.CertPool
	if len(rawCerts) > 1 {
		intermediates = x509.NewCertPool()
		for _, raw := range rawCerts[1:] {
			c, err := x509.ParseCertificate(raw)
			if err != nil {
				return fmt.Errorf("%w: %w", ErrUntrusted, err)
			}
			intermediates.AddCert(c)
		}
	}
	if err := verifyChain(caCert, leaf, intermediates, now, x509.ExtKeyUsageServerAuth); err != nil {
		if errors.Is(err, errWrongUsage) {
			return fmt.Errorf("%w: the certificate is not for server authentication", ErrNotServerCertificate)
		}
		return err
	}
	if leaf.IsCA || !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		return fmt.Errorf("%w: the certificate is not for server authentication", ErrNotServerCertificate)
	}
	if host != "" {
		if err := leaf.VerifyHostname(host); err != nil {
			return fmt.Errorf("%w: the certificate is not for %q: %w", ErrNotServerCertificate, host, err)
		}
	}
	return nil
}

// errWrongUsage marks a chain that is trusted but not for the usage asked.
var errWrongUsage = errors.New("wrong extended key usage")

// verifyChain verifies leaf against caCert at now for usage, with messages a
// person understands for the usual failures.
func verifyChain(caCert, leaf *x509.Certificate, intermediates *x509.CertPool, now time.Time, usage x509.ExtKeyUsage) error {
	if caCert == nil {
		return fmt.Errorf("%w: no CA certificate to verify against", ErrUntrusted)
	}
	if now.IsZero() {
		return errors.New("the time is not set")
	}
	if err := checkValidAt(leaf, now, "the certificate"); err != nil {
		return err
	}
	roots := x509.NewCertPool()
	roots.AddCert(caCert)
	_, err := leaf.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: intermediates,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{usage},
	})
	if err == nil {
		return nil
	}
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &unknown):
		return fmt.Errorf("%w: the certificate is not signed by this gateway's CA", ErrUntrusted)
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		// The leaf's own period was checked above, so the CA's is at fault.
		if err := checkValidAt(caCert, now, "the CA certificate"); err != nil {
			return err
		}
		return fmt.Errorf("%w: %w", ErrExpired, err)
	case errors.As(err, &invalid) && invalid.Reason == x509.IncompatibleUsage:
		return errWrongUsage
	default:
		return fmt.Errorf("%w: %w", ErrUntrusted, err)
	}
}

// checkValidAt reports, wrapping ErrExpired, when now is outside c's
// validity period; what names c in the message.
func checkValidAt(c *x509.Certificate, now time.Time, what string) error {
	switch {
	case now.Before(c.NotBefore):
		return fmt.Errorf("%w: %s is not valid until %s (is this computer's clock right?)",
			ErrExpired, what, c.NotBefore.UTC().Format(time.RFC3339))
	case now.After(c.NotAfter):
		return fmt.Errorf("%w: %s expired at %s", ErrExpired, what, c.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}
