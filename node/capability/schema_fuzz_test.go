package capability_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/palyra/palyra-go/node/capability"
)

// fuzzSchemas are the schemas FuzzValidate checks arguments against: the
// test schema with every keyword, and the shapes the built-ins use.
var fuzzSchemas = []string{
	testSchema,
	`{"type":"object","additionalProperties":false}`,
	`{"type":"object","properties":{"command":{"type":"string","minLength":1,"maxLength":4096},"args":{"type":"array","items":{"type":"string"},"maxItems":256},"stdin":{"type":"string","maxLength":65536},"timeout_ms":{"type":"integer","minimum":1,"maximum":600000}},"required":["command"],"additionalProperties":false}`,
	`{"type":"object","properties":{"format":{"type":"string","enum":["png","jpeg"]},"max_width":{"type":"integer","minimum":64,"maximum":7680}},"additionalProperties":false}`,
	`{"type":"object","properties":{"title":{"type":"string","maxLength":200},"body":{"type":"string","maxLength":2000}},"required":["title"]}`,
	`{}`,
}

var fuzzArgSeeds = []string{
	`{}`,
	`{"command":"/bin/echo","args":["a","b"],"stdin":"x","timeout_ms":5}`,
	`{"command":"x","args":["a",1]}`,
	`{"format":"png","max_width":64}`,
	`{"format":"gif","max_width":1.5}`,
	`{"title":"t","body":"b","title":"u"}`,
	`{"ratio":1e400,"timeout_ms":-9223372036854775809}`,
	`{"level":25e-1,"name":"äöü","opts":{"path":"p"}}`,
	`[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]`,
	`{"a":1} {"b":2}`,
	`"\ud800"`,
	``,
}

func FuzzValidate(f *testing.F) {
	schemas := make([]*capability.Schema, len(fuzzSchemas))
	for i, raw := range fuzzSchemas {
		schemas[i] = mustCompile(f, raw)
	}
	for i := range fuzzSchemas {
		for _, args := range fuzzArgSeeds {
			f.Add(uint8(i), []byte(args))
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, args []byte) {
		s := schemas[int(which)%len(schemas)]
		checkValidate(t, s, args)
	})
}

func FuzzCompileSchema(f *testing.F) {
	for _, raw := range fuzzSchemas {
		for _, args := range fuzzArgSeeds[:4] {
			f.Add([]byte(raw), []byte(args))
		}
	}
	for _, raw := range []string{
		`{"type":"string","pattern":"(a+)+$","minLength":0}`,
		`{"type":"number","minimum":1e308,"maximum":1e308}`,
		`{"enum":[1,"1",true]}`,
		`{"type":"array","items":{"type":"array","items":{"type":"object","required":["a"]}}}`,
	} {
		f.Add([]byte(raw), []byte(`{}`))
	}
	f.Fuzz(func(t *testing.T, raw, args []byte) {
		s, err := capability.CompileSchema(raw)
		if err != nil {
			if s != nil {
				t.Fatalf("CompileSchema returned a schema and an error %v", err)
			}
			return
		}
		checkValidate(t, s, args)
	})
}

// checkValidate validates args and checks what holds for any input: no
// panic, an *Error with CodeInvalidArgs and a message on refusal, and only
// valid JSON accepted.
func checkValidate(t *testing.T, s *capability.Schema, args []byte) {
	err := s.Validate(args)
	if err == nil {
		if !json.Valid(args) {
			t.Fatalf("Validate accepted invalid JSON %q", args)
		}
		return
	}
	var e *capability.Error
	if !errors.As(err, &e) || e.Code != capability.CodeInvalidArgs || e.Message == "" {
		t.Fatalf("Validate(%q) = %#v, want an *Error with %s and a message", args, err, capability.CodeInvalidArgs)
	}
}
