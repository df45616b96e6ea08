package node

import (
	"crypto/tls"
	"crypto/x509"
	"time"

	"github.com/palyra/palyra-go/node/carrier"
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
// that trusts it as the node does (carrier.PinnedTLS), speaking alpn. It
// offers no client certificate: it is for probing a gateway (palyra
// doctor) without the device key. seen, if not nil, is given the gateway's
// certificate before it is verified, so a probe can describe what
// answered. A nil ca accepts any certificate, for a probe that can only
// describe it.
func PinnedTLSConfig(host string, ca *x509.Certificate, alpn string, seen func(*x509.Certificate)) *tls.Config {
	conf := carrier.PinnedTLS(host, ca, time.Now, seen)
	conf.NextProtos = []string{alpn}
	return conf
}
