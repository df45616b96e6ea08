package node

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"

	"github.com/palyra/palyra-go/identity/secretstore"
)

// Items of the secret store that hold the pairing's certificates, for
// tools that inspect a node (palyra doctor) and their tests. The device
// key's item is the agent's alone.
const (
	SecretDeviceCert = itemCert
	SecretGatewayCA  = itemCA
)

// StoredDeviceCertificate reads the device certificate the agent stored in
// secrets when pairing (or renewing); a node that never paired has none
// (secretstore.ErrNotFound).
func StoredDeviceCertificate(secrets secretstore.Store) (*x509.Certificate, error) {
	return storedCertificate(secrets, SecretDeviceCert)
}

// StoredPinnedCA reads the gateway CA the agent pinned when pairing, from
// secrets.
func StoredPinnedCA(secrets secretstore.Store) (*x509.Certificate, error) {
	return storedCertificate(secrets, SecretGatewayCA)
}

func storedCertificate(secrets secretstore.Store, item string) (*x509.Certificate, error) {
	b, err := secrets.Get(item)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%q in the secret store is not a PEM certificate", item)
	}
	return x509.ParseCertificate(block.Bytes)
}
