package capability

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Schema is a compiled JSON Schema of the subset the node understands:
//
//   - type: one of object, string, integer, number, boolean, array, null
//     (a single name, not a list);
//   - for objects: properties, required, additionalProperties (true or
//     false only);
//   - for arrays: items (one schema for every item), minItems, maxItems;
//   - for strings: minLength, maxLength (in characters), pattern (Go
//     regexp syntax; like JSON Schema, it matches anywhere unless anchored);
//   - for numbers: minimum, maximum;
//   - enum, of strings, numbers or booleans;
//   - description, title, default and $schema, which are ignored.
//
// Any other keyword, or a keyword that cannot apply to the declared type,
// fails to compile, so that no constraint a capability's author wrote is
// silently ignored.
//
// Two rules are stricter than JSON Schema so that handlers can decode what
// passed with encoding/json: an integer must be written without a fraction
// or exponent and fit in 64 bits, and a number must fit in a float64.
// Objects with a key given twice are refused, whatever the schema.
type Schema struct {
	// typ is "" when the schema accepts any type.
	typ string

	properties map[string]*Schema
	required   []string
	// closed: additionalProperties is false.
	closed bool

	items              *Schema
	minItems, maxItems int // -1: no bound

	minLength, maxLength int // -1: no bound
	pattern              *regexp.Regexp

	minimum, maximum *numberBound

	enum []jsonValue
}

// numberBound is a minimum or maximum, kept as written for messages.
type numberBound struct {
	text  string
	value *big.Float
}

// numberPrec is the precision numbers are compared at: far beyond
// float64's, so that bounds and values compare as written.
const numberPrec = 256

// ignoredKeywords are annotations that constrain nothing.
var ignoredKeywords = map[string]bool{"description": true, "title": true, "default": true, "$schema": true}

// keywordTypes says which type each constraint applies to ("number"
// stands for integer too).
var keywordTypes = map[string]string{
	"properties":           "object",
	"required":             "object",
	"additionalProperties": "object",
	"items":                "array",
	"minItems":             "array",
	"maxItems":             "array",
	"minLength":            "string",
	"maxLength":            "string",
	"pattern":              "string",
	"minimum":              "number",
	"maximum":              "number",
}

var typeNames = []string{"object", "string", "integer", "number", "boolean", "array", "null"}

// CompileSchema compiles a JSON Schema of the subset described at Schema.
func CompileSchema(raw json.RawMessage) (*Schema, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, errors.New("schema is empty")
	}
	v, err := parseJSON(raw)
	if err != nil {
		return nil, fmt.Errorf("parsing schema: %w", err)
	}
	return compile(v, "")
}

// compile compiles one schema object; at says where it is, for messages.
func compile(v jsonValue, at string) (*Schema, error) {
	where := "schema"
	if at != "" {
		where = "schema at " + at
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%s: %s", where, fmt.Sprintf(format, args...))
	}
	if v.kind != kindObject {
		return nil, fail("must be an object, not %s", v.kind)
	}
	if key, dup := duplicateKey(v.obj); dup {
		return nil, fail("keyword %q appears twice", key)
	}
	s := &Schema{minItems: -1, maxItems: -1, minLength: -1, maxLength: -1}

	// The type first: the other keywords are checked against it.
	for _, m := range v.obj {
		if m.key != "type" {
			continue
		}
		if m.val.kind != kindString || !slices.Contains(typeNames, m.val.s) {
			return nil, fail("type must be one of %s (a single name)", strings.Join(typeNames, ", "))
		}
		s.typ = m.val.s
	}

	for _, m := range v.obj {
		key, val := m.key, m.val
		if key == "type" || ignoredKeywords[key] {
			continue
		}
		if key != "enum" {
			want, known := keywordTypes[key]
			if !known {
				return nil, fail("keyword %q is not supported", key)
			}
			if s.typ != "" && s.typ != want && !(want == "number" && s.typ == "integer") {
				return nil, fail("keyword %q does not apply to type %s", key, s.typ)
			}
		}
		var err error
		switch key {
		case "properties":
			if val.kind != kindObject {
				err = errors.New("properties must be an object")
				break
			}
			if name, dup := duplicateKey(val.obj); dup {
				err = fmt.Errorf("property %q appears twice", name)
				break
			}
			// Errors from nested schemas say where they are.
			if s.properties, err = compileProperties(val.obj, at); err != nil {
				return nil, err
			}
		case "required":
			err = s.compileRequired(val)
		case "additionalProperties":
			if val.kind != kindBool {
				err = errors.New("additionalProperties must be true or false")
			}
			s.closed = !val.b
		case "items":
			if s.items, err = compile(val, join(at, "items")); err != nil {
				return nil, err
			}
		case "minItems":
			s.minItems, err = count(key, val)
		case "maxItems":
			s.maxItems, err = count(key, val)
		case "minLength":
			s.minLength, err = count(key, val)
		case "maxLength":
			s.maxLength, err = count(key, val)
		case "pattern":
			if val.kind != kindString {
				err = errors.New("pattern must be a string")
				break
			}
			s.pattern, err = regexp.Compile(val.s)
			if err != nil {
				err = fmt.Errorf("pattern: %w", err)
			}
		case "minimum":
			s.minimum, err = bound(key, val)
		case "maximum":
			s.maximum, err = bound(key, val)
		case "enum":
			err = s.compileEnum(val)
		}
		if err != nil {
			return nil, fail("%v", err)
		}
	}

	// Constraints that contradict each other are mistakes in the schema.
	switch {
	case s.minItems >= 0 && s.maxItems >= 0 && s.minItems > s.maxItems:
		return nil, fail("minItems is above maxItems")
	case s.minLength >= 0 && s.maxLength >= 0 && s.minLength > s.maxLength:
		return nil, fail("minLength is above maxLength")
	case s.minimum != nil && s.maximum != nil && s.minimum.value.Cmp(s.maximum.value) > 0:
		return nil, fail("minimum is above maximum")
	}
	if s.closed {
		for _, name := range s.required {
			if _, ok := s.properties[name]; !ok {
				return nil, fail("required property %q is not in properties, and additionalProperties is false", name)
			}
		}
	}
	return s, nil
}

func compileProperties(members []jsonMember, at string) (map[string]*Schema, error) {
	props := make(map[string]*Schema, len(members))
	for _, m := range members {
		sub, err := compile(m.val, join(at, "properties."+m.key))
		if err != nil {
			return nil, err
		}
		props[m.key] = sub
	}
	return props, nil
}

func (s *Schema) compileRequired(val jsonValue) error {
	if val.kind != kindArray {
		return errors.New("required must be an array of property names")
	}
	for _, item := range val.arr {
		if item.kind != kindString {
			return errors.New("required must be an array of property names")
		}
		if slices.Contains(s.required, item.s) {
			return fmt.Errorf("required names %q twice", item.s)
		}
		s.required = append(s.required, item.s)
	}
	return nil
}

func (s *Schema) compileEnum(val jsonValue) error {
	if val.kind != kindArray || len(val.arr) == 0 {
		return errors.New("enum must be a non-empty array")
	}
	for _, item := range val.arr {
		switch item.kind {
		case kindString, kindNumber, kindBool:
		default:
			return fmt.Errorf("enum values must be strings, numbers or booleans, not %s", item.kind)
		}
		if s.typ != "" {
			if err := checkType(s.typ, item, ""); err != nil {
				return fmt.Errorf("enum value %s is not of type %s", literal(item), s.typ)
			}
		}
		if item.kind == kindNumber {
			if _, ok := numberValue(item.s); !ok {
				return fmt.Errorf("enum value %s is out of range", item.s)
			}
		}
	}
	s.enum = val.arr
	return nil
}

// count reads a keyword whose value is a non-negative integer.
func count(key string, val jsonValue) (int, error) {
	if val.kind == kindNumber && isIntegerLiteral(val.s) && !strings.HasPrefix(val.s, "-") {
		if n, err := strconv.Atoi(val.s); err == nil {
			return n, nil
		}
	}
	return 0, fmt.Errorf("%s must be a non-negative integer", key)
}

func bound(key string, val jsonValue) (*numberBound, error) {
	if val.kind == kindNumber {
		if f, ok := numberValue(val.s); ok {
			return &numberBound{text: val.s, value: f}, nil
		}
	}
	return nil, fmt.Errorf("%s must be a number a float64 can hold", key)
}

func join(at, next string) string {
	if at == "" {
		return next
	}
	return at + "." + next
}

// Validate checks that args (JSON) match the schema (see Schema for the
// subset and its stricter rules). The error is an *Error with
// CodeInvalidArgs whose message names the first offending argument, e.g.
// `argument "args[2]": must be a string`.
func (s *Schema) Validate(args json.RawMessage) error {
	v, err := parseJSON(args)
	if errors.Is(err, errTooDeep) {
		return NewError(CodeInvalidArgs, "arguments are %v", err)
	}
	if err != nil {
		return NewError(CodeInvalidArgs, "arguments are not valid JSON: %v", err)
	}
	if e := s.validate(v, ""); e != nil {
		return e
	}
	return nil
}

func (s *Schema) validate(v jsonValue, path string) *Error {
	if s.typ != "" {
		if e := checkType(s.typ, v, path); e != nil {
			return e
		}
	}
	if len(s.enum) > 0 && !slices.ContainsFunc(s.enum, func(e jsonValue) bool { return sameValue(e, v) }) {
		vals := make([]string, len(s.enum))
		for i, e := range s.enum {
			vals[i] = literal(e)
		}
		return invalid(path, "must be one of %s", strings.Join(vals, ", "))
	}
	switch v.kind {
	case kindString:
		return s.validateString(v.s, path)
	case kindNumber:
		return s.validateNumber(v.s, path)
	case kindArray:
		return s.validateArray(v.arr, path)
	case kindObject:
		return s.validateObject(v.obj, path)
	}
	return nil
}

func (s *Schema) validateString(str, path string) *Error {
	if s.minLength >= 0 || s.maxLength >= 0 {
		n := utf8.RuneCountInString(str)
		if s.minLength >= 0 && n < s.minLength {
			return invalid(path, "must be at least %s long", plural(s.minLength, "character"))
		}
		if s.maxLength >= 0 && n > s.maxLength {
			return invalid(path, "must be at most %s long", plural(s.maxLength, "character"))
		}
	}
	if s.pattern != nil && !s.pattern.MatchString(str) {
		return invalid(path, "must match the pattern %s", s.pattern)
	}
	return nil
}

func (s *Schema) validateNumber(lit, path string) *Error {
	if s.minimum == nil && s.maximum == nil {
		return nil
	}
	f, ok := numberValue(lit)
	if !ok {
		return invalid(path, "must be a number a float64 can hold")
	}
	if s.minimum != nil && f.Cmp(s.minimum.value) < 0 {
		return invalid(path, "must be at least %s", s.minimum.text)
	}
	if s.maximum != nil && f.Cmp(s.maximum.value) > 0 {
		return invalid(path, "must be at most %s", s.maximum.text)
	}
	return nil
}

func (s *Schema) validateArray(items []jsonValue, path string) *Error {
	if s.minItems >= 0 && len(items) < s.minItems {
		return invalid(path, "must have at least %s", plural(s.minItems, "item"))
	}
	if s.maxItems >= 0 && len(items) > s.maxItems {
		return invalid(path, "must have at most %s", plural(s.maxItems, "item"))
	}
	if s.items == nil {
		return nil
	}
	for i, item := range items {
		if e := s.items.validate(item, fmt.Sprintf("%s[%d]", path, i)); e != nil {
			return e
		}
	}
	return nil
}

func (s *Schema) validateObject(members []jsonMember, path string) *Error {
	if key, dup := duplicateKey(members); dup {
		return NewError(CodeInvalidArgs, "argument %q is given twice", join(path, key))
	}
	for _, m := range members {
		sub, known := s.properties[m.key]
		if !known {
			if s.closed {
				return NewError(CodeInvalidArgs, "unknown argument %q", join(path, m.key))
			}
			continue
		}
		if e := sub.validate(m.val, join(path, m.key)); e != nil {
			return e
		}
	}
	for _, name := range s.required {
		if !slices.ContainsFunc(members, func(m jsonMember) bool { return m.key == name }) {
			return NewError(CodeInvalidArgs, "missing argument %q", join(path, name))
		}
	}
	return nil
}

// checkType checks v against a type name.
func checkType(typ string, v jsonValue, path string) *Error {
	switch typ {
	case "object":
		if v.kind != kindObject {
			return invalid(path, "must be an object")
		}
	case "array":
		if v.kind != kindArray {
			return invalid(path, "must be an array")
		}
	case "string":
		if v.kind != kindString {
			return invalid(path, "must be a string")
		}
	case "boolean":
		if v.kind != kindBool {
			return invalid(path, "must be true or false")
		}
	case "null":
		if v.kind != kindNull {
			return invalid(path, "must be null")
		}
	case "number":
		if v.kind != kindNumber {
			return invalid(path, "must be a number")
		}
		if _, err := strconv.ParseFloat(v.s, 64); err != nil {
			return invalid(path, "must be a number a float64 can hold")
		}
	case "integer":
		if v.kind != kindNumber || !isIntegerLiteral(v.s) {
			return invalid(path, "must be an integer (digits only, no fraction or exponent)")
		}
		if _, err := strconv.ParseInt(v.s, 10, 64); err != nil {
			return invalid(path, "must be an integer between %d and %d", math.MinInt64, math.MaxInt64)
		}
	}
	return nil
}

// invalid makes the error for a value at path; the root is "arguments".
func invalid(path, format string, args ...any) *Error {
	msg := fmt.Sprintf(format, args...)
	if path == "" {
		return NewError(CodeInvalidArgs, "arguments %s", msg)
	}
	return NewError(CodeInvalidArgs, "argument %q: %s", path, msg)
}

// isIntegerLiteral: a JSON number without fraction or exponent.
func isIntegerLiteral(lit string) bool {
	return !strings.ContainsAny(lit, ".eE")
}

// numberValue reads a JSON number literal exactly enough to compare it;
// false when it lies beyond what a float64 can hold.
func numberValue(lit string) (*big.Float, bool) {
	f64, err := strconv.ParseFloat(lit, 64)
	if err != nil {
		return nil, false
	}
	f, ok := new(big.Float).SetPrec(numberPrec).SetString(lit)
	if !ok {
		// An exponent too large for big.Float of a value that still parsed
		// as a float64: it underflowed to zero.
		return new(big.Float).SetPrec(numberPrec).SetFloat64(f64), true
	}
	return f, true
}

// sameValue compares an enum value with an argument; numbers by value.
func sameValue(a, b jsonValue) bool {
	if a.kind != b.kind {
		return false
	}
	switch a.kind {
	case kindString:
		return a.s == b.s
	case kindBool:
		return a.b == b.b
	case kindNumber:
		x, okx := numberValue(a.s)
		y, oky := numberValue(b.s)
		return okx && oky && x.Cmp(y) == 0
	}
	return false
}

// literal writes an enum value as JSON for messages.
func literal(v jsonValue) string {
	switch v.kind {
	case kindString:
		b, _ := json.Marshal(v.s)
		return string(b)
	case kindNumber:
		return v.s
	case kindBool:
		return strconv.FormatBool(v.b)
	}
	return v.kind.String()
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
