package identity

import (
	"crypto/ed25519"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
)

// gatewayURIPrefix starts the one URI of a gateway certificate; a device
// certificate's starts with deviceURIPrefix, so neither can pass for the
// other.
const gatewayURIPrefix = "urn:palyra:gateway:"

// MaxGatewayIDLen bounds a gateway ID (a DNS label's length).
const MaxGatewayIDLen = 63

// CheckGatewayID reports whether id can name a gateway: 1 to
// MaxGatewayIDLen lowercase letters, digits and hyphens, not starting or
// ending with a hyphen.
func CheckGatewayID(id string) error {
	if len(id) == 0 || len(id) > MaxGatewayIDLen {
		return fmt.Errorf("gateway ID %q has %d characters, want 1 to %d", id, len(id), MaxGatewayIDLen)
	}
	if id[0] == '-' || id[len(id)-1] == '-' {
		return fmt.Errorf("gateway ID %q starts or ends with a hyphen", id)
	}
	for i := range len(id) {
		c := id[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return fmt.Errorf("gateway ID %q contains %q; use lowercase letters, digits and hyphens", id, c)
		}
	}
	return nil
}

// IssueGatewayCertificate issues the certificate a gateway presents to the
// other gateways of its database, which share this CA: both ends of a
// gateway-to-gateway connection present one (mutual TLS), so it is for
// client and server authentication. Its role is in its one URI,
// urn:palyra:gateway:ID, with ID also its common name; it names no host
// (peers check the gateway ID they meant to reach, not a name) and is
// valid from Now minus [Backdate] for Lifetime (default
// [DefaultServerCertLifetime]: it is as unrevocable as a server
// certificate, so as short-lived).
//
// Errors wrap [ErrInvalidKey] for a key that is not Ed25519.
func (ca *CA) IssueGatewayCertificate(pub ed25519.PublicKey, gatewayID string, opts IssueOptions) (*x509.Certificate, error) {
	cert, err := ca.issueGateway(pub, gatewayID, opts)
	if err != nil {
		return nil, fmt.Errorf("issuing gateway certificate for %q: %w", gatewayID, err)
	}
	return cert, nil
}

func (ca *CA) issueGateway(pub ed25519.PublicKey, gatewayID string, opts IssueOptions) (*x509.Certificate, error) {
	if err := CheckGatewayID(gatewayID); err != nil {
		return nil, err
	}
	if err := checkDeviceEd25519Key(pub); err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: gatewayID},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:        []*url.URL{{Scheme: "urn", Opaque: strings.TrimPrefix(gatewayURIPrefix, "urn:") + gatewayID}},
	}
	cert, err := ca.sign(tmpl, pub, opts, DefaultServerCertLifetime)
	if err != nil {
		return nil, err
	}
	got, err := verifyGateway(ca.cert, [][]byte{cert.Raw}, opts.Now)
	if err != nil {
		return nil, fmt.Errorf("checking the issued certificate: %w", err)
	}
	if got != gatewayID {
		return nil, fmt.Errorf("checking the issued certificate: it names gateway %q, want %q", got, gatewayID)
	}
	return cert, nil
}

// VerifyGatewayCertificate verifies the certificates another gateway
// presented (leaf first) against the shared CA certificate at time now, and
// returns the gateway ID they prove. A gateway presents exactly one
// certificate, signed by caCert, valid at now, for both client and server
// authentication, whose one URI is urn:palyra:gateway:ID and whose common
// name is ID. A device certificate is refused: it is not a gateway's.
//
// Errors wrap [ErrUntrusted], [ErrExpired] or [ErrNotGatewayCertificate].
func VerifyGatewayCertificate(caCert *x509.Certificate, rawCerts [][]byte, now time.Time) (string, error) {
	id, err := verifyGateway(caCert, rawCerts, now)
	if err != nil {
		return "", fmt.Errorf("verifying gateway peer certificate: %w", err)
	}
	return id, nil
}

func verifyGateway(caCert *x509.Certificate, rawCerts [][]byte, now time.Time) (string, error) {
	switch len(rawCerts) {
	case 0:
		return "", fmt.Errorf("%w: no certificate was presented", ErrNotGatewayCertificate)
	case 1:
	default:
		return "", fmt.Errorf("%w: %d certificates were presented; a gateway presents only its own", ErrNotGatewayCertificate, len(rawCerts))
	}
	leaf, err := x509.ParseCertificate(rawCerts[0])
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrUntrusted, err)
	}
	// Both usages: the same certificate serves either end of a connection.
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if err := verifyChain(caCert, leaf, nil, now, usage); err != nil {
			if errors.Is(err, errWrongUsage) {
				return "", fmt.Errorf("%w: the certificate is not for both client and server authentication", ErrNotGatewayCertificate)
			}
			return "", err
		}
	}
	if leaf.IsCA || leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return "", fmt.Errorf("%w: the certificate is a CA certificate or its key may not sign", ErrNotGatewayCertificate)
	}
	if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) || !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
		return "", fmt.Errorf("%w: the certificate is not for both client and server authentication", ErrNotGatewayCertificate)
	}
	if _, ok := leaf.PublicKey.(ed25519.PublicKey); !ok {
		return "", fmt.Errorf("%w: the certificate's key is %s, gateway keys are Ed25519", ErrNotGatewayCertificate, keyTypeName(leaf.PublicKey))
	}
	if len(leaf.DNSNames)+len(leaf.IPAddresses)+len(leaf.EmailAddresses) != 0 || len(leaf.URIs) != 1 {
		return "", fmt.Errorf("%w: the certificate must name exactly one gateway URI and nothing else", ErrNotGatewayCertificate)
	}
	uri := leaf.URIs[0].String()
	id, ok := strings.CutPrefix(uri, gatewayURIPrefix)
	if !ok {
		if strings.HasPrefix(uri, deviceURIPrefix) {
			return "", fmt.Errorf("%w: it is a device's certificate (%s)", ErrNotGatewayCertificate, uri)
		}
		return "", fmt.Errorf("%w: the certificate names %q, not a gateway", ErrNotGatewayCertificate, uri)
	}
	if err := CheckGatewayID(id); err != nil {
		return "", fmt.Errorf("%w: %w", ErrNotGatewayCertificate, err)
	}
	if leaf.Subject.CommonName != id {
		return "", fmt.Errorf("%w: the certificate's common name is %q, but it names gateway %q", ErrNotGatewayCertificate, leaf.Subject.CommonName, id)
	}
	return id, nil
}
