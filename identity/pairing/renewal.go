package pairing

import (
	"crypto/sha256"

	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/identity/cpace"
)

// RenewalContext is the Ed25519ctx context of the signature a device makes
// to renew a certificate that ran out; the context keeps the signature from
// being valid for anything else the device key signs.
const RenewalContext = "palyra renew-expired v1"

// RenewalMessage is what the device signs: the gateway's fresh challenge,
// the gateway's TLS certificate as the device saw it, and the certificate
// request, so the signature is good for this exchange only.
func RenewalMessage(challenge []byte, tlsCert identity.Fingerprint, csrDER []byte) []byte {
	sum := sha256.Sum256(csrDER)
	return cpace.LVCat([]byte(RenewalContext), challenge, tlsCert[:], sum[:])
}
