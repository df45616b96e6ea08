package capability

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

var plainJSONCases = []struct {
	name, args string
	// plain is plainJSON's answer; err what checkJSON says ("" for nil).
	plain bool
	err   string
}{
	{"empty object", `{}`, true, ""},
	{"a key again in other objects", `{"a":1,"b":{"a":2},"c":[{"a":1},{"a":1}]}`, true, ""},
	{"braces and quotes in a string", `{"s":"{\"a\":1,\"a\":1}","t":"\\","u":"]"}`, true, ""},
	{"not an object", ` [1, "x", null, true] `, true, ""},
	{"a key twice", `{"a":1,"a":2}`, false, `argument "a" is given twice`},
	{"a nested key twice", `{"a":{"b":1,"b":[]}}`, false, `argument "a.b" is given twice`},
	{"a key twice, once escaped", `{"a":1,"\u0061":2}`, false, `argument "a" is given twice`},
	{"invalid bytes read as the same key", "{\"\xff\":1,\"\xfe\":2}", false, "is given twice"},
	{"many keys", manyKeys(plainMaxKeys + 1), false, ""},
	{"as deep as allowed", strings.Repeat("[", maxJSONDepth) + strings.Repeat("]", maxJSONDepth), true, ""},
	{"too deep", strings.Repeat("[", maxJSONDepth+1) + strings.Repeat("]", maxJSONDepth+1), false, "nested more than 64 levels deep"},
}

func manyKeys(n int) string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf(`"k%d":%d`, i, i)
	}
	return "{" + strings.Join(keys, ",") + "}"
}

// plainJSON says "no problem" only where there is none, and checkJSON's
// answers are the walk's, whichever of the two decided.
func TestPlainJSON(t *testing.T) {
	for _, tc := range plainJSONCases {
		t.Run(tc.name, func(t *testing.T) {
			if got := plainJSON([]byte(tc.args)); got != tc.plain {
				t.Errorf("plainJSON = %v, want %v", got, tc.plain)
			}
			err := checkJSON([]byte(tc.args))
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("checkJSON = %v, want %q", err, tc.err)
			}
		})
	}
}

// FuzzPlainJSON: whatever valid JSON plainJSON passes, the walk passes too.
func FuzzPlainJSON(f *testing.F) {
	for _, tc := range plainJSONCases {
		f.Add([]byte(tc.args))
	}
	f.Fuzz(func(t *testing.T, args []byte) {
		if !json.Valid(args) || !plainJSON(args) {
			return
		}
		if err := walkJSON(args); err != nil {
			t.Fatalf("plainJSON passed %q, which the walk refuses: %v", args, err)
		}
	})
}

// BenchmarkCheckJSON checks a call's usual arguments: a few keys, one
// nested object.
func BenchmarkCheckJSON(b *testing.B) {
	args := []byte(`{"command":"/bin/echo","args":["a","b"],"opts":{"timeout_ms":5,"stdin":"x"}}`)
	b.ReportAllocs()
	for b.Loop() {
		if err := checkJSON(args); err != nil {
			b.Fatal(err)
		}
	}
}
