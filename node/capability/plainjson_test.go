package capability

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

var plainJSONCases = []struct {
	name, args string
	// err is what checkJSON says ("" for nil); decodePlain reads the
	// arguments exactly when it says nothing.
	err string
}{
	{"empty object", `{}`, ""},
	{"a key again in other objects", `{"a":1,"b":{"a":2},"c":[{"a":1},{"a":1}]}`, ""},
	{"braces and quotes in a string", `{"s":"{\"a\":1,\"a\":1}","t":"\\","u":"]"}`, ""},
	{"not an object", ` [1, "x", null, true, false, -0.5e+3, 2E-2, {}, []] `, ""},
	{"escapes", `{"\u00e4":"\ud83d\ude00 \/ \b\f\n\r\t","lone":"\ud800","bad":"\u00"}`, "not valid JSON"},
	{"escapes and a surrogate left alone", `{"\u00e4":"\ud83d\ude00 \/ \b\f\n\r\t","lone":"\ud800x"}`, ""},
	{"bytes that are not UTF-8", "{\"k\":\"\xff\xfe\",\"l\":\"é\"}", ""},
	{"a key twice", `{"a":1,"a":2}`, `argument "a" is given twice`},
	{"a nested key twice", `{"a":{"b":1,"b":[]}}`, `argument "a.b" is given twice`},
	{"a key twice, once escaped", `{"a":1,"\u0061":2}`, `argument "a" is given twice`},
	{"invalid bytes read as the same key", "{\"\xff\":1,\"\xfe\":2}", "is given twice"},
	{"many keys", manyKeys(100), ""},
	{"as deep as allowed", strings.Repeat("[", maxJSONDepth) + strings.Repeat("]", maxJSONDepth), ""},
	{"too deep", strings.Repeat("[", maxJSONDepth+1) + strings.Repeat("]", maxJSONDepth+1), "nested more than 64 levels deep"},
	{"a leading zero", `{"n":01}`, "not valid JSON"},
	{"a bare minus", `[-]`, "not valid JSON"},
	{"a trailing comma", `{"a":1,}`, "not valid JSON"},
	{"two values", `{} {}`, "not valid JSON"},
	{"a control byte in a string", "\"a\tb\"", "not valid JSON"},
	{"nothing", ` `, "not valid JSON"},
}

func manyKeys(n int) string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf(`"k%d":%d`, i, i)
	}
	return "{" + strings.Join(keys, ",") + "}"
}

// decodePlain reads what checkJSON passes, as the library's decode does,
// and nothing that checkJSON refuses.
func TestDecodePlain(t *testing.T) {
	for _, tc := range plainJSONCases {
		t.Run(tc.name, func(t *testing.T) {
			err := checkJSON([]byte(tc.args))
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("checkJSON = %v, want %q", err, tc.err)
			}
			checkDecodePlain(t, []byte(tc.args))
		})
	}
}

// checkDecodePlain: decodePlain reads args exactly when json.Valid and
// the walk pass them, and then into the value the library's decode makes.
func checkDecodePlain(t *testing.T, args []byte) {
	t.Helper()
	got, ok := decodePlain(args)
	valid := json.Valid(args) && walkJSON(args) == nil
	if ok != valid {
		t.Fatalf("decodePlain(%q) ok = %v; json.Valid and the walk say %v", args, ok, valid)
	}
	if !ok {
		return
	}
	want, err := jsonschema.UnmarshalJSON(bytes.NewReader(args))
	if err != nil {
		t.Fatalf("decodePlain read %q, which the library refuses: %v", args, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decodePlain(%q) = %#v, the library reads %#v", args, got, want)
	}
}

func FuzzDecodePlain(f *testing.F) {
	for _, tc := range plainJSONCases {
		f.Add([]byte(tc.args))
	}
	f.Fuzz(checkDecodePlain)
}

// BenchmarkDecodeArgs reads a call's usual arguments: a few keys, one
// nested object.
func BenchmarkDecodeArgs(b *testing.B) {
	args := []byte(`{"command":"/bin/echo","args":["a","b"],"opts":{"timeout_ms":5,"stdin":"x"}}`)
	b.Run("plain", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := decodePlain(args); !ok {
				b.Fatal("refused")
			}
		}
	})
	b.Run("check-and-library", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := checkJSON(args); err != nil {
				b.Fatal(err)
			}
			if _, err := jsonschema.UnmarshalJSON(bytes.NewReader(args)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
