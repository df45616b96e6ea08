package cpace

import (
	"bytes"
	"encoding/binary"
)

// PrependLen returns LEB128(len(b)) || b, the draft's prepend_len: the length
// in 7-bit groups, least significant first, with 0x80 set on every byte but
// the last (300 is encoded as ac 02).
func PrependLen(b []byte) []byte {
	out := make([]byte, 0, uvarintLen(len(b))+len(b))
	out = binary.AppendUvarint(out, uint64(len(b)))
	return append(out, b...)
}

// LVCat returns the concatenation of PrependLen of each part, the draft's
// lv_cat. An empty part still contributes its zero length byte.
func LVCat(parts ...[]byte) []byte {
	return appendLVCat(make([]byte, 0, lvCatLen(parts)), parts...)
}

// appendLVCat appends lv_cat(parts...) to dst.
func appendLVCat(dst []byte, parts ...[]byte) []byte {
	for _, p := range parts {
		dst = binary.AppendUvarint(dst, uint64(len(p)))
		dst = append(dst, p...)
	}
	return dst
}

// lvCatLen is len(LVCat(parts...)).
func lvCatLen(parts [][]byte) int {
	n := 0
	for _, p := range parts {
		n += uvarintLen(len(p)) + len(p)
	}
	return n
}

// uvarintLen is the length of the LEB128 encoding of n.
func uvarintLen(n int) int {
	l := 1
	for u := uint64(n); u >= 0x80; u >>= 7 {
		l++
	}
	return l
}

// LexiographicallyLarger reports whether a sorts after b, comparing bytewise;
// when one is a prefix of the other the longer one is larger. The name keeps
// the draft's spelling.
func LexiographicallyLarger(a, b []byte) bool {
	return bytes.Compare(a, b) > 0
}

// OCat returns "oc" || larger || smaller, the draft's o_cat: the ordered
// concatenation that gives both parties the same string whatever the order of
// the arguments.
func OCat(a, b []byte) []byte {
	if !LexiographicallyLarger(a, b) {
		a, b = b, a
	}
	out := make([]byte, 0, 2+len(a)+len(b))
	out = append(out, "oc"...)
	out = append(out, a...)
	return append(out, b...)
}

// TranscriptIR returns lv_cat(ya, ada) || lv_cat(yb, adb), the transcript of
// initiator-responder mode. ya and ada always belong to the initiator.
func TranscriptIR(ya, ada, yb, adb []byte) []byte {
	return LVCat(ya, ada, yb, adb)
}

// TranscriptOC returns o_cat(lv_cat(ya, ada), lv_cat(yb, adb)), the transcript
// of symmetric mode, which does not depend on which party is a and which b.
func TranscriptOC(ya, ada, yb, adb []byte) []byte {
	return OCat(LVCat(ya, ada), LVCat(yb, adb))
}

// GeneratorString returns the draft's generator_string:
// lv_cat(dsi, prs, zeros(zpad), ci, sid), where the zero padding makes dsi,
// prs and the padding's own length byte fill the hash's first input block of
// sInBytes bytes (128 for SHA-512) when they are short enough to.
func GeneratorString(dsi, prs, ci, sid []byte, sInBytes int) []byte {
	zpad := make([]byte, zpadLen(dsi, prs, sInBytes))
	return LVCat(dsi, prs, zpad, ci, sid)
}

// zpadLen is max(0, sInBytes - 1 - len(prepend_len(prs)) - len(prepend_len(dsi))).
func zpadLen(dsi, prs []byte, sInBytes int) int {
	n := sInBytes - 1 - (uvarintLen(len(prs)) + len(prs)) - (uvarintLen(len(dsi)) + len(dsi))
	return max(0, n)
}
