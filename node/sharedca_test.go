package node

import (
	"bytes"
	"runtime"
	"testing"
)

// TestSharedCA: agents that load one CA certificate share one parse of
// it, a different certificate gets its own, and the entry goes once no
// agent holds the certificate.
func TestSharedCA(t *testing.T) {
	der := longLivedCertificate(t).Certificate[0]
	first, err := sharedCA(der)
	if err != nil {
		t.Fatal(err)
	}
	second, err := sharedCA(bytes.Clone(der))
	if err != nil {
		t.Fatal(err)
	}
	if first != second {
		t.Error("a second load of the same CA parsed it again")
	}
	other, err := sharedCA(longLivedCertificate(t).Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if other == first {
		t.Error("another CA got the first one's parse")
	}
	if _, err := sharedCA([]byte("not a certificate")); err == nil {
		t.Error("sharedCA accepted bytes that are not a certificate")
	}
	// first, second and other are dead from here on.
	for range 100 {
		runtime.GC()
		if _, held := sharedCAs.Load(string(der)); !held {
			return
		}
		runtime.Gosched()
	}
	t.Error("the CA stayed in sharedCAs after no one held it")
}
