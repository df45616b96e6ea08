package pairing

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/palyra/palyra-go/identity"
	pairingv1 "github.com/palyra/palyra-go/proto/pairing/v1"
)

var pairNow = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// world is a gateway (CA, TLS certificate, one open code) and a device key.
type world struct {
	ca        *identity.CA
	serverDER []byte
	code      *Code
	device    *identity.DeviceKey
	addresses []string
}

func newWorld(t testing.TB) *world {
	t.Helper()
	ca, err := identity.NewCA(rand.Reader, "Test Gateway", pairNow.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return &world{
		ca:        ca,
		serverDER: serverCert(t, ca),
		code:      mustCode(t),
		device:    mustDeviceKey(t),
		addresses: []string{"127.0.0.1:7443"},
	}
}

func serverCert(t testing.TB, ca *identity.CA) []byte {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.IssueServerCertificate(pub, "Test Gateway", []string{"127.0.0.1", "::1"}, identity.IssueOptions{Now: pairNow.Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return cert.Raw
}

func mustCode(t testing.TB) *Code {
	t.Helper()
	c, err := NewCode(rand.Reader, "42")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustDeviceKey(t testing.TB) *identity.DeviceKey {
	t.Helper()
	k, err := identity.GenerateDeviceKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func (w *world) deviceConfig() DeviceConfig {
	return DeviceConfig{Rand: rand.Reader, Key: w.device, Name: "laptop", Platform: "linux/amd64", ServerChain: [][]byte{w.serverDER}}
}

func (w *world) gatewayConfig() GatewayConfig {
	return GatewayConfig{Rand: rand.Reader, TLSCertificate: w.serverDER}
}

// exchange is one run with hooks to tamper with each message in flight.
type exchange struct {
	hello, serverHello, clientFinish, serverFinish func([]byte) []byte
	// issue lets a test change what the gateway certifies.
	issue func(req *Request) []byte
	// decoy has the gateway answer as for a selector with no open code.
	decoy bool
}

type outcome struct {
	result  *Result
	request *Request
	device  *DeviceSession
	err     error
	stage   string
}

func (w *world) pair(t testing.TB, cfg DeviceConfig, cred Credential, x exchange) outcome {
	t.Helper()
	pass := func(f func([]byte) []byte, b []byte) []byte {
		if f == nil {
			return b
		}
		return f(append([]byte(nil), b...))
	}
	dev, hello, err := StartDevice(cfg, cred)
	if err != nil {
		return outcome{err: err, stage: "start"}
	}
	h, err := ParseClientHello(pass(x.hello, hello))
	if err != nil {
		return outcome{err: err, stage: "parse hello", device: dev}
	}
	respond := func() (*GatewaySession, []byte, error) { return RespondGateway(w.gatewayConfig(), h, w.code) }
	if x.decoy {
		respond = func() (*GatewaySession, []byte, error) { return RespondDecoy(w.gatewayConfig(), h) }
	}
	gw, serverHello, err := respond()
	if err != nil {
		return outcome{err: err, stage: "respond", device: dev}
	}
	finish, err := dev.HandleServerHello(pass(x.serverHello, serverHello))
	if err != nil {
		return outcome{err: err, stage: "device confirm", device: dev}
	}
	req, err := gw.HandleClientFinish(pass(x.clientFinish, finish))
	if err != nil {
		return outcome{err: err, stage: "gateway confirm", device: dev}
	}
	csr := req.CSR
	if x.issue != nil {
		csr = x.issue(req)
	}
	cert, err := w.ca.IssueDeviceCertificate(csr, identity.IssueOptions{Now: pairNow})
	if err != nil {
		return outcome{err: err, stage: "issue", device: dev, request: req}
	}
	sealed, err := SealGrant(req.GrantKey, Grant{
		DeviceCertificate: cert.Raw,
		CACertificate:     w.ca.Certificate().Raw,
		Addresses:         w.addresses,
		GatewayName:       "Test Gateway",
	})
	if err != nil {
		return outcome{err: err, stage: "seal", device: dev, request: req}
	}
	res, err := dev.HandleServerFinish(pass(x.serverFinish, sealed), pairNow)
	if err != nil {
		return outcome{err: err, stage: "device finish", device: dev, request: req}
	}
	return outcome{result: res, request: req, device: dev}
}

func TestPairEndToEnd(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	link := NewLink(w.code, w.addresses, w.ca.Fingerprint(), pairNow.Add(10*time.Minute), "Test Gateway")
	for name, cred := range map[string]Credential{"PIN": w.code.PIN(), "link": link} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			o := w.pair(t, w.deviceConfig(), cred, exchange{})
			if o.err != nil {
				t.Fatalf("%s: %v", o.stage, o.err)
			}
			if o.result.DeviceID != w.device.ID() || o.request.DeviceID != w.device.ID() {
				t.Fatalf("device IDs: result %s, request %s, key %s", o.result.DeviceID, o.request.DeviceID, w.device.ID())
			}
			if !o.request.PublicKey.Equal(w.device.Public()) || o.request.Name != "laptop" || o.request.Platform != "linux/amd64" {
				t.Fatalf("request does not describe the device: %+v", o.request)
			}
			if v := o.device.VerificationCode(); len(v) != 7 || v != o.request.VerificationCode {
				t.Fatalf("verification codes differ: device %q, gateway %q", v, o.request.VerificationCode)
			}
			// The certificate the device got verifies on its own against the CA it got.
			id, err := identity.VerifyDeviceCertificate(o.result.CACertificate, [][]byte{o.result.DeviceCertificate.Raw}, pairNow)
			if err != nil || id != w.device.ID() {
				t.Fatalf("device certificate: %s, %v", id, err)
			}
			if !identity.CertificateFingerprint(o.result.CACertificate.Raw).Equal(w.ca.Fingerprint()) {
				t.Fatal("device got another CA")
			}
			if len(o.result.Addresses) != 1 || o.result.GatewayName != "Test Gateway" {
				t.Fatalf("result: %+v", o.result)
			}
		})
	}
}

// Two runs never share keys: the verification codes differ run to run (with
// overwhelming probability over a million values, checked on a few runs).
func TestVerificationCodeIsPerRun(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	seen := map[string]bool{}
	for range 4 {
		o := w.pair(t, w.deviceConfig(), w.code.PIN(), exchange{})
		if o.err != nil {
			t.Fatal(o.err)
		}
		seen[o.request.VerificationCode] = true
	}
	if len(seen) < 3 {
		t.Fatalf("verification codes repeat across runs: %v", seen)
	}
}

func TestWrongCodeFailsConfirmation(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	other := mustCode(t) // same selector, other secrets
	link := NewLink(other, w.addresses, w.ca.Fingerprint(), pairNow.Add(time.Minute), "")
	for name, cred := range map[string]Credential{"PIN": other.PIN(), "link": link} {
		o := w.pair(t, w.deviceConfig(), cred, exchange{})
		if o.stage != "device confirm" || !errors.Is(o.err, ErrConfirmationFailed) {
			t.Fatalf("%s: got %q at %s, want ErrConfirmationFailed at device confirm", name, o.err, o.stage)
		}
		if o.device.VerificationCode() != "" {
			t.Fatalf("%s: a verification code was shown for a failed run", name)
		}
	}
}

// A decoy answers like a code whose secret the device does not have: the
// same message, failing at the device's key confirmation with the same
// error, for a PIN and a link alike; and a finish that does confirm (which
// only a test can make, knowing the decoy's password) is refused anyway.
func TestDecoyLooksLikeAWrongCode(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	link := NewLink(w.code, w.addresses, w.ca.Fingerprint(), pairNow.Add(time.Minute), "")
	for name, cred := range map[string]Credential{"PIN": w.code.PIN(), "link": link} {
		var wrongHello []byte
		wrong := w.pair(t, w.deviceConfig(), mustCode(t).PIN(), exchange{serverHello: func(b []byte) []byte { wrongHello = b; return b }})
		var decoyHello []byte
		decoy := w.pair(t, w.deviceConfig(), cred, exchange{decoy: true, serverHello: func(b []byte) []byte { decoyHello = b; return b }})
		if decoy.stage != "device confirm" || !errors.Is(decoy.err, ErrConfirmationFailed) || decoy.err.Error() != wrong.err.Error() {
			t.Fatalf("%s: decoy ended %q at %s; a wrong code ended %q at %s", name, decoy.err, decoy.stage, wrong.err, wrong.stage)
		}
		if len(decoyHello) != len(wrongHello) {
			t.Fatalf("%s: decoy server hello has %d bytes, a real one %d", name, len(decoyHello), len(wrongHello))
		}
	}

	dev, hello, err := StartDevice(w.deviceConfig(), w.code.PIN())
	if err != nil {
		t.Fatal(err)
	}
	h, err := ParseClientHello(hello)
	if err != nil {
		t.Fatal(err)
	}
	gw, reply, err := respond(w.gatewayConfig(), h, passwordFor(kindPIN, []byte(w.code.PINSecret)))
	if err != nil {
		t.Fatal(err)
	}
	gw.decoy = true
	finish, err := dev.HandleServerHello(reply)
	if err != nil {
		t.Fatalf("the device should confirm a decoy built on its own PIN: %v", err)
	}
	if req, err := gw.HandleClientFinish(finish); !errors.Is(err, ErrConfirmationFailed) || req != nil {
		t.Fatalf("a decoy confirmed: %+v, %v", req, err)
	}
}

// A PIN's digits are not the link secret: claiming the link kind with the
// PIN's secret fails like any wrong code.
func TestSecretKindsAreSeparate(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	flipKind := func(b []byte) []byte {
		var m pairingv1.ClientHello
		if err := proto.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		m.SecretKind = pairingv1.SecretKind_SECRET_KIND_LINK
		out, err := proto.Marshal(&m)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	o := w.pair(t, w.deviceConfig(), w.code.PIN(), exchange{hello: flipKind})
	if !errors.Is(o.err, ErrConfirmationFailed) {
		t.Fatalf("got %v at %s", o.err, o.stage)
	}
}

// A man in the middle terminates the device's TLS with its own certificate
// and relays the messages to the real gateway: the channel identifiers differ,
// so key confirmation fails, even though he relays the right PIN run.
func TestManInTheMiddleFails(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	evilCA, err := identity.NewCA(rand.Reader, "Evil", pairNow.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	cfg := w.deviceConfig()
	cfg.ServerChain = [][]byte{serverCert(t, evilCA)}
	o := w.pair(t, cfg, w.code.PIN(), exchange{})
	if o.stage != "device confirm" || !errors.Is(o.err, ErrConfirmationFailed) {
		t.Fatalf("got %v at %s, want ErrConfirmationFailed at device confirm", o.err, o.stage)
	}
	// Even a certificate from the real CA, but not the one the gateway
	// presents, is a different channel.
	cfg.ServerChain = [][]byte{serverCert(t, w.ca)}
	if o := w.pair(t, cfg, w.code.PIN(), exchange{}); !errors.Is(o.err, ErrConfirmationFailed) {
		t.Fatalf("got %v at %s", o.err, o.stage)
	}
}

func flipByte(i int) func([]byte) []byte {
	return func(b []byte) []byte {
		b[(i+len(b))%len(b)] ^= 0x40
		return b
	}
}

func TestTamperedMessagesFail(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	for name, tc := range map[string]struct {
		x     exchange
		stage string
	}{
		// A flipped share is either no point at all, which the gateway
		// refuses, or another point, which gives other keys.
		"hello share":         {exchange{hello: flipByte(-3)}, "respond|device confirm"},
		"server hello share":  {exchange{serverHello: flipByte(3)}, "device confirm"},
		"server confirmation": {exchange{serverHello: flipByte(-3)}, "device confirm"},
		"client confirmation": {exchange{clientFinish: flipByte(5)}, "gateway confirm"},
		"sealed enrollment":   {exchange{clientFinish: flipByte(-5)}, "gateway confirm"},
		"sealed grant":        {exchange{serverFinish: flipByte(-5)}, "device finish"},
		"truncated grant":     {exchange{serverFinish: func(b []byte) []byte { return b[:len(b)-1] }}, "device finish"},
		"empty server hello":  {exchange{serverHello: func([]byte) []byte { return nil }}, "device confirm"},
		"empty client finish": {exchange{clientFinish: func([]byte) []byte { return nil }}, "gateway confirm"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			o := w.pair(t, w.deviceConfig(), w.code.PIN(), tc.x)
			if o.err == nil || !slices.Contains(strings.Split(tc.stage, "|"), o.stage) {
				t.Fatalf("got %v at %q, want a failure at %q", o.err, o.stage, tc.stage)
			}
		})
	}
}

func TestDeviceRejectsBadGrants(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	t.Run("CA differs from the link's pin", func(t *testing.T) {
		t.Parallel()
		var otherPin identity.Fingerprint
		otherPin[0] = 1
		link := NewLink(w.code, w.addresses, otherPin, pairNow.Add(time.Minute), "")
		o := w.pair(t, w.deviceConfig(), link, exchange{})
		if o.stage != "device finish" || !errors.Is(o.err, ErrCAMismatch) {
			t.Fatalf("got %v at %s", o.err, o.stage)
		}
	})
	t.Run("certificate for another device", func(t *testing.T) {
		t.Parallel()
		other := mustDeviceKey(t)
		o := w.pair(t, w.deviceConfig(), w.code.PIN(), exchange{issue: func(*Request) []byte {
			csr, err := other.CreateCSR(rand.Reader, "other")
			if err != nil {
				t.Fatal(err)
			}
			return csr
		}})
		if o.stage != "device finish" || !errors.Is(o.err, ErrInvalidGrant) {
			t.Fatalf("got %v at %s", o.err, o.stage)
		}
	})
	t.Run("no addresses", func(t *testing.T) {
		t.Parallel()
		w2 := *w
		w2.addresses = nil
		o := w2.pair(t, w.deviceConfig(), w.code.PIN(), exchange{})
		if o.stage != "device finish" || !errors.Is(o.err, ErrInvalidGrant) {
			t.Fatalf("got %v at %s", o.err, o.stage)
		}
	})
}

func TestGatewayRejectsBadEnrollment(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	other := mustDeviceKey(t)
	otherCSR, err := other.CreateCSR(rand.Reader, "other")
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		mutate func(*pairingv1.Enrollment)
		want   string
	}{
		"CSR for another key":  {func(e *pairingv1.Enrollment) { e.Csr = otherCSR }, "for another key"},
		"CSR signature broken": {func(e *pairingv1.Enrollment) { e.Csr[len(e.Csr)-1] ^= 1 }, "signature is wrong"},
		"CSR garbage":          {func(e *pairingv1.Enrollment) { e.Csr = []byte("junk") }, "does not parse"},
		"short public key":     {func(e *pairingv1.Enrollment) { e.PublicKey = e.PublicKey[:16] }, "public key has 16 bytes"},
		"control char name":    {func(e *pairingv1.Enrollment) { e.Name = "evil\x1b[31m" }, "control character"},
		"huge CSR":             {func(e *pairingv1.Enrollment) { e.Csr = make([]byte, maxCSRSize+1) }, "over 4096 bytes"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			// Re-seal a modified enrollment with the run's real keys, as a
			// device that knows the code but lies about itself would.
			dev, hello, err := StartDevice(w.deviceConfig(), w.code.PIN())
			if err != nil {
				t.Fatal(err)
			}
			h, err := ParseClientHello(hello)
			if err != nil {
				t.Fatal(err)
			}
			gw, serverHello, err := RespondGateway(w.gatewayConfig(), h, w.code)
			if err != nil {
				t.Fatal(err)
			}
			finish, err := dev.HandleServerHello(serverHello)
			if err != nil {
				t.Fatal(err)
			}
			var cf pairingv1.ClientFinish
			if err := proto.Unmarshal(finish, &cf); err != nil {
				t.Fatal(err)
			}
			plain, err := open(dev.keys.enrollment, "enrollment", cf.SealedEnrollment)
			if err != nil {
				t.Fatal(err)
			}
			var e pairingv1.Enrollment
			if err := proto.Unmarshal(plain, &e); err != nil {
				t.Fatal(err)
			}
			tc.mutate(&e)
			plain, _ = proto.Marshal(&e)
			if cf.SealedEnrollment, err = seal(dev.keys.enrollment, "enrollment", plain); err != nil {
				t.Fatal(err)
			}
			finish, _ = proto.Marshal(&cf)
			_, err = gw.HandleClientFinish(finish)
			if !errors.Is(err, ErrInvalidEnrollment) || !contains(err, tc.want) {
				t.Fatalf("got %v, want ErrInvalidEnrollment containing %q", err, tc.want)
			}
		})
	}
}

func contains(err error, s string) bool {
	return err != nil && strings.Contains(err.Error(), s)
}

func TestSessionsRefuseOutOfOrderUse(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	dev, hello, err := StartDevice(w.deviceConfig(), w.code.PIN())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dev.HandleServerFinish([]byte{}, pairNow); !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("finish before hello: %v", err)
	}
	h, _ := ParseClientHello(hello)
	gw, serverHello, err := RespondGateway(w.gatewayConfig(), h, w.code)
	if err != nil {
		t.Fatal(err)
	}
	finish, err := dev.HandleServerHello(serverHello)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dev.HandleServerHello(serverHello); !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("second server hello: %v", err)
	}
	if _, err := gw.HandleClientFinish(finish); err != nil {
		t.Fatal(err)
	}
	if _, err := gw.HandleClientFinish(finish); !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("replayed client finish: %v", err)
	}
	// A failed step ends the run: no second guess within one session.
	dev2, hello2, _ := StartDevice(w.deviceConfig(), w.code.PIN())
	h2, _ := ParseClientHello(hello2)
	_, serverHello2, _ := RespondGateway(w.gatewayConfig(), h2, w.code)
	if _, err := dev2.HandleServerHello(flipByte(-2)(append([]byte(nil), serverHello2...))); err == nil {
		t.Fatal("tampered server hello accepted")
	}
	if _, err := dev2.HandleServerHello(serverHello2); !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("retry after failure: %v", err)
	}
}

func TestParseClientHelloRejects(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	_, hello, err := StartDevice(w.deviceConfig(), w.code.PIN())
	if err != nil {
		t.Fatal(err)
	}
	mutate := func(f func(*pairingv1.ClientHello)) []byte {
		var m pairingv1.ClientHello
		if err := proto.Unmarshal(hello, &m); err != nil {
			t.Fatal(err)
		}
		f(&m)
		b, _ := proto.Marshal(&m)
		return b
	}
	for name, tc := range map[string]struct {
		b    []byte
		want string
	}{
		"garbage":        {[]byte{0xff, 0xff, 0xff}, "does not decode"},
		"oversized":      {make([]byte, MaxMessageSize+1), "over the 16384-byte limit"},
		"future version": {mutate(func(m *pairingv1.ClientHello) { m.Version = 2 }), "protocol version 2"},
		"bad selector":   {mutate(func(m *pairingv1.ClientHello) { m.Selector = "abc" }), "selector"},
		"no kind":        {mutate(func(m *pairingv1.ClientHello) { m.SecretKind = 0 }), "unknown secret kind"},
		"short sid":      {mutate(func(m *pairingv1.ClientHello) { m.SessionId = m.SessionId[:8] }), "wrong field sizes"},
		"long share":     {mutate(func(m *pairingv1.ClientHello) { m.Share = append(m.Share, 0) }), "wrong field sizes"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseClientHello(tc.b)
			if !errors.Is(err, ErrMalformed) || !contains(err, tc.want) {
				t.Fatalf("got %v, want ErrMalformed containing %q", err, tc.want)
			}
		})
	}
	// An identity share parses (it has the right size) but the gateway must
	// refuse to answer it.
	h, err := ParseClientHello(mutate(func(m *pairingv1.ClientHello) { m.Share = make([]byte, 32) }))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := RespondGateway(w.gatewayConfig(), h, w.code); !errors.Is(err, ErrMalformed) {
		t.Fatalf("identity share answered: %v", err)
	}
}

func TestGrantKeyPersistence(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	o := w.pair(t, w.deviceConfig(), w.code.PIN(), exchange{})
	if o.err != nil {
		t.Fatal(o.err)
	}
	k, err := GrantKeyFromBytes(o.request.GrantKey.Bytes())
	if err != nil || k.k != o.request.GrantKey.k {
		t.Fatalf("grant key round trip: %v", err)
	}
	if _, err := GrantKeyFromBytes([]byte{1, 2}); err == nil {
		t.Fatal("short grant key accepted")
	}
	if s := o.request.GrantKey.String(); s != "GrantKey(redacted)" {
		t.Fatalf("grant key prints as %q", s)
	}
}

func BenchmarkPairingExchange(b *testing.B) {
	w := newWorld(b)
	for b.Loop() {
		if o := w.pair(b, w.deviceConfig(), w.code.PIN(), exchange{}); o.err != nil {
			b.Fatal(o.err)
		}
	}
}
