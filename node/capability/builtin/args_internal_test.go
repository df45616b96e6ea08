package builtin

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/palyra/palyra-go/node/capability"
)

// argTypes is the typed struct each built-in decodes its arguments into;
// nil for those that take none.
var argTypes = map[string]any{
	"system.info":     nil,
	"system.notify":   notifyArgs{},
	"clipboard.read":  nil,
	"clipboard.write": clipboardWriteArgs{},
	"screen.capture":  screenCaptureArgs{},
	"files.read":      filesReadArgs{},
	"shell.exec":      shellArgs{},
}

// TestArgStructsMatchSchemas: each built-in's schema names exactly the
// fields of its typed struct, and is closed, so an argument the schema
// lets through always has a field to land in and an unknown one is
// refused by both.
func TestArgStructsMatchSchemas(t *testing.T) {
	t.Parallel()
	for _, c := range All(nil) {
		typ, known := argTypes[c.Name]
		if !known {
			t.Errorf("%s: no entry in argTypes", c.Name)
			continue
		}
		var schema struct {
			Properties           map[string]json.RawMessage `json:"properties"`
			AdditionalProperties *bool                      `json:"additionalProperties"`
		}
		if err := json.Unmarshal(c.Schema, &schema); err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		if schema.AdditionalProperties == nil || *schema.AdditionalProperties {
			t.Errorf("%s: schema does not refuse unknown arguments (additionalProperties false)", c.Name)
		}
		var props, fields []string
		for p := range schema.Properties {
			props = append(props, p)
		}
		if typ != nil {
			rt := reflect.TypeOf(typ)
			for i := range rt.NumField() {
				name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
				fields = append(fields, name)
			}
		}
		slices.Sort(props)
		slices.Sort(fields)
		if !slices.Equal(props, fields) {
			t.Errorf("%s: schema properties %q, struct fields %q", c.Name, props, fields)
		}
	}
}

// FuzzBuiltinArgs runs any arguments through each built-in's schema and
// then its typed decoding, as a call does: no panic, every refusal is
// CodeInvalidArgs with a message, and what the schema accepts decodes
// unless a number does not fit its Go type.
func FuzzBuiltinArgs(f *testing.F) {
	caps := All(nil)
	schemas := make([]*capability.Schema, len(caps))
	for i, c := range caps {
		s, err := capability.CompileSchema(c.Schema)
		if err != nil {
			f.Fatal(err)
		}
		schemas[i] = s
	}
	for i := range caps {
		for _, seed := range []string{
			`{}`, `{"title":"t","body":"b"}`, `{"text":"x"}`, `{"format":"png","max_width":64}`,
			`{"path":"a/b"}`, `{"command":"/bin/echo","args":["a"],"stdin":"x","timeout_ms":5}`,
			`{"timeout_ms":1.0,"command":"x"}`, `{"max_width":1e3}`, `{"a":1,"a":2}`, `[`, ``,
		} {
			f.Add(uint8(i), []byte(seed))
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, args []byte) {
		i := int(which) % len(caps)
		c := caps[i]
		refused := func(stage string, err error) {
			var e *capability.Error
			if !errors.As(err, &e) || e.Code != capability.CodeInvalidArgs || e.Message == "" {
				t.Fatalf("%s %s(%q) = %#v, want an *Error with %s", c.Name, stage, args, err, capability.CodeInvalidArgs)
			}
		}
		if err := schemas[i].Validate(args); err != nil {
			refused("Validate", err)
			return
		}
		typ := argTypes[c.Name]
		if typ == nil {
			return
		}
		v := reflect.New(reflect.TypeOf(typ)).Interface()
		if err := decodeArgs(args, v); err != nil {
			refused("decodeArgs", err)
			if !strings.Contains(err.Error(), "integer") && !strings.Contains(err.Error(), "number") {
				t.Fatalf("%s: %q passed the schema but did not decode: %v", c.Name, args, err)
			}
		}
	})
}
