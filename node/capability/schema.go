package capability

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"reflect"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// Schema is a compiled JSON Schema (draft 2020-12 unless the schema says
// otherwise), validated by github.com/santhosh-tekuri/jsonschema/v6. The
// schema a capability declares is the contract the gateway is shown, so it
// stays JSON as written rather than being generated: the library checks
// the whole standard, and handlers then decode what passed into their
// typed argument structs with unknown fields refused (DecodeArgs).
//
// Numbers follow the standard: 1.0 is an integer and 1e400 a number.
// Whether a value fits the Go type a handler reads it into is DecodeArgs'
// check, with a message that says so.
//
// Two rules are added to the standard's: an object with a key given twice
// is refused (encoding/json would keep the last, so a prompt and a handler
// could read different values), and arguments may not nest more than 64
// levels deep.
type Schema struct {
	schema *jsonschema.Schema
	// typ is the schema's top-level "type" when it is a single name.
	typ string
}

// maxJSONDepth bounds how deeply arguments may nest. Real arguments are a
// few levels deep.
const maxJSONDepth = 64

// noLoader refuses every $ref outside the schema itself: a capability's
// schema must not make the node read files or the network.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("schema refers to %s; only references inside the schema are allowed", url)
}

// schemaURL names the one schema a compiler holds.
const schemaURL = "urn:palyra:capability-arguments"

// CompileSchema compiles a JSON Schema.
func CompileSchema(raw json.RawMessage) (*Schema, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, errors.New("schema is empty")
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("parsing schema: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.UseLoader(noLoader{})
	if err := c.AddResource(schemaURL, doc); err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	s, err := c.Compile(schemaURL)
	if err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	out := &Schema{schema: s}
	if m, ok := doc.(map[string]any); ok {
		out.typ, _ = m["type"].(string)
	}
	return out, nil
}

// Validate checks that args (JSON) match the schema. The error is an
// *Error with CodeInvalidArgs whose message names the first offending
// argument, e.g. `argument "args[2]": must be a string`.
func (s *Schema) Validate(args json.RawMessage) error {
	v, ok := decodePlain(args)
	if !ok {
		// checkJSON says what is wrong; the library's own decode is the
		// last word should it find nothing.
		if err := checkJSON(args); err != nil {
			return err
		}
		var err error
		if v, err = jsonschema.UnmarshalJSON(bytes.NewReader(args)); err != nil {
			return NewError(CodeInvalidArgs, "arguments are not valid JSON: %v", err)
		}
	}
	if err := checkNumbers(v); err != nil {
		return err
	}
	err := s.validate(v)
	var ve *jsonschema.ValidationError
	if errors.As(err, &ve) {
		return explain(first(ve), v)
	}
	if err != nil {
		return NewError(CodeInvalidArgs, "arguments: %v", err)
	}
	return nil
}

// validate runs the library's validation, which must not take the node
// down with it: a panic in it is the arguments' refusal.
func (s *Schema) validate(v any) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = NewError(CodeInvalidArgs, "arguments could not be checked against the schema: %v", p)
		}
	}()
	return s.schema.Validate(v)
}

// checkNumbers refuses numbers the schema's bounds cannot be compared with:
// the library reads each as a big.Rat, which takes exponents up to a
// million, and fails on (panics at) greater ones such as 1e1000001.
func checkNumbers(v any) error {
	if path, n, bad := badNumber(v); bad {
		return invalid(path, "must be a number with an exponent of at most a million, not %.40s", n)
	}
	return nil
}

// badNumber finds the first number in v that big.Rat cannot read, and its
// path (built only then: every call goes through here).
func badNumber(v any) (path string, n json.Number, bad bool) {
	switch v := v.(type) {
	case json.Number:
		if strings.ContainsAny(string(v), "eE") {
			if _, ok := new(big.Rat).SetString(string(v)); !ok {
				return "", v, true
			}
		}
	case map[string]any:
		for k, e := range v {
			if p, n, bad := badNumber(e); bad {
				return under(k, p), n, true
			}
		}
	case []any:
		for i, e := range v {
			if p, n, bad := badNumber(e); bad {
				return under("["+strconv.Itoa(i)+"]", p), n, true
			}
		}
	}
	return "", "", false
}

// under writes the path p inside the member or item named first.
func under(first, p string) string {
	switch {
	case p == "":
		return first
	case p[0] == '[':
		return first + p
	}
	return join(first, p)
}

// checkJSON refuses what is not one JSON value, keys given twice, and
// nesting beyond maxJSONDepth, with messages naming where.
func checkJSON(args []byte) error {
	if !json.Valid(args) {
		var raw json.RawMessage
		if err := json.Unmarshal(args, &raw); err != nil {
			return NewError(CodeInvalidArgs, "arguments are not valid JSON: %v", err)
		}
	}
	return walkJSON(args)
}

// walkJSON is checkJSON's check of valid JSON, token by token, to say
// where a key is given twice or the nesting goes too deep.
func walkJSON(args []byte) error {
	dec := json.NewDecoder(bytes.NewReader(args))
	dec.UseNumber()
	// Each open object keeps its path and the keys seen; arrays keep
	// their path and next index.
	type level struct {
		path   string
		object bool
		keys   map[string]bool
		index  int
		// key is the member whose value comes next, once haveKey (objects).
		key     string
		haveKey bool
	}
	var stack []*level
	// at is the path of the value about to be read.
	at := func() string {
		if len(stack) == 0 {
			return ""
		}
		l := stack[len(stack)-1]
		if l.object {
			return join(l.path, l.key)
		}
		return fmt.Sprintf("%s[%d]", l.path, l.index)
	}
	// valueDone moves the enclosing array to its next index.
	valueDone := func() {
		if len(stack) > 0 && !stack[len(stack)-1].object {
			stack[len(stack)-1].index++
		}
	}
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return NewError(CodeInvalidArgs, "arguments are not valid JSON: %v", err)
		}
		top := (*level)(nil)
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		// An object's member name.
		if top != nil && top.object && !top.haveKey {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				valueDone()
				continue
			}
			name := tok.(string)
			if top.keys[name] {
				return NewError(CodeInvalidArgs, "argument %q is given twice", join(top.path, name))
			}
			top.keys[name] = true
			top.key, top.haveKey = name, true
			continue
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			if len(stack) >= maxJSONDepth {
				return NewError(CodeInvalidArgs, "arguments are nested more than %d levels deep", maxJSONDepth)
			}
			stack = append(stack, &level{path: at(), object: tok == json.Delim('{'), keys: map[string]bool{}})
			if top != nil && top.object {
				top.haveKey = false
			}
			continue
		case json.Delim(']'):
			stack = stack[:len(stack)-1]
			valueDone()
			continue
		}
		if top != nil && top.object {
			top.haveKey = false
		}
		valueDone()
	}
}

// first follows the causes of a validation error to the first leaf: the
// one constraint that failed.
func first(ve *jsonschema.ValidationError) *jsonschema.ValidationError {
	for len(ve.Causes) > 0 {
		ve = ve.Causes[0]
	}
	return ve
}

// explain says for people what ve means, with the argument's path written
// as dotted names and [i] for array items.
func explain(ve *jsonschema.ValidationError, root any) *Error {
	path := instancePath(ve.InstanceLocation, root)
	switch k := ve.ErrorKind.(type) {
	case *kind.Required:
		return NewError(CodeInvalidArgs, "missing argument %q", join(path, k.Missing[0]))
	case *kind.AdditionalProperties:
		return NewError(CodeInvalidArgs, "unknown argument %q", join(path, k.Properties[0]))
	case *kind.FalseSchema:
		return NewError(CodeInvalidArgs, "unknown argument %q", path)
	case *kind.Type:
		return invalid(path, "must be %s", typeText(k.Want))
	case *kind.Enum:
		vals := make([]string, len(k.Want))
		for i, w := range k.Want {
			b, _ := json.Marshal(w)
			vals[i] = string(b)
		}
		return invalid(path, "must be one of %s", strings.Join(vals, ", "))
	case *kind.Const:
		b, _ := json.Marshal(k.Want)
		return invalid(path, "must be %s", b)
	case *kind.MinLength:
		return invalid(path, "must be at least %s long", plural(k.Want, "character"))
	case *kind.MaxLength:
		return invalid(path, "must be at most %s long", plural(k.Want, "character"))
	case *kind.Pattern:
		return invalid(path, "must match the pattern %s", k.Want)
	case *kind.MinItems:
		return invalid(path, "must have at least %s", plural(k.Want, "item"))
	case *kind.MaxItems:
		return invalid(path, "must have at most %s", plural(k.Want, "item"))
	case *kind.Minimum:
		return invalid(path, "must be at least %s", ratText(k.Want))
	case *kind.Maximum:
		return invalid(path, "must be at most %s", ratText(k.Want))
	case *kind.ExclusiveMinimum:
		return invalid(path, "must be more than %s", ratText(k.Want))
	case *kind.ExclusiveMaximum:
		return invalid(path, "must be less than %s", ratText(k.Want))
	}
	// Constraints the built-ins do not use keep the library's wording.
	return invalid(path, "%s", ve.ErrorKind.LocalizedString(message.NewPrinter(language.English)))
}

// instancePath writes a JSON pointer's segments as "opts.path" or
// "args[2]", looking at root to tell array indexes from names.
func instancePath(segs []string, root any) string {
	var b strings.Builder
	v := root
	for _, s := range segs {
		switch c := v.(type) {
		case []any:
			b.WriteString("[" + s + "]")
			if i, err := strconv.Atoi(s); err == nil && i >= 0 && i < len(c) {
				v = c[i]
			}
		case map[string]any:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(s)
			v = c[s]
		}
	}
	return b.String()
}

var typeWords = map[string]string{
	"object":  "an object",
	"array":   "an array",
	"string":  "a string",
	"boolean": "true or false",
	"null":    "null",
	"number":  "a number",
	"integer": "an integer",
}

func typeText(want []string) string {
	words := make([]string, len(want))
	for i, w := range want {
		words[i] = typeWords[w]
		if words[i] == "" {
			words[i] = w
		}
	}
	return strings.Join(words, " or ")
}

// ratText writes a bound as a person would: 0.5, not 1/2.
func ratText(r *big.Rat) string {
	if r.IsInt() {
		return r.Num().String()
	}
	f, _ := r.Float64()
	return strconv.FormatFloat(f, 'g', -1, 64)
}

func join(at, next string) string {
	if at == "" {
		return next
	}
	return at + "." + next
}

// invalid makes the error for a value at path; the root is "arguments".
func invalid(path, format string, args ...any) *Error {
	msg := fmt.Sprintf(format, args...)
	if path == "" {
		return NewError(CodeInvalidArgs, "arguments %s", msg)
	}
	return NewError(CodeInvalidArgs, "argument %q: %s", path, msg)
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// DecodeArgs decodes arguments that passed a capability's schema into the
// handler's typed struct v, refusing fields v does not have (so a schema
// and its struct cannot drift apart unnoticed) and values its fields cannot
// hold, with messages that name the argument. Empty arguments are {}.
func DecodeArgs(args json.RawMessage, v any) error {
	if len(bytes.TrimSpace(args)) == 0 {
		args = json.RawMessage("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(args))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, err := dec.Token(); err != io.EOF {
			return NewError(CodeInvalidArgs, "arguments are not valid JSON: more than one value")
		}
		return nil
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		path := te.Field
		switch te.Type.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			if te.Value == "number" || strings.HasPrefix(te.Value, "number ") {
				return invalid(path, "must be an integer (digits only, no fraction or exponent) that fits in %d bits", te.Type.Bits())
			}
			return invalid(path, "must be an integer")
		case reflect.Float32, reflect.Float64:
			return invalid(path, "must be a number a float%d can hold", te.Type.Bits())
		}
		return invalid(path, "must not be %s", te.Value)
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return NewError(CodeInvalidArgs, "unknown argument %s", name)
	}
	return NewError(CodeInvalidArgs, "arguments: %v", err)
}
