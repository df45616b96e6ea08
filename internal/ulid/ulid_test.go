package ulid

import (
	"bytes"
	"errors"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"
)

// bigEncode is an independent reference encoder: the 16 bytes as one
// big-endian number, printed in base 32 with the Crockford alphabet and
// padded to 26 digits.
func bigEncode(u ULID) string {
	n := new(big.Int).SetBytes(u[:])
	s := strings.ToUpper(n.Text(32)) // digits 0-9a-v
	var b strings.Builder
	for range EncodedSize - len(s) {
		b.WriteByte('0')
	}
	for _, c := range s {
		v := strings.IndexRune("0123456789ABCDEFGHIJKLMNOPQRSTUV", c)
		b.WriteByte(alphabet[v])
	}
	return b.String()
}

func fill(b byte) ULID {
	var u ULID
	for i := range u {
		u[i] = b
	}
	return u
}

func TestKnownVectors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		u    ULID
		want string
	}{
		{"zero", ULID{}, "00000000000000000000000000"},
		{"max", fill(0xFF), "7ZZZZZZZZZZZZZZZZZZZZZZZZZ"},
		{"one", ULID{15: 1}, "00000000000000000000000001"},
		{"thirty-one", ULID{15: 31}, "0000000000000000000000000Z"},
		{"thirty-two", ULID{15: 32}, "00000000000000000000000010"},
		{"top bit", ULID{0: 0x80}, "40000000000000000000000000"},
		{"time 1 ms", ULID{5: 1}, "00000000010000000000000000"},
		{"all 0x55", fill(0x55), "2NANANANANANANANANANANANAN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.u.String(); got != tt.want {
				t.Errorf("String() = %s, want %s", got, tt.want)
			}
			if ref := bigEncode(tt.u); ref != tt.want {
				t.Errorf("reference encoder gives %s, want %s (bad vector)", ref, tt.want)
			}
			got, err := Parse(tt.want)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.u {
				t.Errorf("Parse(%s) = %x, want %x", tt.want, got[:], tt.u[:])
			}
		})
	}
}

// The time parts below are the reference implementation's published
// examples: ulid/javascript's README ulid(1469918176385) →
// "01ARYZ6S41TSV4RRFFQ69G5FAV", and 1698075890563 → "01HDEKBMW3…".
func TestTimeVectors(t *testing.T) {
	t.Parallel()
	zero := bytes.NewReader(make([]byte, 10))
	tests := []struct {
		ms   int64
		want string
	}{
		{0, "0000000000"},
		{1469918176385, "01ARYZ6S41"},
		{1698075890563, "01HDEKBMW3"},
		{1<<48 - 1, "7ZZZZZZZZZ"},
	}
	for _, tt := range tests {
		zero.Reset(make([]byte, 10))
		u, err := New(time.UnixMilli(tt.ms), zero)
		if err != nil {
			t.Fatal(err)
		}
		if got := u.String(); got != tt.want+"0000000000000000" {
			t.Errorf("time %d: %s, want %s + 16 zeros", tt.ms, got, tt.want)
		}
		if got := u.Time(); got.UnixMilli() != tt.ms || got.Location() != time.UTC {
			t.Errorf("time %d: Time() = %v", tt.ms, got)
		}
	}
	// The random part of the reference example.
	u, err := Parse("01ARYZ6S41TSV4RRFFQ69G5FAV")
	if err != nil {
		t.Fatal(err)
	}
	if u.Time().UnixMilli() != 1469918176385 {
		t.Fatalf("reference example time %d", u.Time().UnixMilli())
	}
	if ref := bigEncode(u); ref != "01ARYZ6S41TSV4RRFFQ69G5FAV" {
		t.Fatalf("reference encoder disagrees: %s", ref)
	}
}

func TestNewUsesRandAndTime(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 4, 5, 6, 7, 891_234_567, time.UTC)
	entropy := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 99}
	r := bytes.NewReader(entropy)
	u, err := New(now, r)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(u[6:], entropy[:10]) {
		t.Errorf("random part %x, want %x", u[6:], entropy[:10])
	}
	if r.Len() != 1 {
		t.Errorf("New read %d bytes, want 10", len(entropy)-r.Len())
	}
	if want := now.Truncate(time.Millisecond); !u.Time().Equal(want) {
		t.Errorf("Time() = %v, want %v", u.Time(), want)
	}
	// nil means crypto/rand: two calls differ.
	a, err := New(now, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(now, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Error("two ULIDs from crypto/rand are equal")
	}
	if !a.Time().Equal(b.Time()) {
		t.Error("same time, different time parts")
	}
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		now  time.Time
		rand *bytes.Reader
		want string
	}{
		{"before epoch", time.Unix(0, 0).Add(-time.Millisecond), bytes.NewReader(make([]byte, 10)), "before the Unix epoch"},
		{"just before epoch", time.Unix(0, -1), bytes.NewReader(make([]byte, 10)), "before the Unix epoch"},
		{"after max", MaxTime.Add(time.Millisecond), bytes.NewReader(make([]byte, 10)), "after"},
		{"short rand", time.Unix(0, 0), bytes.NewReader(make([]byte, 9)), "random"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u, err := New(tt.now, tt.rand)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v, want an error about %q", err, tt.want)
			}
			if !u.IsZero() {
				t.Errorf("New returned %s with an error", u)
			}
		})
	}
	if _, err := New(MaxTime, bytes.NewReader(make([]byte, 10))); err != nil {
		t.Errorf("New(MaxTime): %v", err)
	}
}

func TestParseRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", "length 0"},
		{"short", "0000000000000000000000000", "length 25"},
		{"long", "000000000000000000000000000", "length 27"},
		{"very long", strings.Repeat("0", 1000), "length 1000"},
		{"I", "0000000000000000000000000I", "character 26"},
		{"L", "000000000000L0000000000000", "character 13"},
		{"O", "O0000000000000000000000000", "character 1"},
		{"U", "0000000000000000000000000U", "character 26"},
		{"lower u", "0000000000000000000000000u", "character 26"},
		{"dash", "01ARYZ6S41-TSV4RRFFQ69G5FA", "character 11"},
		{"space", " 1ARYZ6S41TSV4RRFFQ69G5FAV", "character 1"},
		{"non-ASCII", "01ARYZ6S41TSV4RRFFQ69G5F\u00e9", "character 25"},
		{"overflow 8", "80000000000000000000000000", "above '7'"},
		{"overflow Z", "ZZZZZZZZZZZZZZZZZZZZZZZZZZ", "above '7'"},
		{"overflow lower", "g0000000000000000000000000", "above '7'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u, err := Parse(tt.in)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse(%q): %v, want ErrInvalid", tt.in, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse(%q): %q does not say %q", tt.in, err, tt.want)
			}
			if len(err.Error()) > 200 {
				t.Errorf("error is %d bytes long", len(err.Error()))
			}
			if !u.IsZero() {
				t.Errorf("Parse returned %s with an error", u)
			}
			var v ULID
			if err := v.UnmarshalText([]byte(tt.in)); !errors.Is(err, ErrInvalid) {
				t.Errorf("UnmarshalText(%q): %v, want ErrInvalid", tt.in, err)
			}
		})
	}
}

func TestParseCaseInsensitive(t *testing.T) {
	t.Parallel()
	want, err := Parse("01ARYZ6S41TSV4RRFFQ69G5FAV")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"01aryz6s41tsv4rrffq69g5fav", "01ArYz6S41tSv4RrFfQ69g5FaV"} {
		got, err := Parse(s)
		if err != nil {
			t.Fatalf("Parse(%q): %v", s, err)
		}
		if got != want {
			t.Errorf("Parse(%q) = %s, want %s", s, got, want)
		}
	}
	if got := want.String(); got != "01ARYZ6S41TSV4RRFFQ69G5FAV" {
		t.Errorf("String() = %s, not upper case", got)
	}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	// Deterministic "random" bytes: every byte value appears.
	src := make([]byte, 16*300)
	for i := range src {
		src[i] = byte(i*131 + i/16)
	}
	for i := 0; i+16 <= len(src); i += 16 {
		var u ULID
		copy(u[:], src[i:])
		s := u.String()
		if ref := bigEncode(u); s != ref {
			t.Fatalf("%x: String() = %s, reference %s", u[:], s, ref)
		}
		got, err := Parse(s)
		if err != nil {
			t.Fatalf("Parse(%s): %v", s, err)
		}
		if got != u {
			t.Fatalf("round trip %x → %s → %x", u[:], s, got[:])
		}
		txt, _ := u.MarshalText()
		var v ULID
		if err := v.UnmarshalText(txt); err != nil || v != u || string(txt) != s {
			t.Fatalf("text round trip %x → %s → %x, %v", u[:], txt, v[:], err)
		}
	}
}

func TestOrderFollowsTime(t *testing.T) {
	t.Parallel()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	// The random part falls as time rises, so only the time part can give
	// the order.
	var ids []ULID
	for i := range 200 {
		r := bytes.NewReader(bytes.Repeat([]byte{byte(255 - i)}, 10))
		u, err := New(base.Add(time.Duration(i*i)*time.Millisecond), r)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, u)
	}
	for i := 1; i < len(ids); i++ {
		a, b := ids[i-1], ids[i]
		if !(a.String() < b.String()) {
			t.Fatalf("%s (%v) does not sort before %s (%v)", a, a.Time(), b, b.Time())
		}
		if bytes.Compare(a[:], b[:]) >= 0 {
			t.Fatalf("bytes of %s do not sort before %s", a, b)
		}
	}
	strs := make([]string, len(ids))
	for i, u := range ids {
		strs[len(ids)-1-i] = u.String()
	}
	slices.Sort(strs)
	for i, u := range ids {
		if strs[i] != u.String() {
			t.Fatalf("sorted strings differ at %d", i)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"00000000000000000000000000",
		"7ZZZZZZZZZZZZZZZZZZZZZZZZZ",
		"01ARYZ6S41TSV4RRFFQ69G5FAV",
		"01aryz6s41tsv4rrffq69g5fav",
		"80000000000000000000000000",
		"0000000000000000000000000I",
		"",
		"01ARYZ6S41",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse(%q): error %v does not wrap ErrInvalid", s, err)
			}
			return
		}
		out := u.String()
		if !strings.EqualFold(out, s) {
			t.Fatalf("Parse(%q).String() = %q", s, out)
		}
		if out != strings.ToUpper(out) {
			t.Fatalf("String() = %q is not upper case", out)
		}
		again, err := Parse(out)
		if err != nil || again != u {
			t.Fatalf("Parse(%q) = %x, %v; want %x", out, again[:], err, u[:])
		}
		if ref := bigEncode(u); ref != out {
			t.Fatalf("String() = %s, reference %s", out, ref)
		}
	})
}

func BenchmarkString(b *testing.B) {
	u := fill(0xA5)
	for b.Loop() {
		_ = u.String()
	}
}

func BenchmarkParse(b *testing.B) {
	s := fill(0xA5).String()
	for b.Loop() {
		if _, err := Parse(s); err != nil {
			b.Fatal(err)
		}
	}
}
