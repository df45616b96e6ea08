package gateway_test

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/palyra/palyra-go/gateway"
	"github.com/palyra/palyra-go/gateway/pairingsvc"
	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/identity/pairing"
	"github.com/palyra/palyra-go/internal/testclock"
	"github.com/palyra/palyra-go/node"
	pairingv1 "github.com/palyra/palyra-go/proto/pairing/v1"
)

// rawPairing is one connection to a gateway's Pairing service from a
// chosen local address, on which attempts run the device's side of the
// exchange with identity/pairing as pairclient does, but many attempts
// share the connection, as a flood would (pairclient dials for each).
type rawPairing struct {
	conn   *grpc.ClientConn
	client pairingv1.PairingClient
	key    *identity.DeviceKey

	mu sync.Mutex
	// chain is the gateway's TLS chain as the handshake showed it;
	// guarded by mu.
	chain [][]byte
}

// dialPairing connects to addr from the local IP from (127.0.0.2 stands for
// another machine) and waits until the connection is up, without making
// any call.
func dialPairing(tb testing.TB, addr, from string) *rawPairing {
	tb.Helper()
	pc := &rawPairing{}
	tlsConfig := &tls.Config{
		MinVersion: tls.VersionTLS13,
		// The exchange binds the certificate; what is checked here is
		// the gateway's answers, not its identity.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			pc.mu.Lock()
			defer pc.mu.Unlock()
			pc.chain = nil
			for _, c := range cs.PeerCertificates {
				pc.chain = append(pc.chain, c.Raw)
			}
			return nil
		},
	}
	local := &net.TCPAddr{IP: net.ParseIP(from)}
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(credentials.NewTLS(tlsConfig)),
		grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) {
			d := net.Dialer{LocalAddr: local}
			return d.DialContext(ctx, "tcp", a)
		}))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithTimeout(tb.Context(), 20*time.Second)
	defer cancel()
	conn.Connect()
	for st := conn.GetState(); st != connectivity.Ready; st = conn.GetState() {
		if !conn.WaitForStateChange(ctx, st) {
			tb.Fatalf("connecting to %s from %s: still %s", addr, from, st)
		}
	}
	pc.conn, pc.client = conn, pairingv1.NewPairingClient(conn)
	if pc.key, err = identity.GenerateDeviceKey(rand.Reader); err != nil {
		tb.Fatal(err)
	}
	return pc
}

// attempt is what one pairing attempt showed the client.
type attempt struct {
	// refused is the gateway's status when it refused to begin.
	refused *status.Status
	// serverHello is the gateway's first answer, helloTook the time from
	// sending the hello to receiving it.
	serverHello []byte
	helloTook   time.Duration
	// deviceErr is what the device's own check of the answer said.
	deviceErr error
	// final is the status the gateway ended with after a finish that
	// cannot confirm (a client going on regardless), finishTook the time
	// that took.
	final      *status.Status
	finishTook time.Duration
}

// try runs one attempt with cred: the hello, the device's check of the
// gateway's answer, and then, as a guesser would, a finish regardless.
func (pc *rawPairing) try(ctx context.Context, tb testing.TB, cred pairing.Credential) attempt {
	tb.Helper()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := pc.client.Pair(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	pc.mu.Lock()
	chain := pc.chain
	pc.mu.Unlock()
	dev, hello, err := pairing.StartDevice(pairing.DeviceConfig{Rand: rand.Reader, Key: pc.key, Name: "guesser", ServerChain: chain}, cred)
	if err != nil {
		tb.Fatal(err)
	}
	var a attempt
	start := time.Now()
	resp, err := sendRecv(stream, &pairingv1.PairRequest{Message: &pairingv1.PairRequest_ClientHello{ClientHello: hello}})
	a.helloTook = time.Since(start)
	if err != nil {
		a.refused = status.Convert(err)
		return a
	}
	a.serverHello = resp.GetServerHello()
	_, a.deviceErr = dev.HandleServerHello(a.serverHello)
	start = time.Now()
	_, err = sendRecv(stream, &pairingv1.PairRequest{Message: &pairingv1.PairRequest_ClientFinish{ClientFinish: junkFinish(tb)}})
	a.finishTook = time.Since(start)
	a.final = status.Convert(err)
	return a
}

// junkFinish is a ClientFinish that cannot confirm any key, as a client
// that guesses and goes on regardless sends.
func junkFinish(tb testing.TB) []byte {
	tb.Helper()
	junk := make([]byte, 32)
	if _, err := rand.Read(junk); err != nil {
		tb.Fatal(err)
	}
	finish, err := proto.Marshal(&pairingv1.ClientFinish{Confirmation: junk, SealedEnrollment: junk})
	if err != nil {
		tb.Fatal(err)
	}
	return finish
}

// sendRecv sends m and reads the answer, or the status that ended the
// stream.
func sendRecv(stream pairingv1.Pairing_PairClient, m *pairingv1.PairRequest) (*pairingv1.PairResponse, error) {
	if err := stream.Send(m); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return stream.Recv()
}

// retryAfter is the RetryInfo a refusal carries, or zero.
func retryAfter(st *status.Status) time.Duration {
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return ri.GetRetryDelay().AsDuration()
		}
	}
	return 0
}

// randomPIN is a well-formed PIN with selector and random secret digits.
func randomPIN(tb testing.TB, selector string) pairing.PIN {
	tb.Helper()
	c, err := pairing.NewCode(rand.Reader, selector)
	if err != nil {
		tb.Fatal(err)
	}
	return c.PIN()
}

// otherSelector is the selector k after sel (k from 1 to 99), so never
// sel itself.
func otherSelector(tb testing.TB, sel string, k int) string {
	tb.Helper()
	n, err := strconv.Atoi(sel)
	if err != nil {
		tb.Fatal(err)
	}
	return fmt.Sprintf("%02d", (n+k)%100)
}

// quartiles are the 25th, 50th and 75th percentiles of d.
func quartiles(d []time.Duration) (q1, median, q3 time.Duration) {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/4], s[len(s)/2], s[3*len(s)/4]
}

// TestUnknownAndOpenSelectorsLookAlike: from the wire, a selector with no
// open code cannot be told from an open code with a wrong secret — not by
// the real node's error, not by the messages or statuses a raw client
// sees, and not by how long the gateway takes to answer.
//
// The timing half is a distinguishability check, not a performance one:
// it compares two kinds of attempt interleaved in the same run on the same
// machine, so load and disk speed move both alike, and asserts only that
// their distributions overlap (the interquartile ranges overlap, the
// medians are within a factor of 1.5), whatever the absolute times.
// Before the decoy an unknown selector was answered without CPace or a
// store write, in a fraction of an open code's time; a decoy that only
// skipped its store write answered 30–50% sooner here, with interquartile
// ranges apart, and fails this check.
func TestUnknownAndOpenSelectorsLookAlike(t *testing.T) {
	t.Parallel()
	rg := startGateway(t, t.TempDir(), "127.0.0.1:0", nil, noPairingLimits)
	addr := rg.g.Addresses()[0]

	// The real node: the same error, word for word.
	code := mint(t, rg, true)
	_, openErr := newAgent(t, "a").Pair(t.Context(), node.PairOptions{Gateway: addr, PIN: wrongPIN(t, code.Pin)})
	open, err := pairing.ParsePIN(code.Pin)
	if err != nil {
		t.Fatal(err)
	}
	_, unknownErr := newAgent(t, "b").Pair(t.Context(), node.PairOptions{Gateway: addr, PIN: randomPIN(t, otherSelector(t, open.Selector(), 1)).Display()})
	if !errors.Is(openErr, pairing.ErrConfirmationFailed) || unknownErr == nil || unknownErr.Error() != openErr.Error() {
		t.Fatalf("the node's error: open code, wrong PIN: %v; no such code: %v", openErr, unknownErr)
	}

	// A raw client, 200 attempts interleaved: 100 on open codes (a new one
	// each time the last closes after its ten attempts), 100 on selectors
	// with none.
	const runs = 200
	pc := dialPairing(t, addr, "127.0.0.1")
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var openRuns, unknownRuns []attempt
	var sel string
	for i := range runs {
		if i%2 == 0 {
			if len(openRuns)%10 == 0 {
				p, err := pairing.ParsePIN(mint(t, rg, true).Pin)
				if err != nil {
					t.Fatal(err)
				}
				sel = p.Selector()
			}
			openRuns = append(openRuns, pc.try(ctx, t, randomPIN(t, sel)))
			continue
		}
		unknownRuns = append(unknownRuns, pc.try(ctx, t, randomPIN(t, otherSelector(t, sel, 1+i%99))))
	}

	ref := openRuns[0]
	if ref.refused != nil || ref.final == nil || !errors.Is(ref.deviceErr, pairing.ErrConfirmationFailed) {
		t.Fatalf("open code, wrong PIN: %+v", ref)
	}
	for i, a := range slices.Concat(openRuns, unknownRuns) {
		kind := "open code"
		if i >= len(openRuns) {
			kind = "no such code"
		}
		switch {
		case a.refused != nil:
			t.Fatalf("%s, run %d: refused %v", kind, i, a.refused.Err())
		case len(a.serverHello) != len(ref.serverHello):
			t.Fatalf("%s, run %d: server hello of %d bytes, want %d", kind, i, len(a.serverHello), len(ref.serverHello))
		case a.deviceErr == nil || a.deviceErr.Error() != ref.deviceErr.Error():
			t.Fatalf("%s, run %d: the device's check said %v, want %v", kind, i, a.deviceErr, ref.deviceErr)
		case a.final.Code() != codes.PermissionDenied || a.final.Message() != pairing.ErrWrongCode.Error() || len(a.final.Details()) != 0:
			t.Fatalf("%s, run %d: ended %s %q %v, want %s %q", kind, i, a.final.Code(), a.final.Message(), a.final.Details(),
				codes.PermissionDenied, pairing.ErrWrongCode)
		}
	}

	for _, phase := range []struct {
		name string
		took func(attempt) time.Duration
	}{
		{"hello to server hello", func(a attempt) time.Duration { return a.helloTook }},
		{"finish to status", func(a attempt) time.Duration { return a.finishTook }},
	} {
		var o, u []time.Duration
		for i := range openRuns {
			o = append(o, phase.took(openRuns[i]))
			u = append(u, phase.took(unknownRuns[i]))
		}
		oq1, om, oq3 := quartiles(o)
		uq1, um, uq3 := quartiles(u)
		t.Logf("%s: open code median %v (IQR %v–%v), no such code median %v (IQR %v–%v)", phase.name, om, oq1, oq3, um, uq1, uq3)
		if uq1 > oq3 || oq1 > uq3 || 2*max(om, um) > 3*min(om, um) {
			t.Errorf("%s: the two kinds of attempt are told apart by time: open code median %v (IQR %v–%v), no such code median %v (IQR %v–%v)",
				phase.name, om, oq1, oq3, um, uq1, uq3)
		}
	}
}

// TestPairingFloodFromOneAddress: a thousand wrong attempts from one
// address, across every selector, are refused by the limits after the
// first few, each told when to come back, and counted, and audited once;
// a code minted before the flood still pairs from another address.
func TestPairingFloodFromOneAddress(t *testing.T) {
	t.Parallel()
	// A stopped clock: no attempt is earned back during the flood, so the
	// counts are exact.
	clk := testclock.New()
	dir := t.TempDir()
	rg := startGateway(t, dir, "127.0.0.1:0", clk.Now, func(c *gateway.Config) { c.MetricsListen = "127.0.0.1:0" })
	addr := rg.g.Addresses()[0]
	code := mint(t, rg, true)

	const flood = 1000
	attacker := dialPairing(t, addr, "127.0.0.2")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var admitted, refused int
	var refusedTook time.Duration
	start := time.Now()
	for i := range flood {
		a := attacker.try(ctx, t, randomPIN(t, fmt.Sprintf("%02d", i%100)))
		if a.refused == nil {
			admitted++
			if a.final.Code() != codes.PermissionDenied {
				t.Fatalf("admitted attempt %d ended %v", i, a.final.Err())
			}
			continue
		}
		refused++
		refusedTook += a.helloTook
		if a.refused.Code() != codes.ResourceExhausted ||
			!strings.HasPrefix(a.refused.Message(), "too many pairing attempts from this address; try again in ") ||
			retryAfter(a.refused) <= 0 {
			t.Fatalf("attempt %d: %v (retry after %v), want the limit's refusal", i, a.refused.Err(), retryAfter(a.refused))
		}
	}
	took := time.Since(start)
	t.Logf("%d attempts from 127.0.0.2 in %v: %d admitted, %d refused (%v each on average, as the client saw it)",
		flood, took, admitted, refused, refusedTook/time.Duration(max(refused, 1)))
	if admitted != gateway.DefaultPairingBurst || refused != flood-gateway.DefaultPairingBurst {
		t.Fatalf("%d admitted, %d refused; want the burst (%d) admitted and the rest refused", admitted, refused, gateway.DefaultPairingBurst)
	}
	if a := attacker.try(ctx, t, randomPIN(t, "00")); a.refused == nil || retryAfter(a.refused) != gateway.DefaultPairingInterval {
		t.Fatalf("after the flood: %+v, want a refusal for %v", a, gateway.DefaultPairingInterval)
	}

	// The owner of the code, elsewhere, pairs.
	victim := newAgent(t, "victim")
	if _, err := victim.Pair(t.Context(), node.PairOptions{Gateway: addr, PIN: code.Pin}); err != nil {
		t.Fatalf("pairing with a code minted before the flood: %v", err)
	}

	body := metricsText(t, rg)
	for _, want := range []string{
		fmt.Sprintf(`palyra_pairing_refused_total{reason="address_rate"} %d`, refused+1),
		`palyra_pairing_refused_total{reason="busy"} 0`,
		`palyra_pairing_attempts_total{outcome="paired"} 1`,
		fmt.Sprintf(`palyra_pairing_attempts_total{outcome="wrong_code"} %d`, admitted),
		"palyra_pairing_runs_in_progress 0",
		"palyra_pairing_tracked_addresses 2",
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}

	// The refusals are one audit row, not one each: the address is
	// audited when it starts being refused.
	rg.stop()
	if bySource, rows := counted(auditRows(t, dir), pairingsvc.AuditPairingThrottled); rows != 1 || len(bySource) != 1 || bySource["127.0.0.2"] != 1 {
		t.Fatalf("%d refusals audited as %d rows by source %v, want one row counting one from 127.0.0.2", refused+1, rows, bySource)
	}
}
