package identity_test

import (
	"testing"

	"github.com/palyra/palyra-go/identity"
)

func BenchmarkIssueDeviceCertificate(b *testing.B) {
	ca := newTestCA(b, "gw")
	csr, err := newTestDeviceKey(b).CreateCSR(nil, "laptop")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ca.IssueDeviceCertificate(csr, identity.IssueOptions{Now: testNow}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyDeviceCertificate(b *testing.B) {
	ca := newTestCA(b, "gw")
	chain := [][]byte{issueDevice(b, ca, newTestDeviceKey(b)).Raw}
	caCert := ca.Certificate()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := identity.VerifyDeviceCertificate(caCert, chain, testNow); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseDeviceID(b *testing.B) {
	s := newTestDeviceKey(b).ID().String()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := identity.ParseDeviceID(s); err != nil {
			b.Fatal(err)
		}
	}
}
