package node

import "crypto/x509"

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
