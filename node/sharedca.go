package node

import (
	"crypto/x509"
	"runtime"
	"sync"
	"weak"
)

// sharedCAs holds one parsed copy of each gateway CA certificate the
// agents of this process load, by its DER, for as long as one of them
// holds it: a process that runs many agents paired with one gateway (an
// embedder, palyra bench) keeps one parse, where it kept one per agent
// (about 3 KB each).
var sharedCAs sync.Map // string(DER) → weak.Pointer[x509.Certificate]

// sharedCA parses der, or returns the copy an agent of this process
// already holds. The certificate is shared: nothing may modify it.
func sharedCA(der []byte) (*x509.Certificate, error) {
	key := string(der)
	if v, ok := sharedCAs.Load(key); ok {
		if c := v.(weak.Pointer[x509.Certificate]).Value(); c != nil {
			return c, nil
		}
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	wp := weak.Make(c)
	sharedCAs.Store(key, wp)
	runtime.AddCleanup(c, func(key string) { sharedCAs.CompareAndDelete(key, wp) }, key)
	return c, nil
}
