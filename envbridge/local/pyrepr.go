package local

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode"
)

// kv is one entry of an ordered map.
type kv struct {
	K string
	V any
}

// omap is an insertion-ordered map: it marshals to a JSON object with keys
// in order (like Python dicts in MLE-Dojo's history.json) and renders like
// Python's repr() in feedback texts.
type omap []kv

func (m omap) get(k string) (any, bool) {
	for _, e := range m {
		if e.K == k {
			return e.V, true
		}
	}
	return nil, false
}

func (m *omap) set(k string, v any) {
	for i := range *m {
		if (*m)[i].K == k {
			(*m)[i].V = v
			return
		}
	}
	*m = append(*m, kv{k, v})
}

// MarshalJSON writes the entries in order; NaN and infinities become null.
func (m omap) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, e := range m {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(e.K)
		b.Write(k)
		b.WriteByte(':')
		v, err := marshalValue(e.V)
		if err != nil {
			return nil, err
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func marshalValue(v any) ([]byte, error) {
	switch t := v.(type) {
	case float64:
		if math.IsNaN(t) || math.IsInf(t, 0) {
			return []byte("null"), nil
		}
	case intKeyMap:
		return t.toOmap().MarshalJSON()
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// intKeyMap is a pandas to_dict() column: {0: v0, 1: v1, ...}. It renders
// with integer keys in Python repr and string keys in JSON, as in MLE-Dojo.
type intKeyMap []any

func (m intKeyMap) toOmap() omap {
	o := make(omap, len(m))
	for i, v := range m {
		o[i] = kv{strconv.Itoa(i), v}
	}
	return o
}

// MarshalJSON writes {"0": v0, ...}.
func (m intKeyMap) MarshalJSON() ([]byte, error) { return m.toOmap().MarshalJSON() }

// pyRepr renders v like Python's repr(): dicts with single-quoted string
// keys, None/True/False, floats in Python's shortest repr.
func pyRepr(v any) string {
	var b strings.Builder
	writeRepr(&b, v)
	return b.String()
}

func writeRepr(b *strings.Builder, v any) {
	switch t := v.(type) {
	case nil:
		b.WriteString("None")
	case bool:
		if t {
			b.WriteString("True")
		} else {
			b.WriteString("False")
		}
	case string:
		b.WriteString(pyStr(t))
	case int:
		b.WriteString(strconv.Itoa(t))
	case int64:
		b.WriteString(strconv.FormatInt(t, 10))
	case float64:
		b.WriteString(pyFloat(t))
	case omap:
		b.WriteByte('{')
		for i, e := range t {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(pyStr(e.K))
			b.WriteString(": ")
			writeRepr(b, e.V)
		}
		b.WriteByte('}')
	case intKeyMap:
		b.WriteByte('{')
		for i, e := range t {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(strconv.Itoa(i))
			b.WriteString(": ")
			writeRepr(b, e)
		}
		b.WriteByte('}')
	case []string:
		b.WriteByte('[')
		for i, e := range t {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(pyStr(e))
		}
		b.WriteByte(']')
	case []any:
		b.WriteByte('[')
		for i, e := range t {
			if i > 0 {
				b.WriteString(", ")
			}
			writeRepr(b, e)
		}
		b.WriteByte(']')
	default:
		fmt.Fprint(b, t)
	}
}

// pyFloat is Python's repr of a float: shortest round-trip digits, fixed
// notation for 1e-4 <= |x| < 1e16 (always with a decimal point), else
// exponent notation with at least two exponent digits.
func pyFloat(x float64) string {
	switch {
	case math.IsNaN(x):
		return "nan"
	case math.IsInf(x, 1):
		return "inf"
	case math.IsInf(x, -1):
		return "-inf"
	case x == 0:
		if math.Signbit(x) {
			return "-0.0"
		}
		return "0.0"
	}
	a := math.Abs(x)
	if a >= 1e-4 && a < 1e16 {
		s := strconv.FormatFloat(x, 'f', -1, 64)
		if !strings.Contains(s, ".") {
			s += ".0"
		}
		return s
	}
	return strconv.FormatFloat(x, 'e', -1, 64)
}

// pyStr is Python's repr of a str: single quotes unless the string holds a
// single quote and no double quote; backslash escapes for \\, \n, \r, \t,
// the chosen quote and non-printable characters.
func pyStr(s string) string {
	q := byte('\'')
	if strings.ContainsRune(s, '\'') && !strings.ContainsRune(s, '"') {
		q = '"'
	}
	var b strings.Builder
	b.WriteByte(q)
	for _, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == rune(q):
			b.WriteByte('\\')
			b.WriteByte(q)
		case r == unicode.ReplacementChar:
			b.WriteString(`\ufffd`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r >= 0x80 && !unicode.IsPrint(r):
			if r <= 0xff {
				fmt.Fprintf(&b, `\x%02x`, r)
			} else if r <= 0xffff {
				fmt.Fprintf(&b, `\u%04x`, r)
			} else {
				fmt.Fprintf(&b, `\U%08x`, r)
			}
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte(q)
	return b.String()
}
