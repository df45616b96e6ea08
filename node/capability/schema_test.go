package capability_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/palyra/palyra-go/node/capability"
)

// testSchema exercises every keyword of the subset.
const testSchema = `{
	"$schema": "https://json-schema.org/draft/2020-12/schema",
	"title": "test",
	"description": "every keyword",
	"type": "object",
	"properties": {
		"command": {"type": "string", "minLength": 1, "description": "ignored"},
		"args": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 3},
		"timeout_ms": {"type": "integer", "minimum": 1, "maximum": 600000, "default": 5},
		"ratio": {"type": "number", "minimum": 0.5, "maximum": 2.5},
		"format": {"type": "string", "enum": ["png", "jpeg"]},
		"level": {"enum": [1, 2.5, true, "x"]},
		"flag": {"type": "boolean"},
		"nothing": {"type": "null"},
		"name": {"type": "string", "maxLength": 3, "pattern": "^[a-zäöü]+$"},
		"word": {"type": "string", "pattern": "ab"},
		"opts": {
			"type": "object",
			"properties": {"path": {"type": "string"}},
			"required": ["path"],
			"additionalProperties": false
		},
		"open": {"type": "object"},
		"anything": {}
	},
	"required": ["command"],
	"additionalProperties": false
}`

func mustCompile(t testing.TB, raw string) *capability.Schema {
	t.Helper()
	s, err := capability.CompileSchema(json.RawMessage(raw))
	if err != nil {
		t.Fatalf("CompileSchema: %v", err)
	}
	return s
}

func TestValidateAccepts(t *testing.T) {
	t.Parallel()
	s := mustCompile(t, testSchema)
	for _, args := range []string{
		`{"command":"x"}`,
		` {"command":"x"} `,
		`{"command":"x","args":["a","b","c"],"timeout_ms":600000,"ratio":0.5,"format":"jpeg","flag":false,"nothing":null}`,
		`{"command":"x","timeout_ms":1,"ratio":2.5e0}`,
		`{"command":"x","ratio":1}`,
		// Characters, not bytes: three umlauts are six bytes.
		`{"command":"x","name":"äöü"}`,
		// Patterns match anywhere unless anchored.
		`{"command":"x","word":"xxabxx"}`,
		// Enums compare numbers by value.
		`{"command":"x","level":1.0}`,
		`{"command":"x","level":25e-1}`,
		`{"command":"x","level":true}`,
		`{"command":"x","opts":{"path":"p"}}`,
		`{"command":"x","open":{"extra":[1,{"y":null}]}}`,
		`{"command":"x","anything":[1,"two",{"three":3}]}`,
		`{"command":"x","timeout_ms":10}`,
		// JSON Schema's integers: DecodeArgs refuses these for an int field.
		`{"command":"x","timeout_ms":1.0}`,
		`{"command":"x","timeout_ms":1e3}`,
	} {
		if err := s.Validate(json.RawMessage(args)); err != nil {
			t.Errorf("Validate(%s) = %v, want nil", args, err)
		}
	}
}

func TestValidateRejects(t *testing.T) {
	t.Parallel()
	s := mustCompile(t, testSchema)
	for _, tc := range []struct {
		args string
		want string // the whole message
	}{
		{``, `arguments are not valid JSON: unexpected end of JSON input`},
		{`{"command":`, `arguments are not valid JSON: unexpected end of JSON input`},
		{`{"command":"x",}`, `arguments are not valid JSON: invalid character '}' looking for beginning of object key string`},
		{`{"command":"x"} {}`, `arguments are not valid JSON: invalid character '{' after top-level value`},
		{`[]`, `arguments must be an object`},
		{`"x"`, `arguments must be an object`},
		{`null`, `arguments must be an object`},
		{`{}`, `missing argument "command"`},
		{`{"command":"x","command":"y"}`, `argument "command" is given twice`},
		{`{"command":"x","foo":1}`, `unknown argument "foo"`},
		{`{"command":1}`, `argument "command": must be a string`},
		{`{"command":""}`, `argument "command": must be at least 1 character long`},
		{`{"command":"x","args":"a"}`, `argument "args": must be an array`},
		{`{"command":"x","args":[]}`, `argument "args": must have at least 1 item`},
		{`{"command":"x","args":["a","b","c","d"]}`, `argument "args": must have at most 3 items`},
		{`{"command":"x","args":["a","b",3]}`, `argument "args[2]": must be a string`},
		{`{"command":"x","timeout_ms":1.5}`, `argument "timeout_ms": must be an integer`},
		{`{"command":"x","timeout_ms":"5"}`, `argument "timeout_ms": must be an integer`},
		{`{"command":"x","timeout_ms":99999999999999999999}`, `argument "timeout_ms": must be at most 600000`},
		{`{"command":"x","timeout_ms":0}`, `argument "timeout_ms": must be at least 1`},
		{`{"command":"x","timeout_ms":600001}`, `argument "timeout_ms": must be at most 600000`},
		{`{"command":"x","ratio":"1"}`, `argument "ratio": must be a number`},
		{`{"command":"x","ratio":1e400}`, `argument "ratio": must be at most 2.5`},
		// big.Rat, which the bounds are compared with, reads exponents up to a million.
		{`{"command":"x","ratio":1e1000001}`, `argument "ratio": must be a number with an exponent of at most a million, not 1e1000001`},
		{`{"command":"x","open":{"a":[1,-2E-9999999]}}`, `argument "open.a[1]": must be a number with an exponent of at most a million, not -2E-9999999`},
		// As a float64 this is 0.5; compared as written it is below.
		{`{"command":"x","ratio":0.49999999999999999999}`, `argument "ratio": must be at least 0.5`},
		{`{"command":"x","ratio":2.50000000000000000001}`, `argument "ratio": must be at most 2.5`},
		{`{"command":"x","format":"gif"}`, `argument "format": must be one of "png", "jpeg"`},
		{`{"command":"x","level":"1"}`, `argument "level": must be one of 1, 2.5, true, "x"`},
		{`{"command":"x","flag":"true"}`, `argument "flag": must be true or false`},
		{`{"command":"x","nothing":0}`, `argument "nothing": must be null`},
		{`{"command":"x","name":"abcd"}`, `argument "name": must be at most 3 characters long`},
		{`{"command":"x","name":"AB"}`, `argument "name": must match the pattern ^[a-zäöü]+$`},
		{`{"command":"x","word":"a b"}`, `argument "word": must match the pattern ab`},
		{`{"command":"x","opts":{}}`, `missing argument "opts.path"`},
		{`{"command":"x","opts":{"path":1}}`, `argument "opts.path": must be a string`},
		{`{"command":"x","opts":{"path":"p","x":1}}`, `unknown argument "opts.x"`},
		{`{"command":"x","opts":[]}`, `argument "opts": must be an object`},
		{`{"command":"x","open":{"a":1,"a":2}}`, `argument "open.a" is given twice`},
		{`{"command":"x","":{"b":[1,{"c":1,"c":2}]}}`, `argument "b[1].c" is given twice`},
		{`{"command":"x","":1,"":2}`, `argument "" is given twice`},
		{`{"command":"x","anything":` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `}`, `arguments are nested more than 64 levels deep`},
	} {
		err := s.Validate(json.RawMessage(tc.args))
		var e *capability.Error
		if !errors.As(err, &e) {
			t.Errorf("Validate(%s) = %v, want an *Error", tc.args, err)
			continue
		}
		if e.Code != capability.CodeInvalidArgs || e.Message != tc.want {
			t.Errorf("Validate(%s) = %s %q\nwant %s %q", tc.args, e.Code, e.Message, capability.CodeInvalidArgs, tc.want)
		}
	}
}

func TestCompileSchemaRefuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		schema string
		want   string // a part of the message
	}{
		{``, "schema is empty"},
		{`{"type":`, "parsing schema"},
		{`{"type":"float"}`, "not valid against metaschema"},
		{`{"type":"object","properties":[]}`, "/properties"},
		{`{"type":"object","required":["a","a"]}`, "/required"},
		{`{"type":"string","minLength":-1}`, "/minLength"},
		{`{"type":"string","pattern":"("}`, "error parsing regexp"},
		{`{"enum":"a"}`, "/enum"},
		// A schema must not make the node read files or the network.
		{`{"$ref":"https://example.com/s.json"}`, "only references inside the schema are allowed"},
		{`{"$ref":"file:///etc/passwd"}`, "only references inside the schema are allowed"},
	} {
		_, err := capability.CompileSchema(json.RawMessage(tc.schema))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("CompileSchema(%s) = %v, want an error containing %q", tc.schema, err, tc.want)
		}
	}
}

func TestDecodeArgs(t *testing.T) {
	t.Parallel()
	type args struct {
		Command   string   `json:"command"`
		Args      []string `json:"args"`
		TimeoutMS int64    `json:"timeout_ms"`
		Ratio     float32  `json:"ratio"`
	}
	var ok args
	if err := capability.DecodeArgs(json.RawMessage(`{"command":"x","args":["a"],"timeout_ms":5,"ratio":0.5}`), &ok); err != nil ||
		ok.Command != "x" || ok.TimeoutMS != 5 || len(ok.Args) != 1 || ok.Ratio != 0.5 {
		t.Fatalf("DecodeArgs = %+v, %v", ok, err)
	}
	if err := capability.DecodeArgs(nil, &ok); err != nil {
		t.Fatalf("DecodeArgs(empty) = %v, want {}", err)
	}
	for _, tc := range []struct{ args, want string }{
		{`{"timeout_ms":1.0}`, `argument "timeout_ms": must be an integer (digits only, no fraction or exponent) that fits in 64 bits`},
		{`{"timeout_ms":1e3}`, `argument "timeout_ms": must be an integer (digits only, no fraction or exponent) that fits in 64 bits`},
		{`{"timeout_ms":99999999999999999999}`, `argument "timeout_ms": must be an integer (digits only, no fraction or exponent) that fits in 64 bits`},
		{`{"timeout_ms":"5"}`, `argument "timeout_ms": must be an integer`},
		{`{"ratio":1e300}`, `argument "ratio": must be a number a float32 can hold`},
		{`{"args":[1]}`, `argument "args": must not be number`},
		{`{"verbose":true}`, `unknown argument "verbose"`},
		{`{} {}`, `arguments are not valid JSON: more than one value`},
	} {
		var a args
		err := capability.DecodeArgs(json.RawMessage(tc.args), &a)
		var e *capability.Error
		if !errors.As(err, &e) || e.Code != capability.CodeInvalidArgs || e.Message != tc.want {
			t.Errorf("DecodeArgs(%s) = %v\nwant %s %q", tc.args, err, capability.CodeInvalidArgs, tc.want)
		}
	}
}

// TestCompileSchemaTypeless: keywords without a type apply to values of
// their kind and let others through, as in JSON Schema.
func TestCompileSchemaTypeless(t *testing.T) {
	t.Parallel()
	s := mustCompile(t, `{"minLength":2,"minimum":3,"maxItems":1,"required":["a"]}`)
	for _, ok := range []string{`"ab"`, `3`, `[1]`, `{"a":1}`, `true`, `null`} {
		if err := s.Validate(json.RawMessage(ok)); err != nil {
			t.Errorf("Validate(%s) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{`"a"`, `2.9`, `[1,2]`, `{}`} {
		if err := s.Validate(json.RawMessage(bad)); capability.CodeOf(err) != capability.CodeInvalidArgs {
			t.Errorf("Validate(%s) = %v, want %s", bad, err, capability.CodeInvalidArgs)
		}
	}
}
