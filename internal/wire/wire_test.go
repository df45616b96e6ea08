package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	nodev1 "github.com/palyra/palyra-go/proto/node/v1"
)

// countingWriter records how many Write calls it saw.
type countingWriter struct {
	bytes.Buffer
	writes int
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.writes++
	return w.Buffer.Write(p)
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	in := &nodev1.Frame{Body: &nodev1.Frame_RegisterNode{RegisterNode: &nodev1.RegisterNode{
		Name: "laptop", Platform: "linux/amd64", Version: "1.2.3",
	}}}
	var w countingWriter
	if err := WriteFrame(&w, in); err != nil {
		t.Fatal(err)
	}
	if w.writes != 1 {
		t.Errorf("WriteFrame made %d Write calls, want 1", w.writes)
	}
	if got, want := binary.BigEndian.Uint32(w.Bytes()), uint32(w.Len()-4); got != want {
		t.Errorf("length prefix %d, body is %d bytes", got, want)
	}
	out := new(nodev1.Frame)
	if err := ReadFrame(&w, out); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(in, out) {
		t.Errorf("got %v, want %v", out, in)
	}
	if err := ReadFrame(&w, out); err != io.EOF {
		t.Errorf("ReadFrame at the end = %v, want io.EOF", err)
	}
}

// bytesFrame is a frame whose encoded body is exactly n bytes: a
// BytesValue's field 1 with a payload sized to fit.
func bytesValueOfSize(t *testing.T, n int) *wrapperspb.BytesValue {
	t.Helper()
	// Encoded size: 1 tag byte + varint(len) + len.
	for payload := n - 2; payload > 0; payload-- {
		m := wrapperspb.Bytes(make([]byte, payload))
		if proto.Size(m) == n {
			return m
		}
	}
	t.Fatalf("no BytesValue encodes to %d bytes", n)
	return nil
}

func TestLimits(t *testing.T) {
	t.Parallel()
	atLimit := bytesValueOfSize(t, MaxFrameSize)
	var buf bytes.Buffer
	if err := WriteFrame(&buf, atLimit); err != nil {
		t.Fatalf("writing a frame of exactly MaxFrameSize: %v", err)
	}
	if err := ReadFrame(&buf, new(wrapperspb.BytesValue)); err != nil {
		t.Fatalf("reading a frame of exactly MaxFrameSize: %v", err)
	}

	over := bytesValueOfSize(t, MaxFrameSize+1)
	buf.Reset()
	if err := WriteFrame(&buf, over); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("writing MaxFrameSize+1 = %v, want ErrFrameTooLarge", err)
	}
	if buf.Len() != 0 {
		t.Errorf("a refused write left %d bytes", buf.Len())
	}

	// A header announcing MaxFrameSize+1 is refused without reading (or
	// allocating) the body: the reader holds only the header.
	hdr := binary.BigEndian.AppendUint32(nil, MaxFrameSize+1)
	if err := ReadFrame(bytes.NewReader(hdr), new(wrapperspb.BytesValue)); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("reading a MaxFrameSize+1 header = %v, want ErrFrameTooLarge", err)
	}
}

// TestNoAllocationBeforeLimit checks that a header announcing a huge frame is
// refused before the body is allocated (not parallel: it reads MemStats).
func TestNoAllocationBeforeLimit(t *testing.T) {
	hdr := binary.BigEndian.AppendUint32(nil, 0xffffffff)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 10 {
		if err := ReadFrame(bytes.NewReader(hdr), new(wrapperspb.BytesValue)); !errors.Is(err, ErrFrameTooLarge) {
			t.Fatalf("ReadFrame = %v, want ErrFrameTooLarge", err)
		}
	}
	runtime.ReadMemStats(&after)
	if d := after.TotalAlloc - before.TotalAlloc; d > 64<<10 {
		t.Errorf("refusing 10 oversized headers allocated %d bytes", d)
	}
}

// TestStalledClaimCostsWhatArrived: a peer that claims a 1 MiB frame, sends
// a little of it and stalls holds about what it sent, not what it claimed
// (not parallel: it reads MemStats).
func TestStalledClaimCostsWhatArrived(t *testing.T) {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	var before, stalled runtime.MemStats
	runtime.ReadMemStats(&before)
	go func() { done <- ReadFrame(pr, new(wrapperspb.BytesValue)) }()
	claim := binary.BigEndian.AppendUint32(nil, MaxFrameSize)
	if _, err := pw.Write(append(claim, make([]byte, 1000)...)); err != nil {
		t.Fatal(err)
	}
	// The pipe's Write returns once ReadFrame has read all of it: ReadFrame
	// now waits for the rest.
	runtime.ReadMemStats(&stalled)
	pw.CloseWithError(io.ErrClosedPipe)
	if err := <-done; !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("ReadFrame = %v, want the reader's error", err)
	}
	if d := stalled.TotalAlloc - before.TotalAlloc; d >= 64<<10 {
		t.Errorf("a stalled claim of %d bytes with 1000 sent allocated %d bytes", MaxFrameSize, d)
	}
}

func TestReadErrors(t *testing.T) {
	t.Parallel()
	valid, err := AppendFrame(nil, &nodev1.Frame{Body: &nodev1.Frame_LeaseRenewal{LeaseRenewal: &nodev1.LeaseRenewal{Sequence: 7}}})
	if err != nil {
		t.Fatal(err)
	}
	garbage := binary.BigEndian.AppendUint32(nil, 3)
	garbage = append(garbage, 0xff, 0xff, 0xff)
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, io.EOF},
		{"truncated header", valid[:2], io.ErrUnexpectedEOF},
		{"truncated body", valid[:len(valid)-1], io.ErrUnexpectedEOF},
		{"header only", valid[:4], io.ErrUnexpectedEOF},
		{"garbage body", garbage, ErrMalformedFrame},
		{"too large", binary.BigEndian.AppendUint32(nil, MaxFrameSize+1), ErrFrameTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := ReadFrame(bytes.NewReader(tt.in), new(nodev1.Frame))
			if !errors.Is(err, tt.want) {
				t.Errorf("ReadFrame = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestEmptyFrame(t *testing.T) {
	t.Parallel()
	// A zero-length body is a valid (empty) message.
	var f nodev1.Frame
	if err := ReadFrame(bytes.NewReader([]byte{0, 0, 0, 0}), &f); err != nil {
		t.Fatal(err)
	}
	if f.Body != nil {
		t.Errorf("empty frame decoded to %v", &f)
	}
}

func FuzzReadFrame(f *testing.F) {
	seeds := []*nodev1.Frame{
		{Body: &nodev1.Frame_RegisterNode{RegisterNode: &nodev1.RegisterNode{Name: "n", Platform: "linux/amd64", Version: "1"}}},
		{Body: &nodev1.Frame_Welcome{Welcome: &nodev1.Welcome{DeviceId: "ABC", GatewayName: "gw", LeaseTtlMs: 30000, ServerTimeUnixMs: 1}}},
		{Body: &nodev1.Frame_LeaseRenewal{LeaseRenewal: &nodev1.LeaseRenewal{Sequence: 1}}},
		{Body: &nodev1.Frame_LeaseGranted{LeaseGranted: &nodev1.LeaseGranted{Sequence: 1, LeaseTtlMs: 30000}}},
		{Body: &nodev1.Frame_RenewCertificate{RenewCertificate: &nodev1.RenewCertificate{Csr: []byte{1, 2, 3}}}},
		{Body: &nodev1.Frame_Error{Error: &nodev1.Error{Code: nodev1.Error_CODE_REVOKED, Message: "revoked"}}},
	}
	for _, s := range seeds {
		b, err := AppendFrame(nil, s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		for range 16 { // bounded: each frame consumes at least 4 bytes
			var m nodev1.Frame
			err := ReadFrame(r, &m)
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) &&
					!errors.Is(err, ErrFrameTooLarge) && !errors.Is(err, ErrMalformedFrame) {
					t.Fatalf("unexpected error class: %v", err)
				}
				return
			}
			// What decodes re-encodes and decodes to the same message.
			b, err := AppendFrame(nil, &m)
			if err != nil {
				t.Fatal(err)
			}
			var again nodev1.Frame
			if err := ReadFrame(bytes.NewReader(b), &again); err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(&m, &again) {
				t.Fatalf("re-encoding changed %v to %v", &m, &again)
			}
		}
	})
}

// TestDecodedFramesOwnTheirBytes: frames are read into reused buffers, so
// a message decoded from one frame must not change when the next frame is
// read.
func TestDecodedFramesOwnTheirBytes(t *testing.T) {
	t.Parallel()
	var stream bytes.Buffer
	for _, fill := range []byte{'a', 'b'} {
		if err := WriteFrame(&stream, &nodev1.Result{RequestId: string(bytes.Repeat([]byte{fill}, 26)), OutputJson: bytes.Repeat([]byte{fill}, 100)}); err != nil {
			t.Fatal(err)
		}
	}
	var first, second nodev1.Result
	if err := ReadFrame(&stream, &first); err != nil {
		t.Fatal(err)
	}
	if err := ReadFrame(&stream, &second); err != nil {
		t.Fatal(err)
	}
	if first.GetRequestId() != string(bytes.Repeat([]byte("a"), 26)) || !bytes.Equal(first.GetOutputJson(), bytes.Repeat([]byte("a"), 100)) {
		t.Errorf("the first frame's message changed when the second was read: %v", &first)
	}
	if second.GetOutputJson()[0] != 'b' {
		t.Errorf("second frame: %v", &second)
	}
}

// BenchmarkFrameRoundTrip writes and reads back a call's Invoke and its
// Result, as the two ends of a call do; the frames' buffers are reused.
func BenchmarkFrameRoundTrip(b *testing.B) {
	inv := &nodev1.Frame{Body: &nodev1.Frame_Invoke{Invoke: &nodev1.Invoke{
		RequestId: "01ARZ3NDEKTSV4RRFFQ69G5FAV", Capability: "bench.echo", ArgsJson: []byte(`{"n":1}`), Caller: "gateway admin",
	}}}
	res := &nodev1.Frame{Body: &nodev1.Frame_Result{Result: &nodev1.Result{
		RequestId: "01ARZ3NDEKTSV4RRFFQ69G5FAV", Ok: true, OutputJson: []byte(`{"n":1}`),
	}}}
	var buf bytes.Buffer
	var f nodev1.Frame
	b.ReportAllocs()
	for b.Loop() {
		for _, m := range []*nodev1.Frame{inv, res} {
			if err := WriteFrame(&buf, m); err != nil {
				b.Fatal(err)
			}
			f.Reset()
			if err := ReadFrame(&buf, &f); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func TestShutdownWindow(t *testing.T) {
	for _, within := range []time.Duration{0, time.Millisecond, 25 * time.Second, MaxShutdownWindow} {
		code := ShutdownWithin(within)
		if got, ok := ShutdownWindow(code); !ok || got != within {
			t.Errorf("ShutdownWindow(ShutdownWithin(%v)) = %v, %t", within, got, ok)
		}
	}
	// Windows outside the range are held to it, as a node holds a GoAway's.
	if got, _ := ShutdownWindow(ShutdownWithin(time.Hour)); got != MaxShutdownWindow {
		t.Errorf("a window of an hour is carried as %v, want %v", got, MaxShutdownWindow)
	}
	if got, _ := ShutdownWindow(ShutdownWithin(-time.Second)); got != 0 {
		t.Errorf("a negative window is carried as %v, want 0", got)
	}
	for _, code := range []uint64{CodeNoError, CodeShutdown, CodeBusy, CodeShutdownWithin - 1, ShutdownWithin(MaxShutdownWindow) + 1, 1<<62 - 1} {
		if within, ok := ShutdownWindow(code); ok {
			t.Errorf("code %#x reads as a shutdown window of %v", code, within)
		}
	}
}

func FuzzShutdownWindow(f *testing.F) {
	for _, code := range []uint64{0, CodeShutdown, CodeShutdownWithin, ShutdownWithin(25 * time.Second), ShutdownWithin(MaxShutdownWindow) + 1} {
		f.Add(code)
	}
	f.Fuzz(func(t *testing.T, code uint64) {
		within, ok := ShutdownWindow(code)
		if !ok {
			if within != 0 {
				t.Fatalf("code %#x: no window, yet %v", code, within)
			}
			return
		}
		if within < 0 || within > MaxShutdownWindow || within%time.Millisecond != 0 {
			t.Fatalf("code %#x: window %v outside [0, %v] or finer than a millisecond", code, within, MaxShutdownWindow)
		}
		if ShutdownWithin(within) != code {
			t.Fatalf("code %#x reads as %v, which is carried as %#x", code, within, ShutdownWithin(within))
		}
	})
}
