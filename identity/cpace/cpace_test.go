package cpace

import (
	"bytes"
	"crypto/rand"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gtank/ristretto255"
)

// vectorFile is the draft-21 vector set for CPACE-RISTR255-SHA512, kept in
// this package's testdata (its README says where the values come from).
const vectorFile = "cpace-ristretto255-sha512.json"

// ignoredVectorKeys are the top-level keys TestVectors does not compare with
// anything. "source" is provenance prose (document, commit, paths, a note);
// nothing in it is a protocol value, so there is nothing to check it against.
// Every other key, including the suite and hash names, is checked.
var ignoredVectorKeys = []string{"source"}

func vectorPath(tb testing.TB) string {
	tb.Helper()
	return filepath.Join("testdata", vectorFile)
}

// vectors is the parsed vector file. It records every key a test reads, so
// TestVectors can fail when the file holds a value nobody compared.
type vectors struct {
	tb      testing.TB
	root    map[string]any
	checked map[string]bool
}

func loadVectors(tb testing.TB) *vectors {
	tb.Helper()
	path := vectorPath(tb)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		tb.Fatalf("CPace test vectors not found: expected %s in identity/cpace", path)
	}
	if err != nil {
		tb.Fatalf("reading CPace test vectors: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var root map[string]any
	if err := dec.Decode(&root); err != nil {
		tb.Fatalf("parsing %s: %v", path, err)
	}
	return &vectors{tb: tb, root: root, checked: make(map[string]bool)}
}

// value returns the value at a dotted path and marks the path checked.
func (v *vectors) value(path string) any {
	v.tb.Helper()
	var cur any = v.root
	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			v.tb.Fatalf("vector %q: %v is not an object", path, cur)
		}
		if cur, ok = m[k]; !ok {
			v.tb.Fatalf("vector %q is missing from the file", path)
		}
	}
	v.checked[path] = true
	return cur
}

func (v *vectors) str(path string) string {
	v.tb.Helper()
	s, ok := v.value(path).(string)
	if !ok {
		v.tb.Fatalf("vector %q is not a string", path)
	}
	return s
}

func (v *vectors) hex(path string) []byte {
	v.tb.Helper()
	b, err := hex.DecodeString(v.str(path))
	if err != nil {
		v.tb.Fatalf("vector %q: %v", path, err)
	}
	return b
}

func (v *vectors) int(path string) int {
	v.tb.Helper()
	n, ok := v.value(path).(json.Number)
	if !ok {
		v.tb.Fatalf("vector %q is not a number", path)
	}
	i, err := n.Int64()
	if err != nil {
		v.tb.Fatalf("vector %q: %v", path, err)
	}
	return int(i)
}

// list decodes the array at path into dst (a pointer to a slice of structs),
// refusing fields the struct does not know, so no field of an entry goes
// unchecked.
func (v *vectors) list(path string, dst any) {
	v.tb.Helper()
	raw, err := json.Marshal(v.value(path))
	if err != nil {
		v.tb.Fatalf("vector %q: %v", path, err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		v.tb.Fatalf("vector %q: %v", path, err)
	}
}

// unchecked lists the leaf keys (dotted paths) that no test read, apart from
// the ignored top-level keys. Arrays are leaves; list checks their entries.
func (v *vectors) unchecked() []string {
	var out []string
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, val := range m {
			path := prefix + k
			if prefix == "" && slices.Contains(ignoredVectorKeys, k) {
				continue
			}
			if sub, ok := val.(map[string]any); ok {
				walk(path+".", sub)
				continue
			}
			if !v.checked[path] {
				out = append(out, path)
			}
		}
	}
	walk("", v.root)
	slices.Sort(out)
	return out
}

// hexBytes is a hex string in a vector entry. A present field decodes to a
// non-nil slice, so nil means the field was missing.
type hexBytes []byte

func (h *hexBytes) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	d, err := hex.DecodeString(s)
	if err != nil {
		return err
	}
	*h = append(hexBytes{}, d...)
	return nil
}

func requireFields(t *testing.T, i int, fields ...hexBytes) {
	t.Helper()
	for _, f := range fields {
		if f == nil {
			t.Fatalf("entry %d lacks a field", i)
		}
	}
}

func checkBytes(t *testing.T, name string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Errorf("%s:\n got  %x\n want %x", name, got, want)
	}
}

func mustScalar(tb testing.TB, b []byte) *ristretto255.Scalar {
	tb.Helper()
	var s ristretto255.Scalar
	if err := s.Decode(b); err != nil {
		tb.Fatalf("scalar %x: %v", b, err)
	}
	return &s
}

func mustParty(tb testing.TB, role Role, y []byte, prs, ci, sid, ad []byte) *Party {
	tb.Helper()
	p, err := newWithScalar(role, mustScalar(tb, y), prs, ci, sid, ad)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// TestVectors checks every value of draft-irtf-cfrg-cpace-21 Appendix B.3 and
// the string-helper vectors of Appendix A, one by one. Its subtests run in
// order, not in parallel, because they share the record of checked keys that
// the last step compares with the file.
func TestVectors(t *testing.T) {
	v := loadVectors(t)

	prs := v.hex("PRS")
	ci := v.hex("CI")
	sid := v.hex("sid")
	adA := v.hex("ADa")
	adB := v.hex("ADb")
	ya := v.hex("ya")
	yb := v.hex("yb")
	shareA := v.hex("Ya")
	shareB := v.hex("Yb")
	k := v.hex("K")
	gi := v.hex("G_I")

	t.Run("suite", func(t *testing.T) {
		if got := v.str("suite"); got != "CPACE-RISTR255-SHA512" {
			t.Errorf("suite = %q, this package implements CPACE-RISTR255-SHA512", got)
		}
		if got := v.str("H"); got != "SHA-512" {
			t.Errorf("H = %q, want SHA-512", got)
		}
		if got := v.int("H_s_in_bytes"); got != sha512.BlockSize {
			t.Errorf("H_s_in_bytes = %d, want %d", got, sha512.BlockSize)
		}
		if got := v.int("H_b_in_bytes"); got != sha512.Size {
			t.Errorf("H_b_in_bytes = %d, want %d", got, sha512.Size)
		}
		checkBytes(t, "DSI", []byte(DSI), v.hex("DSI"))
		checkBytes(t, "DSI_ISK", []byte(dsiISK), v.hex("DSI_ISK"))
		checkBytes(t, "G_I", identityEncoding[:], gi)
		checkBytes(t, "G_I is the encoded identity", ristretto255.NewElement().Encode(nil), gi)
		// The README describes CI as lv("A_initiator") || lv("B_responder").
		checkBytes(t, "CI", LVCat([]byte("A_initiator"), []byte("B_responder")), ci)
	})

	t.Run("generator", func(t *testing.T) {
		if got, want := zpadLen([]byte(DSI), prs, sha512.BlockSize), v.int("ZPAD_length"); got != want {
			t.Errorf("ZPAD_length = %d, want %d", got, want)
		}
		gs := GeneratorString([]byte(DSI), prs, ci, sid, v.int("H_s_in_bytes"))
		checkBytes(t, "generator_string", gs, v.hex("generator_string"))
		h := sha512.Sum512(gs)
		checkBytes(t, "gen_str_hash", h[:], v.hex("gen_str_hash"))
		checkBytes(t, "g", Generator(prs, ci, sid).Encode(nil), v.hex("g"))
	})

	t.Run("shares", func(t *testing.T) {
		checkBytes(t, "Ya", mustParty(t, Initiator, ya, prs, ci, sid, adA).Share(), shareA)
		checkBytes(t, "Yb", mustParty(t, Responder, yb, prs, ci, sid, adB).Share(), shareB)
	})

	t.Run("K", func(t *testing.T) {
		checkBytes(t, "K = scalar_mult_vfy(ya, Yb)", scalarMultVfy(ya, shareB), k)
		checkBytes(t, "K = scalar_mult_vfy(yb, Ya)", scalarMultVfy(yb, shareA), k)
	})

	t.Run("initiator-responder", func(t *testing.T) {
		transcript := v.hex("transcript_ir")
		checkBytes(t, "transcript_ir", TranscriptIR(shareA, adA, shareB, adB), transcript)
		checkBytes(t, "ISK_IR_hash_input", iskHashInput(sid, k, transcript), v.hex("ISK_IR_hash_input"))
		want := v.hex("ISK_IR")
		wantSid := v.hex("sid_output_ir")

		ini := mustParty(t, Initiator, ya, prs, ci, sid, adA)
		isk, err := ini.Finish(shareB, adB)
		if err != nil {
			t.Fatalf("initiator Finish: %v", err)
		}
		checkBytes(t, "ISK_IR (initiator)", isk, want)
		checkBytes(t, "sid_output_ir (initiator)", ini.SidOutput(), wantSid)

		res := mustParty(t, Responder, yb, prs, ci, sid, adB)
		isk, err = res.Finish(shareA, adA)
		if err != nil {
			t.Fatalf("responder Finish: %v", err)
		}
		checkBytes(t, "ISK_IR (responder)", isk, want)
		checkBytes(t, "sid_output_ir (responder)", res.SidOutput(), wantSid)
	})

	t.Run("symmetric", func(t *testing.T) {
		transcript := v.hex("transcript_oc")
		checkBytes(t, "transcript_oc", TranscriptOC(shareA, adA, shareB, adB), transcript)
		checkBytes(t, "transcript_oc (arguments swapped)", TranscriptOC(shareB, adB, shareA, adA), transcript)
		input := iskHashInput(sid, k, transcript)
		checkBytes(t, "ISK_SY_hash_input", input, v.hex("ISK_SY_hash_input"))
		isk := sha512.Sum512(input)
		checkBytes(t, "ISK_SY", isk[:], v.hex("ISK_SY"))
		checkBytes(t, "sid_output_oc", sidOutput(transcript), v.hex("sid_output_oc"))
	})

	t.Run("scalar_mult_valid", func(t *testing.T) {
		s := v.hex("scalar_mult_valid.s")
		x := v.hex("scalar_mult_valid.X")
		// scalar_mult without verification: encode(s * decode(X)).
		var e ristretto255.Element
		if err := e.Decode(x); err != nil {
			t.Fatalf("decoding X: %v", err)
		}
		plain := ristretto255.NewElement().ScalarMult(mustScalar(t, s), &e).Encode(nil)
		checkBytes(t, "scalar_mult_s_decode_X", plain, v.hex("scalar_mult_valid.scalar_mult_s_decode_X"))
		checkBytes(t, "scalar_mult_vfy_s_X", scalarMultVfy(s, x), v.hex("scalar_mult_valid.scalar_mult_vfy_s_X"))
	})

	t.Run("scalar_mult_vfy_invalid", func(t *testing.T) {
		s := v.hex("scalar_mult_vfy_invalid.s")
		want := v.hex("scalar_mult_vfy_invalid.expected")
		checkBytes(t, "expected is G.I", want, gi)
		for _, key := range []string{"Y_i1", "Y_i2"} {
			y := v.hex("scalar_mult_vfy_invalid." + key)
			checkBytes(t, "scalar_mult_vfy(s, "+key+")", scalarMultVfy(s, y), want)
		}
	})

	t.Run("string_utils/prepend_len", func(t *testing.T) {
		var entries []struct {
			Input  hexBytes `json:"input"`
			Output hexBytes `json:"output"`
		}
		v.list("string_utils.prepend_len", &entries)
		if len(entries) == 0 {
			t.Fatal("no entries")
		}
		for i, e := range entries {
			requireFields(t, i, e.Input, e.Output)
			checkBytes(t, "prepend_len", PrependLen(e.Input), e.Output)
		}
	})

	t.Run("string_utils/lv_cat", func(t *testing.T) {
		var entries []struct {
			Inputs []hexBytes `json:"inputs"`
			Output hexBytes   `json:"output"`
		}
		v.list("string_utils.lv_cat", &entries)
		if len(entries) == 0 {
			t.Fatal("no entries")
		}
		for i, e := range entries {
			requireFields(t, i, e.Output)
			if e.Inputs == nil {
				t.Fatalf("entry %d lacks inputs", i)
			}
			parts := make([][]byte, len(e.Inputs))
			for j, in := range e.Inputs {
				parts[j] = in
			}
			checkBytes(t, "lv_cat", LVCat(parts...), e.Output)
		}
	})

	t.Run("string_utils/lexiographically_larger", func(t *testing.T) {
		var entries []struct {
			Bytes1 hexBytes `json:"bytes1"`
			Bytes2 hexBytes `json:"bytes2"`
			Result *bool    `json:"result"`
		}
		v.list("string_utils.lexiographically_larger", &entries)
		if len(entries) == 0 {
			t.Fatal("no entries")
		}
		for i, e := range entries {
			requireFields(t, i, e.Bytes1, e.Bytes2)
			if e.Result == nil {
				t.Fatalf("entry %d lacks result", i)
			}
			if got := LexiographicallyLarger(e.Bytes1, e.Bytes2); got != *e.Result {
				t.Errorf("LexiographicallyLarger(%x, %x) = %v, want %v", e.Bytes1, e.Bytes2, got, *e.Result)
			}
		}
	})

	t.Run("string_utils/o_cat", func(t *testing.T) {
		var entries []struct {
			Inputs []hexBytes `json:"inputs"`
			Output hexBytes   `json:"output"`
		}
		v.list("string_utils.o_cat", &entries)
		if len(entries) == 0 {
			t.Fatal("no entries")
		}
		for i, e := range entries {
			requireFields(t, i, e.Output)
			if len(e.Inputs) != 2 {
				t.Fatalf("entry %d: o_cat takes 2 inputs, got %d", i, len(e.Inputs))
			}
			checkBytes(t, "o_cat", OCat(e.Inputs[0], e.Inputs[1]), e.Output)
			checkBytes(t, "o_cat (swapped)", OCat(e.Inputs[1], e.Inputs[0]), e.Output)
		}
	})

	type transcriptEntry struct {
		Ya     hexBytes `json:"Ya"`
		ADa    hexBytes `json:"ADa"`
		Yb     hexBytes `json:"Yb"`
		ADb    hexBytes `json:"ADb"`
		Output hexBytes `json:"output"`
	}
	for _, tc := range []struct {
		key string
		fn  func(ya, ada, yb, adb []byte) []byte
	}{
		{"transcript_ir", TranscriptIR},
		{"transcript_oc", TranscriptOC},
	} {
		t.Run("string_utils/"+tc.key, func(t *testing.T) {
			var entries []transcriptEntry
			v.list("string_utils."+tc.key, &entries)
			if len(entries) == 0 {
				t.Fatal("no entries")
			}
			for i, e := range entries {
				requireFields(t, i, e.Ya, e.ADa, e.Yb, e.ADb, e.Output)
				checkBytes(t, tc.key, tc.fn(e.Ya, e.ADa, e.Yb, e.ADb), e.Output)
			}
		})
	}

	if missed := v.unchecked(); len(missed) > 0 {
		t.Errorf("vector values nobody checked (check them or justify ignoring them): %s", strings.Join(missed, ", "))
	}
}

// side is one party's inputs to a run.
type side struct {
	prs, ci, sid, ad []byte
}

func baseSide(ad string) side {
	return side{
		prs: []byte("correct horse"),
		ci:  LVCat([]byte("palyra-test"), []byte("gateway cert fingerprint")),
		sid: []byte("0123456789abcdef"),
		ad:  []byte(ad),
	}
}

// exchange runs both parties with fresh randomness. deliverToRes is the AD
// the responder receives from the initiator; nil means the initiator's own.
func exchange(tb testing.TB, ini, res side, iniRole, resRole Role, deliverToRes []byte) (iskI, iskR []byte) {
	tb.Helper()
	a, err := New(iniRole, rand.Reader, ini.prs, ini.ci, ini.sid, ini.ad)
	if err != nil {
		tb.Fatal(err)
	}
	b, err := New(resRole, rand.Reader, res.prs, res.ci, res.sid, res.ad)
	if err != nil {
		tb.Fatal(err)
	}
	if deliverToRes == nil {
		deliverToRes = ini.ad
	}
	if iskR, err = b.Finish(a.Share(), deliverToRes); err != nil {
		tb.Fatalf("responder Finish: %v", err)
	}
	if iskI, err = a.Finish(b.Share(), res.ad); err != nil {
		tb.Fatalf("initiator Finish: %v", err)
	}
	if len(iskI) != sha512.Size || len(iskR) != sha512.Size {
		tb.Fatalf("ISK lengths %d and %d, want %d", len(iskI), len(iskR), sha512.Size)
	}
	return iskI, iskR
}

func TestExchangeAgreement(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		ini, res side
		resRole  Role
		adToRes  []byte
		wantSame bool
	}{
		{name: "same inputs", ini: baseSide("a"), res: baseSide("b"), resRole: Responder, wantSame: true},
		{name: "empty sid and AD", ini: side{prs: []byte("pw"), ci: []byte("ci")}, res: side{prs: []byte("pw"), ci: []byte("ci")}, resRole: Responder, wantSame: true},
		{name: "wrong password", ini: baseSide("a"), res: func() side { s := baseSide("b"); s.prs = []byte("correct hors3"); return s }(), resRole: Responder},
		{name: "different CI", ini: baseSide("a"), res: func() side { s := baseSide("b"); s.ci = []byte("another certificate"); return s }(), resRole: Responder},
		{name: "different sid", ini: baseSide("a"), res: func() side { s := baseSide("b"); s.sid = []byte("0123456789abcdeF"); return s }(), resRole: Responder},
		{name: "AD altered in transit", ini: baseSide("a"), res: baseSide("b"), resRole: Responder, adToRes: []byte("A")},
		{name: "both think they initiate", ini: baseSide("a"), res: baseSide("b"), resRole: Initiator},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			iskI, iskR := exchange(t, tc.ini, tc.res, Initiator, tc.resRole, tc.adToRes)
			if got := bytes.Equal(iskI, iskR); got != tc.wantSame {
				t.Errorf("ISKs equal = %v, want %v\n initiator %x\n responder %x", got, tc.wantSame, iskI, iskR)
			}
		})
	}
}

func TestFreshRunsDiffer(t *testing.T) {
	t.Parallel()
	i1, r1 := exchange(t, baseSide("a"), baseSide("b"), Initiator, Responder, nil)
	i2, r2 := exchange(t, baseSide("a"), baseSide("b"), Initiator, Responder, nil)
	if !bytes.Equal(i1, r1) || !bytes.Equal(i2, r2) {
		t.Fatal("the two sides of a run disagree")
	}
	if bytes.Equal(i1, i2) {
		t.Error("two runs with fresh scalars produced the same ISK")
	}
}

// TestFinishRejectsBadShares feeds shares that must make Finish fail.
func TestFinishRejectsBadShares(t *testing.T) {
	t.Parallel()
	v := loadVectors(t)
	valid := v.hex("Yb")
	odd := bytes.Clone(valid)
	odd[0] |= 1 // an odd s is "negative" and never a canonical encoding
	// p = 2^255 - 19 itself, which is not reduced.
	p, _ := hex.DecodeString("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")

	tests := []struct {
		name  string
		share []byte
		want  []error // Finish must fail with one of these
	}{
		{"identity", make([]byte, ShareSize), []error{ErrInvalidShare, ErrIdentity}},
		{"Y_i1 (negative s)", v.hex("scalar_mult_vfy_invalid.Y_i1"), []error{ErrInvalidShare}},
		{"Y_i2 (identity)", v.hex("scalar_mult_vfy_invalid.Y_i2"), []error{ErrInvalidShare, ErrIdentity}},
		{"odd s", odd, []error{ErrInvalidShare}},
		{"unreduced field element", p, []error{ErrInvalidShare}},
		{"all ones", bytes.Repeat([]byte{0xff}, ShareSize), []error{ErrInvalidShare}},
		{"nil", nil, []error{ErrInvalidShare}},
		{"empty", []byte{}, []error{ErrInvalidShare}},
		{"31 bytes", valid[:31], []error{ErrInvalidShare}},
		{"33 bytes", append(bytes.Clone(valid), 0), []error{ErrInvalidShare}},
		{"64 bytes", append(bytes.Clone(valid), valid...), []error{ErrInvalidShare}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := baseSide("a")
			party, err := New(Initiator, rand.Reader, s.prs, s.ci, s.sid, s.ad)
			if err != nil {
				t.Fatal(err)
			}
			isk, err := party.Finish(tc.share, []byte("b"))
			if err == nil {
				t.Fatalf("Finish accepted share %x", tc.share)
			}
			if !slices.ContainsFunc(tc.want, func(e error) bool { return errors.Is(err, e) }) {
				t.Errorf("Finish error = %v, want one of %v", err, tc.want)
			}
			if isk != nil {
				t.Errorf("Finish returned an ISK with an error: %x", isk)
			}
			if party.SidOutput() != nil {
				t.Error("SidOutput is set after a failed Finish")
			}
			// A failed Finish still ends the run: no second attempt with
			// the same scalar.
			if _, err := party.Finish(valid, []byte("b")); !errors.Is(err, ErrFinished) {
				t.Errorf("Finish after a failed Finish = %v, want ErrFinished", err)
			}
		})
	}
}

// TestZeroScalarAborts reaches the K == G.I abort: a zero scalar turns any
// valid share into the identity. New never produces one (see
// TestNewRandomness); newWithScalar lets the test inject it.
func TestZeroScalarAborts(t *testing.T) {
	t.Parallel()
	v := loadVectors(t)
	p, err := newWithScalar(Initiator, ristretto255.NewScalar(), v.hex("PRS"), v.hex("CI"), v.hex("sid"), v.hex("ADa"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Finish(v.hex("Yb"), v.hex("ADb")); !errors.Is(err, ErrIdentity) {
		t.Errorf("Finish with a zero scalar = %v, want ErrIdentity", err)
	}
}

// TestTamperedShare flips single bits of the responder's share on its way to
// the initiator: Finish must fail or the ISKs must differ.
func TestTamperedShare(t *testing.T) {
	t.Parallel()
	for _, bit := range []int{0, 1, 7, 8, 100, 128, 200, 254, 255} {
		t.Run(fmt.Sprintf("bit %d", bit), func(t *testing.T) {
			t.Parallel()
			s := baseSide("a")
			ini, err := New(Initiator, rand.Reader, s.prs, s.ci, s.sid, []byte("a"))
			if err != nil {
				t.Fatal(err)
			}
			res, err := New(Responder, rand.Reader, s.prs, s.ci, s.sid, []byte("b"))
			if err != nil {
				t.Fatal(err)
			}
			iskR, err := res.Finish(ini.Share(), []byte("a"))
			if err != nil {
				t.Fatal(err)
			}
			tampered := res.Share()
			tampered[bit/8] ^= 1 << (bit % 8)
			iskI, err := ini.Finish(tampered, []byte("b"))
			if err != nil {
				if !errors.Is(err, ErrInvalidShare) && !errors.Is(err, ErrIdentity) {
					t.Errorf("Finish error = %v, want ErrInvalidShare or ErrIdentity", err)
				}
				return
			}
			if bytes.Equal(iskI, iskR) {
				t.Error("a tampered share gave the same ISK")
			}
		})
	}
}

func TestFinishTwice(t *testing.T) {
	t.Parallel()
	s := baseSide("a")
	ini, err := New(Initiator, rand.Reader, s.prs, s.ci, s.sid, []byte("a"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := New(Responder, rand.Reader, s.prs, s.ci, s.sid, []byte("b"))
	if err != nil {
		t.Fatal(err)
	}
	if ini.SidOutput() != nil {
		t.Error("SidOutput is set before Finish")
	}
	isk, err := ini.Finish(res.Share(), []byte("b"))
	if err != nil {
		t.Fatal(err)
	}
	sidOut := ini.SidOutput()
	if len(sidOut) != sha512.Size {
		t.Errorf("SidOutput has %d bytes, want %d", len(sidOut), sha512.Size)
	}
	if ini.y != nil {
		t.Error("the secret scalar is still held after Finish")
	}
	again, err := ini.Finish(res.Share(), []byte("b"))
	if !errors.Is(err, ErrFinished) || again != nil {
		t.Errorf("second Finish = %x, %v; want nil, ErrFinished", again, err)
	}
	if !bytes.Equal(ini.SidOutput(), sidOut) {
		t.Error("SidOutput changed after a refused second Finish")
	}
	iskR, err := res.Finish(ini.Share(), []byte("a"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(isk, iskR) {
		t.Error("the two sides disagree")
	}
	if !bytes.Equal(res.SidOutput(), sidOut) {
		t.Error("the two sides' SidOutput differ")
	}
}

// TestFinishErasesScalar checks that the scalar object itself is zeroed, not
// only dropped.
func TestFinishErasesScalar(t *testing.T) {
	t.Parallel()
	v := loadVectors(t)
	p := mustParty(t, Initiator, v.hex("ya"), v.hex("PRS"), v.hex("CI"), v.hex("sid"), v.hex("ADa"))
	y := p.y
	if _, err := p.Finish(v.hex("Yb"), v.hex("ADb")); err != nil {
		t.Fatal(err)
	}
	if y.Equal(ristretto255.NewScalar()) != 1 {
		t.Error("the secret scalar was not zeroed")
	}
}

func TestShareIsACopy(t *testing.T) {
	t.Parallel()
	s := baseSide("a")
	p, err := New(Initiator, rand.Reader, s.prs, s.ci, s.sid, s.ad)
	if err != nil {
		t.Fatal(err)
	}
	a := p.Share()
	if len(a) != ShareSize {
		t.Fatalf("Share has %d bytes, want %d", len(a), ShareSize)
	}
	a[0] ^= 0xff
	if bytes.Equal(p.Share(), a) {
		t.Error("modifying the returned share changed the party's share")
	}
}

// TestNewRandomness covers how New turns random bytes into a scalar.
func TestNewRandomness(t *testing.T) {
	t.Parallel()
	s := baseSide("a")

	t.Run("top bits are cleared", func(t *testing.T) {
		t.Parallel()
		p, err := New(Initiator, bytes.NewReader(bytes.Repeat([]byte{0xff}, 32)), s.prs, s.ci, s.sid, s.ad)
		if err != nil {
			t.Fatal(err)
		}
		masked := bytes.Repeat([]byte{0xff}, 32)
		masked[31] = 0x0f
		checkBytes(t, "share", p.Share(), mustParty(t, Initiator, masked, s.prs, s.ci, s.sid, s.ad).Share())
	})

	tests := []struct {
		name string
		rand io.Reader
		role Role
		want error // nil: any error
	}{
		{"zero scalar", bytes.NewReader(make([]byte, 32)), Initiator, nil},
		{"zero after masking", bytes.NewReader(append(make([]byte, 31), 0xf0)), Initiator, nil},
		{"short read", bytes.NewReader(make([]byte, 31)), Initiator, io.ErrUnexpectedEOF},
		{"empty reader", bytes.NewReader(nil), Initiator, io.EOF},
		{"nil reader", nil, Initiator, nil},
		{"role zero", rand.Reader, Role(0), nil},
		{"role three", rand.Reader, Role(3), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, err := New(tc.role, tc.rand, s.prs, s.ci, s.sid, s.ad)
			if err == nil {
				t.Fatalf("New succeeded with share %x", p.Share())
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("New error = %v, want %v", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "cpace: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

func TestPrependLen(t *testing.T) {
	t.Parallel()
	tests := []struct {
		n      int
		prefix string
	}{
		{0, "00"},
		{1, "01"},
		{127, "7f"},
		{128, "8001"},
		{300, "ac02"},
		{16383, "ff7f"},
		{16384, "808001"},
	}
	for _, tc := range tests {
		t.Run(tc.prefix, func(t *testing.T) {
			t.Parallel()
			in := bytes.Repeat([]byte{0x5a}, tc.n)
			want, _ := hex.DecodeString(tc.prefix)
			got := PrependLen(in)
			checkBytes(t, "prefix", got[:len(got)-tc.n], want)
			checkBytes(t, "payload", got[len(got)-tc.n:], in)
			if got := lvCatLen([][]byte{in}); got != len(want)+tc.n {
				t.Errorf("lvCatLen = %d, want %d", got, len(want)+tc.n)
			}
		})
	}
}

func TestGeneratorStringPadding(t *testing.T) {
	t.Parallel()
	dsi := []byte(DSI)
	tests := []struct {
		name     string
		prsLen   int
		wantZpad int
	}{
		{"empty password", 0, 128 - 1 - 1 - 18},
		{"one byte of padding", 107, 1},
		{"fills the block exactly", 108, 0},
		{"one byte too long", 109, 0},
		{"two-byte length", 200, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			prs := bytes.Repeat([]byte{'p'}, tc.prsLen)
			if got := zpadLen(dsi, prs, sha512.BlockSize); got != tc.wantZpad {
				t.Errorf("zpadLen = %d, want %d", got, tc.wantZpad)
			}
			got := GeneratorString(dsi, prs, []byte("ci"), []byte("sid"), sha512.BlockSize)
			want := LVCat(dsi, prs, make([]byte, tc.wantZpad), []byte("ci"), []byte("sid"))
			checkBytes(t, "generator_string", got, want)
			if tc.wantZpad > 0 && len(PrependLen(dsi))+len(PrependLen(prs))+1+tc.wantZpad != sha512.BlockSize {
				t.Error("padding does not fill the first block")
			}
		})
	}
}

func BenchmarkExchange(b *testing.B) {
	s := baseSide("a")
	adA, adB := []byte("a"), []byte("b")
	b.ReportAllocs()
	for b.Loop() {
		ini, err := New(Initiator, rand.Reader, s.prs, s.ci, s.sid, adA)
		if err != nil {
			b.Fatal(err)
		}
		res, err := New(Responder, rand.Reader, s.prs, s.ci, s.sid, adB)
		if err != nil {
			b.Fatal(err)
		}
		iskR, err := res.Finish(ini.Share(), adA)
		if err != nil {
			b.Fatal(err)
		}
		iskI, err := ini.Finish(res.Share(), adB)
		if err != nil {
			b.Fatal(err)
		}
		if !bytes.Equal(iskI, iskR) {
			b.Fatal("the two sides disagree")
		}
	}
}

// FuzzFinish feeds arbitrary peer shares and AD to Finish. It must never
// panic; a failure must be one of the package's errors, and a success must
// come from a valid share and agree with the helpers that compute the ISK.
func FuzzFinish(f *testing.F) {
	v := loadVectors(f)
	prs, ci, sid := v.hex("PRS"), v.hex("CI"), v.hex("sid")
	ya, yb := v.hex("ya"), v.hex("yb")
	shareA, shareB := v.hex("Ya"), v.hex("Yb")
	adA, adB := v.hex("ADa"), v.hex("ADb")
	for _, share := range [][]byte{
		shareA, shareB,
		v.hex("scalar_mult_vfy_invalid.Y_i1"),
		v.hex("scalar_mult_vfy_invalid.Y_i2"),
		v.hex("scalar_mult_valid.X"),
		nil, shareB[:31],
	} {
		f.Add(share, adB, false)
		f.Add(share, adA, true)
	}

	f.Fuzz(func(t *testing.T, share, peerAD []byte, responder bool) {
		role, y, own, ownAD := Initiator, ya, shareA, adA
		if responder {
			role, y, own, ownAD = Responder, yb, shareB, adB
		}
		p := mustParty(t, role, y, prs, ci, sid, ownAD)
		isk, err := p.Finish(share, peerAD)
		if err != nil {
			if !errors.Is(err, ErrInvalidShare) && !errors.Is(err, ErrIdentity) {
				t.Fatalf("unexpected error %v", err)
			}
			if isk != nil || p.SidOutput() != nil {
				t.Fatal("output despite an error")
			}
		} else {
			if len(isk) != sha512.Size {
				t.Fatalf("ISK has %d bytes, want %d", len(isk), sha512.Size)
			}
			if len(share) != ShareSize || isIdentity(share) {
				t.Fatalf("accepted share %x", share)
			}
			var e ristretto255.Element
			if e.Decode(share) != nil {
				t.Fatalf("accepted non-canonical share %x", share)
			}
			transcript := TranscriptIR(own, ownAD, share, peerAD)
			if responder {
				transcript = TranscriptIR(share, peerAD, own, ownAD)
			}
			want := sha512.Sum512(iskHashInput(sid, scalarMultVfy(y, share), transcript))
			if !bytes.Equal(isk, want[:]) {
				t.Fatalf("ISK %x, want %x", isk, want)
			}
			if len(p.SidOutput()) != sha512.Size {
				t.Fatal("no SidOutput after success")
			}
		}
		if _, err := p.Finish(share, peerAD); !errors.Is(err, ErrFinished) {
			t.Fatalf("second Finish = %v, want ErrFinished", err)
		}
	})
}
