package capability

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// decodePlain reads args, in one pass, as the value the schema library
// validates: what encoding/json decodes into an any with UseNumber
// (map[string]any, []any, json.Number, string, bool, nil). ok is false
// when args are not one JSON value, nest deeper than maxJSONDepth or give
// a key twice in an object; checkJSON then says where.
//
// It replaces json.Valid, a scan for keys given twice and the library's
// own decode, three passes in which the decode's deep stack made each
// call's fresh goroutine grow (and copy) its stack every time.
func decodePlain(args []byte) (v any, ok bool) {
	d := plainDecoder{data: args}
	d.space()
	if v, ok = d.value(); !ok {
		return nil, false
	}
	d.space()
	return v, d.i == len(d.data)
}

type plainDecoder struct {
	data  []byte
	i     int
	depth int
}

func (d *plainDecoder) space() {
	for d.i < len(d.data) {
		switch d.data[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *plainDecoder) value() (any, bool) {
	if d.i >= len(d.data) {
		return nil, false
	}
	switch c := d.data[d.i]; {
	case c == '{':
		return d.object()
	case c == '[':
		return d.array()
	case c == '"':
		s, ok := d.string()
		return s, ok
	case c == '-' || '0' <= c && c <= '9':
		return d.number()
	case c == 't':
		return true, d.literal("true")
	case c == 'f':
		return false, d.literal("false")
	case c == 'n':
		return nil, d.literal("null")
	}
	return nil, false
}

// open enters a nested object or array, unless that is one level too deep.
func (d *plainDecoder) open() bool {
	if d.depth == maxJSONDepth {
		return false
	}
	d.depth++
	d.i++
	d.space()
	return true
}

func (d *plainDecoder) object() (any, bool) {
	if !d.open() {
		return nil, false
	}
	defer func() { d.depth-- }()
	m := make(map[string]any)
	if d.i < len(d.data) && d.data[d.i] == '}' {
		d.i++
		return m, true
	}
	for {
		if d.i >= len(d.data) || d.data[d.i] != '"' {
			return nil, false
		}
		k, ok := d.string()
		if !ok {
			return nil, false
		}
		d.space()
		if d.i >= len(d.data) || d.data[d.i] != ':' {
			return nil, false
		}
		d.i++
		d.space()
		v, ok := d.value()
		if !ok {
			return nil, false
		}
		if _, twice := m[k]; twice {
			return nil, false
		}
		m[k] = v
		if more, ok := d.afterItem('}'); !ok {
			return nil, false
		} else if !more {
			return m, true
		}
	}
}

func (d *plainDecoder) array() (any, bool) {
	if !d.open() {
		return nil, false
	}
	defer func() { d.depth-- }()
	a := make([]any, 0)
	if d.i < len(d.data) && d.data[d.i] == ']' {
		d.i++
		return a, true
	}
	for {
		v, ok := d.value()
		if !ok {
			return nil, false
		}
		a = append(a, v)
		if more, ok := d.afterItem(']'); !ok {
			return nil, false
		} else if !more {
			return a, true
		}
	}
}

// afterItem reads what follows an object's member or an array's item: a
// comma (more follow) or the closing end.
func (d *plainDecoder) afterItem(end byte) (more, ok bool) {
	d.space()
	if d.i >= len(d.data) {
		return false, false
	}
	switch d.data[d.i] {
	case ',':
		d.i++
		d.space()
		return true, true
	case end:
		d.i++
		return false, true
	}
	return false, false
}

// string reads the string at d.i. One with an escape or a byte that is
// not UTF-8 is decoded by encoding/json, whose rules for those (a lone
// surrogate or a bad byte reads as U+FFFD) are the library's.
func (d *plainDecoder) string() (string, bool) {
	start := d.i
	plain, ascii := true, true
	for j := start + 1; j < len(d.data); j++ {
		switch c := d.data[j]; {
		case c == '"':
			d.i = j + 1
			body := d.data[start+1 : j]
			if plain && (ascii || utf8.Valid(body)) {
				return string(body), true
			}
			var s string
			if err := json.Unmarshal(d.data[start:d.i], &s); err != nil {
				return "", false
			}
			return s, true
		case c == '\\':
			plain = false
			j++
		case c < 0x20:
			return "", false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return "", false
}

func (d *plainDecoder) number() (any, bool) {
	start := d.i
	if d.data[d.i] == '-' {
		d.i++
	}
	switch {
	case d.i < len(d.data) && d.data[d.i] == '0':
		d.i++
	case !d.digits():
		return nil, false
	}
	if d.i < len(d.data) && d.data[d.i] == '.' {
		d.i++
		if !d.digits() {
			return nil, false
		}
	}
	if d.i < len(d.data) && (d.data[d.i] == 'e' || d.data[d.i] == 'E') {
		d.i++
		if d.i < len(d.data) && (d.data[d.i] == '+' || d.data[d.i] == '-') {
			d.i++
		}
		if !d.digits() {
			return nil, false
		}
	}
	return json.Number(d.data[start:d.i]), true
}

// digits reads one or more decimal digits.
func (d *plainDecoder) digits() bool {
	start := d.i
	for d.i < len(d.data) && '0' <= d.data[d.i] && d.data[d.i] <= '9' {
		d.i++
	}
	return d.i > start
}

func (d *plainDecoder) literal(word string) bool {
	if !bytes.HasPrefix(d.data[d.i:], []byte(word)) {
		return false
	}
	d.i += len(word)
	return true
}
