package pairing

import (
	"testing"
	"time"
)

// The fuzz targets start from valid inputs; their seeds run with every
// ordinary `go test`.

func FuzzParsePIN(f *testing.F) {
	c := &Code{Selector: "42", PINSecret: "907316"}
	f.Add(c.PIN().Display())
	f.Add("429 073 16x")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePIN(s)
		if err != nil {
			return
		}
		again, err := ParsePIN(p.Display())
		if err != nil || !again.Equal(p) {
			t.Fatalf("accepted %q but its display form %q does not parse back: %v", s, p.Display(), err)
		}
	})
}

func FuzzParseLink(f *testing.F) {
	l, _ := testLink(f)
	s, err := l.Encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(s)
	f.Add("palyra://pair?v=2")
	f.Add("palyra://pair?v=1&gw=[::1]:1&ca=&id=00&k=&exp=1")
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseLink(s, linkNow)
		if err != nil {
			return
		}
		enc, err := l.Encode()
		if err != nil {
			t.Fatalf("accepted %q but cannot encode it: %v", s, err)
		}
		again, err := ParseLink(enc, linkNow)
		if err != nil || !again.Equal(l) {
			t.Fatalf("re-encoded %q does not parse back to the same link: %v", enc, err)
		}
	})
}

func FuzzParseClientHello(f *testing.F) {
	w := newWorld(f)
	_, hello, err := StartDevice(w.deviceConfig(), w.code.PIN())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(hello)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseClientHello(b)
		if err != nil {
			return
		}
		// Whatever parses must be safe to answer.
		if h.Selector() == w.code.Selector {
			_, _, _ = RespondGateway(w.gatewayConfig(), h, w.code)
		}
	})
}

// fuzzRun prepares a session at the step under test from a real run.
type fuzzRun struct {
	serverHello, clientFinish, serverFinish []byte
}

func realRun(f *testing.F, w *world) fuzzRun {
	var r fuzzRun
	o := w.pair(f, w.deviceConfig(), w.code.PIN(), exchange{
		serverHello:  func(b []byte) []byte { r.serverHello = append([]byte(nil), b...); return b },
		clientFinish: func(b []byte) []byte { r.clientFinish = append([]byte(nil), b...); return b },
		serverFinish: func(b []byte) []byte { r.serverFinish = append([]byte(nil), b...); return b },
	})
	if o.err != nil {
		f.Fatal(o.err)
	}
	return r
}

func FuzzDeviceHandleServerHello(f *testing.F) {
	w := newWorld(f)
	f.Add(realRun(f, w).serverHello)
	f.Fuzz(func(t *testing.T, b []byte) {
		dev, _, err := StartDevice(w.deviceConfig(), w.code.PIN())
		if err != nil {
			t.Fatal(err)
		}
		// Nobody without the session's key can produce a valid hello.
		if _, err := dev.HandleServerHello(b); err == nil {
			t.Fatal("accepted a server hello from outside the run")
		}
	})
}

func FuzzGatewayHandleClientFinish(f *testing.F) {
	w := newWorld(f)
	f.Add(realRun(f, w).clientFinish)
	f.Fuzz(func(t *testing.T, b []byte) {
		_, hello, err := StartDevice(w.deviceConfig(), w.code.PIN())
		if err != nil {
			t.Fatal(err)
		}
		h, err := ParseClientHello(hello)
		if err != nil {
			t.Fatal(err)
		}
		gw, _, err := RespondGateway(w.gatewayConfig(), h, w.code)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := gw.HandleClientFinish(b); err == nil {
			t.Fatal("accepted a client finish from outside the run")
		}
	})
}

func FuzzDeviceHandleServerFinish(f *testing.F) {
	w := newWorld(f)
	f.Add(realRun(f, w).serverFinish)
	f.Fuzz(func(t *testing.T, b []byte) {
		dev, hello, err := StartDevice(w.deviceConfig(), w.code.PIN())
		if err != nil {
			t.Fatal(err)
		}
		h, _ := ParseClientHello(hello)
		_, serverHello, err := RespondGateway(w.gatewayConfig(), h, w.code)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := dev.HandleServerHello(serverHello); err != nil {
			t.Fatal(err)
		}
		if _, err := dev.HandleServerFinish(b, pairNow.Add(time.Minute)); err == nil {
			t.Fatal("accepted a grant from outside the run")
		}
	})
}
