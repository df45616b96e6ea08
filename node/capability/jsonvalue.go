package capability

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// maxJSONDepth bounds how deeply arguments and schemas may nest. Real
// arguments are a few levels deep; the bound keeps a hostile caller from
// making the validator recurse 64 Ki times.
const maxJSONDepth = 64

// jsonKind is the kind of a parsed JSON value.
type jsonKind uint8

const (
	kindNull jsonKind = iota
	kindBool
	kindNumber
	kindString
	kindArray
	kindObject
)

// jsonValue is a parsed JSON value that keeps what encoding/json's generic
// decoding loses and validation needs: numbers as their literal text (no
// float rounding) and object members in order, duplicates included.
type jsonValue struct {
	kind jsonKind
	b    bool
	// s is a string's value or a number's literal text.
	s   string
	arr []jsonValue
	obj []jsonMember
}

type jsonMember struct {
	key string
	val jsonValue
}

// errTooDeep is returned by parseJSON for values nested beyond maxJSONDepth.
var errTooDeep = fmt.Errorf("nested more than %d levels deep", maxJSONDepth)

// parseJSON parses exactly one JSON value.
func parseJSON(data []byte) (jsonValue, error) {
	// Check the syntax with the strict scanner first: the token reader is
	// lenient in places (it accepts some malformed separators). Unmarshal
	// into a RawMessage runs that scanner and says where the error is.
	if err := json.Unmarshal(data, new(json.RawMessage)); err != nil {
		return jsonValue{}, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := parseValue(dec, 0)
	if err != nil {
		return jsonValue{}, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return jsonValue{}, errors.New("more than one JSON value")
	}
	return v, nil
}

func parseValue(dec *json.Decoder, depth int) (jsonValue, error) {
	if depth > maxJSONDepth {
		return jsonValue{}, errTooDeep
	}
	tok, err := dec.Token()
	if err != nil {
		return jsonValue{}, err
	}
	switch t := tok.(type) {
	case nil:
		return jsonValue{kind: kindNull}, nil
	case bool:
		return jsonValue{kind: kindBool, b: t}, nil
	case json.Number:
		return jsonValue{kind: kindNumber, s: string(t)}, nil
	case string:
		return jsonValue{kind: kindString, s: t}, nil
	case json.Delim:
		switch t {
		case '[':
			v := jsonValue{kind: kindArray}
			for dec.More() {
				item, err := parseValue(dec, depth+1)
				if err != nil {
					return jsonValue{}, err
				}
				v.arr = append(v.arr, item)
			}
			_, err := dec.Token() // ']'
			return v, err
		case '{':
			v := jsonValue{kind: kindObject}
			for dec.More() {
				keyTok, err := dec.Token()
				if err != nil {
					return jsonValue{}, err
				}
				key, ok := keyTok.(string)
				if !ok {
					return jsonValue{}, fmt.Errorf("object key %v is not a string", keyTok)
				}
				val, err := parseValue(dec, depth+1)
				if err != nil {
					return jsonValue{}, err
				}
				v.obj = append(v.obj, jsonMember{key: key, val: val})
			}
			_, err := dec.Token() // '}'
			return v, err
		}
	}
	return jsonValue{}, fmt.Errorf("unexpected JSON token %v", tok)
}

// duplicateKey returns the first key that appears twice in an object's
// members, if any.
func duplicateKey(members []jsonMember) (string, bool) {
	seen := make(map[string]bool, len(members))
	for _, m := range members {
		if seen[m.key] {
			return m.key, true
		}
		seen[m.key] = true
	}
	return "", false
}

// String names a kind the way messages to people do.
func (k jsonKind) String() string {
	switch k {
	case kindNull:
		return "null"
	case kindBool:
		return "a boolean"
	case kindNumber:
		return "a number"
	case kindString:
		return "a string"
	case kindArray:
		return "an array"
	case kindObject:
		return "an object"
	}
	return fmt.Sprintf("jsonKind(%d)", uint8(k))
}
