package node

import (
	"crypto/tls"
	"crypto/x509"
	"net/netip"
	"time"

	"github.com/palyra/palyra-go/identity"
)

// PinnedCA returns the certificate authority of the gateway the agent is
// paired with (the one it trusts), or nil while it is unpaired. The desktop
// app's local gateway uses it to tell "paired with me" from "paired
// elsewhere".
func (a *Agent) PinnedCA() *x509.Certificate {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cert == nil {
		return nil
	}
	return a.ca
}

// PinnedTLSConfig is a TLS client configuration for the gateway at host
// that trusts it as the node does: addresses may be IP literals the
// certificate names as IP SANs, and trust is ca, the CA pinned when
// pairing, not the system roots, so verification is
// VerifyPeerCertificate's, with identity's rules. It offers no client
// certificate: it is for probing a gateway (palyra doctor) without the
// device key. seen, if not nil, is given the gateway's certificate before
// it is verified, so a probe can describe what answered. A nil ca accepts
// any certificate, for a probe that can only describe it.
func PinnedTLSConfig(host string, ca *x509.Certificate, alpn string, seen func(*x509.Certificate)) *tls.Config {
	conf := &tls.Config{
		MinVersion:         tls.VersionTLS13,
		NextProtos:         []string{alpn},
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(rawCerts [][]byte, _ [][]*x509.Certificate) error {
			if seen != nil && len(rawCerts) > 0 {
				if leaf, err := x509.ParseCertificate(rawCerts[0]); err == nil {
					seen(leaf)
				}
			}
			if ca == nil {
				return nil
			}
			return identity.VerifyServerCertificate(ca, rawCerts, host, time.Now())
		},
	}
	if _, err := netip.ParseAddr(host); err != nil {
		conf.ServerName = host
	}
	return conf
}
