package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

const (
	// DefaultDeviceCertLifetime is how long a device certificate is valid
	// when IssueOptions.Lifetime is zero. Nodes renew at about 2/3 of it.
	DefaultDeviceCertLifetime = 24 * time.Hour

	// DefaultServerCertLifetime is how long the gateway's TLS server
	// certificate is valid when IssueOptions.Lifetime is zero. Nothing can
	// revoke a server certificate, so it is short-lived in the CA/Browser
	// Forum's sense (at most 7 days including Backdate), which is also why
	// it needs no revocation information. Nodes trust the CA, not this
	// certificate, so the gateway reissues it (at about 2/3 of its
	// lifetime, through tls.Config.GetCertificate) without anyone noticing.
	DefaultServerCertLifetime = 6 * 24 * time.Hour

	// Backdate is how far before the issuing time a certificate becomes
	// valid, to absorb clock skew between gateway and nodes.
	Backdate = time.Minute
)

// IssueOptions are the inputs of one issuance besides the subject.
type IssueOptions struct {
	// Now is the issuing time. Required.
	Now time.Time
	// Lifetime is how long after Now the certificate is valid: zero means
	// the default for the kind of certificate. It never extends past the
	// CA's own expiry.
	Lifetime time.Duration
	// Rand supplies the serial number; nil means crypto/rand.
	Rand io.Reader
}

// IssueDeviceCertificate issues a device certificate for the key in a DER
// certificate signing request.
//
// The request's signature must verify and its key must be an Ed25519 device
// key. The identity comes only from that key: the certificate's subject
// common name is the key's DeviceID and its only subject alternative name is
// [DeviceID.URI]. Whatever subject, names or extensions the request asks for
// are ignored. The certificate is for client authentication (key usage
// digitalSignature, extended key usage clientAuth), valid from Now minus
// [Backdate] for Lifetime (default [DefaultDeviceCertLifetime]).
//
// Errors wrap [ErrInvalidCSR], or [ErrExpired] when the CA is not valid at Now.
func (ca *CA) IssueDeviceCertificate(csrDER []byte, opts IssueOptions) (*x509.Certificate, error) {
	cert, err := ca.issueDevice(csrDER, opts)
	if err != nil {
		return nil, fmt.Errorf("issuing device certificate: %w", err)
	}
	return cert, nil
}

func (ca *CA) issueDevice(csrDER []byte, opts IssueOptions) (*x509.Certificate, error) {
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidCSR, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: the request's signature does not verify: %w", ErrInvalidCSR, err)
	}
	pub, ok := csr.PublicKey.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: the request's key is %s, device keys are Ed25519", ErrInvalidCSR, keyTypeName(csr.PublicKey))
	}
	if err := checkDeviceEd25519Key(pub); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidCSR, err)
	}
	id := DeviceIDFromPublicKey(pub)
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: id.String()},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		URIs:        []*url.URL{id.uri()},
	}
	cert, err := ca.sign(tmpl, pub, opts, DefaultDeviceCertLifetime)
	if err != nil {
		return nil, err
	}
	// The last stage of the pipeline: what was signed must verify as the
	// device it was issued to.
	got, err := verifyDevice(ca.cert, [][]byte{cert.Raw}, opts.Now)
	if err != nil {
		return nil, fmt.Errorf("checking the issued certificate: %w", err)
	}
	if got != id {
		return nil, fmt.Errorf("checking the issued certificate: it names device %s, want %s", got, id)
	}
	return cert, nil
}

// IssueServerCertificate issues the gateway's TLS server certificate for pub
// (Ed25519, or ECDSA P-256 or P-384), naming every host in hosts, its listen
// addresses: DNS names (for example "gateway.example.com" or "localhost",
// normalized to lower case) or IP literals ("192.0.2.7", "::1"). The names
// are only in the subject alternative name; the subject is empty, as the
// CA/Browser Forum recommends, so name, the gateway's name, labels errors
// only (the CA certificate carries it). The certificate is for server
// authentication only, valid from Now minus [Backdate] for Lifetime (default
// [DefaultServerCertLifetime]).
func (ca *CA) IssueServerCertificate(pub crypto.PublicKey, name string, hosts []string, opts IssueOptions) (*x509.Certificate, error) {
	cert, err := ca.issueServer(pub, hosts, opts)
	if err != nil {
		if name != "" {
			return nil, fmt.Errorf("issuing server certificate for gateway %q: %w", name, err)
		}
		return nil, fmt.Errorf("issuing server certificate: %w", err)
	}
	return cert, nil
}

func (ca *CA) issueServer(pub crypto.PublicKey, hosts []string, opts IssueOptions) (*x509.Certificate, error) {
	if err := checkServerKey(pub); err != nil {
		return nil, err
	}
	dnsNames, ips, err := parseHosts(hosts)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    dnsNames,
		IPAddresses: ips,
	}
	cert, err := ca.sign(tmpl, pub, opts, DefaultServerCertLifetime)
	if err != nil {
		return nil, err
	}
	if err := verifyServer(ca.cert, [][]byte{cert.Raw}, "", opts.Now); err != nil {
		return nil, fmt.Errorf("checking the issued certificate: %w", err)
	}
	return cert, nil
}

// sign fills in what every certificate the CA issues shares (serial,
// validity, key identifiers, basic constraints) and signs tmpl for pub.
func (ca *CA) sign(tmpl *x509.Certificate, pub crypto.PublicKey, opts IssueOptions, defaultLifetime time.Duration) (*x509.Certificate, error) {
	notBefore, notAfter, err := ca.validity(opts, defaultLifetime)
	if err != nil {
		return nil, err
	}
	rand := opts.Rand
	if rand == nil {
		rand = cryptoRand
	}
	serial, err := newSerial(rand)
	if err != nil {
		return nil, err
	}
	skid, err := subjectKeyID(pub)
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore, tmpl.NotAfter = notBefore, notAfter
	tmpl.BasicConstraintsValid = true
	tmpl.IsCA = false
	tmpl.SubjectKeyId = skid
	tmpl.AuthorityKeyId = ca.cert.SubjectKeyId
	tmpl.SignatureAlgorithm = x509.PureEd25519
	der, err := x509.CreateCertificate(rand, tmpl, ca.cert, pub, ca.key.priv)
	if err != nil {
		return nil, fmt.Errorf("signing certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing the issued certificate: %w", err)
	}
	return cert, nil
}

// validity returns a certificate's validity period for opts: from Now minus
// Backdate for the lifetime, clipped to the CA's own validity.
func (ca *CA) validity(opts IssueOptions, defaultLifetime time.Duration) (notBefore, notAfter time.Time, err error) {
	if opts.Now.IsZero() {
		return time.Time{}, time.Time{}, errors.New("IssueOptions.Now is not set")
	}
	lifetime := opts.Lifetime
	switch {
	case lifetime == 0:
		lifetime = defaultLifetime
	case lifetime < 0:
		return time.Time{}, time.Time{}, fmt.Errorf("the lifetime %v is negative", lifetime)
	}
	now := opts.Now.UTC().Truncate(time.Second)
	if err := checkValidAt(ca.cert, now, "the CA certificate"); err != nil {
		return time.Time{}, time.Time{}, err
	}
	notBefore, notAfter = now.Add(-Backdate), now.Add(lifetime)
	if notBefore.Before(ca.cert.NotBefore) {
		notBefore = ca.cert.NotBefore
	}
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter
	}
	return notBefore, notAfter, nil
}

// checkServerKey accepts the key types a gateway's TLS key may have.
func checkServerKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		return checkDeviceEd25519Key(k)
	case *ecdsa.PublicKey:
		if k != nil && (k.Curve == elliptic.P256() || k.Curve == elliptic.P384()) {
			return nil
		}
	}
	return fmt.Errorf("%w: the server key is %s, want Ed25519 or ECDSA P-256 or P-384", ErrInvalidKey, keyTypeName(pub))
}

// parseHosts sorts hosts into DNS names and IP addresses, normalized and
// without duplicates.
func parseHosts(hosts []string) (dnsNames []string, ips []net.IP, err error) {
	if len(hosts) == 0 {
		return nil, nil, errors.New("no host names or addresses given")
	}
	seen := make(map[string]bool, len(hosts))
	for _, h := range hosts {
		name, ip, err := parseHost(h)
		if err != nil {
			return nil, nil, err
		}
		key := name
		if ip.IsValid() {
			key = ip.String()
		}
		if seen[key] {
			continue
		}
		seen[key] = true
		if ip.IsValid() {
			ips = append(ips, net.IP(ip.AsSlice()))
		} else {
			dnsNames = append(dnsNames, name)
		}
	}
	return dnsNames, ips, nil
}

// parseHost parses one host: an IP literal (brackets allowed, no zone) or a
// DNS name (letters, digits and hyphens in dot-separated labels; case and a
// trailing dot are normalized away).
func parseHost(h string) (string, netip.Addr, error) {
	if h == "" {
		return "", netip.Addr{}, errors.New("a host name is empty")
	}
	lit := strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	if ip, err := netip.ParseAddr(lit); err == nil {
		if ip.Zone() != "" {
			return "", netip.Addr{}, fmt.Errorf("address %q has a zone, which a certificate cannot name", h)
		}
		return "", ip.Unmap(), nil
	}
	name := strings.ToLower(strings.TrimSuffix(h, "."))
	if err := checkDNSName(name); err != nil {
		return "", netip.Addr{}, fmt.Errorf("%q is neither an IP address nor a valid DNS name: %w", h, err)
	}
	return name, netip.Addr{}, nil
}

// checkDNSName checks a lowercase DNS host name (RFC 1123), without
// wildcards.
func checkDNSName(name string) error {
	if len(name) == 0 || len(name) > 253 {
		return fmt.Errorf("it has %d characters, want 1 to 253", len(name))
	}
	for label := range strings.SplitSeq(name, ".") {
		if len(label) == 0 || len(label) > 63 {
			return fmt.Errorf("label %q must have 1 to 63 characters", label)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("label %q starts or ends with a hyphen", label)
		}
		for i := range len(label) {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
				return fmt.Errorf("label %q contains %q", label, c)
			}
		}
	}
	if last := name[strings.LastIndexByte(name, '.')+1:]; strings.Trim(last, "0123456789") == "" {
		return errors.New("the last label is all digits")
	}
	return nil
}
