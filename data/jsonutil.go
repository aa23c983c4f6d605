package data

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strconv"
)

// Sentinel strings that stand for Python's bare NaN/Infinity/-Infinity
// after sanitizeJSON (a NUL byte cannot occur unescaped in real JSON text,
// so these never collide with data).
const (
	nanSentinel    = "\x00NaN"
	posInfSentinel = "\x00Infinity"
	negInfSentinel = "\x00-Infinity"
)

// sanitized is JSON text with Python's non-standard number tokens replaced
// by sentinel strings, and a map back to the original byte offsets.
type sanitized struct {
	text  []byte
	edits []offsetEdit // sorted by newPos
}

type offsetEdit struct {
	newPos int // offset in text after which positions shift
	delta  int // original = new - delta for positions beyond newPos
}

// origOffset maps an offset in the sanitized text back to the input.
func (s *sanitized) origOffset(off int64) int64 {
	d := 0
	for _, e := range s.edits {
		if int(off) > e.newPos {
			d = e.delta
		}
	}
	return off - int64(d)
}

// sanitizeJSON replaces bare NaN, Infinity and -Infinity tokens (outside
// strings) with quoted sentinel strings that Float decodes.
func sanitizeJSON(in []byte) *sanitized {
	if !bytes.Contains(in, []byte("NaN")) && !bytes.Contains(in, []byte("Infinity")) {
		return &sanitized{text: in}
	}
	out := make([]byte, 0, len(in)+64)
	var edits []offsetEdit
	delta := 0
	inStr, esc := false, false
	for i := 0; i < len(in); i++ {
		c := in[i]
		if inStr {
			out = append(out, c)
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
			}
			continue
		}
		if c == '"' {
			inStr = true
			out = append(out, c)
			continue
		}
		var tok, rep string
		switch {
		case bytes.HasPrefix(in[i:], []byte("NaN")):
			tok, rep = "NaN", nanSentinel
		case bytes.HasPrefix(in[i:], []byte("-Infinity")):
			tok, rep = "-Infinity", negInfSentinel
		case bytes.HasPrefix(in[i:], []byte("Infinity")):
			tok, rep = "Infinity", posInfSentinel
		}
		if tok != "" {
			q, _ := json.Marshal(rep)
			out = append(out, q...)
			delta += len(q) - len(tok)
			edits = append(edits, offsetEdit{newPos: len(out) - 1, delta: delta})
			i += len(tok) - 1
			continue
		}
		out = append(out, c)
	}
	return &sanitized{text: out, edits: edits}
}

var (
	_ json.Unmarshaler = (*Float)(nil)
	_ json.Marshaler   = Float(0)
	_ json.Marshaler   = (*Tokenizer)(nil)
)

// Float is a float64 that also decodes JSON null (as NaN) and Python's bare
// NaN/Infinity/-Infinity (after sanitizeJSON), and encodes non-finite
// values as null.
type Float float64

// UnmarshalJSON implements json.Unmarshaler.
func (f *Float) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*f = Float(math.NaN())
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		switch s {
		case nanSentinel, "NaN", "nan":
			*f = Float(math.NaN())
		case posInfSentinel, "Infinity", "inf":
			*f = Float(math.Inf(1))
		case negInfSentinel, "-Infinity", "-inf":
			*f = Float(math.Inf(-1))
		default:
			v, err := strconv.ParseFloat(s, 64)
			if err != nil {
				return &json.UnmarshalTypeError{Value: "string " + strconv.Quote(truncateForMsg(s, 40)), Type: reflect.TypeFor[float64]()}
			}
			*f = Float(v)
		}
		return nil
	}
	var v float64
	if err := json.Unmarshal(b, &v); err != nil {
		return &json.UnmarshalTypeError{Value: truncateForMsg(string(b), 40), Type: reflect.TypeFor[float64]()}
	}
	*f = Float(v)
	return nil
}

// MarshalJSON implements json.Marshaler (non-finite values become null).
func (f Float) MarshalJSON() ([]byte, error) {
	v := float64(f)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return []byte("null"), nil
	}
	return json.Marshal(v)
}

func truncateForMsg(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// lineCol returns the 1-based line and column of byte offset off in b.
func lineCol(b []byte, off int64) (int, int) {
	if off > int64(len(b)) {
		off = int64(len(b))
	}
	if off < 0 {
		off = 0
	}
	line := 1 + bytes.Count(b[:off], []byte("\n"))
	col := int(off) - bytes.LastIndexByte(b[:off], '\n')
	return line, col
}

// jsonErr turns a decoding error on raw into a message naming the byte
// offset (and line:column) or the JSON path.
func jsonErr(raw []byte, err error) error {
	return jsonErrMapped(raw, nil, err)
}

func jsonErrMapped(raw []byte, s *sanitized, err error) error {
	mapOff := func(o int64) int64 {
		if s != nil {
			return s.origOffset(o)
		}
		return o
	}
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		off := mapOff(se.Offset)
		l, c := lineCol(raw, off)
		return fmt.Errorf("byte offset %d (line %d col %d): invalid JSON: %v", off, l, c, se)
	case errors.As(err, &te):
		path := te.Field
		if path == "" {
			path = "(top level)"
		}
		if te.Offset <= 0 {
			return fmt.Errorf("at %s: cannot use JSON %s as %v", path, te.Value, te.Type)
		}
		off := mapOff(te.Offset)
		l, c := lineCol(raw, off)
		return fmt.Errorf("byte offset %d (line %d col %d): at %s: cannot use JSON %s as %v", off, l, c, path, te.Value, te.Type)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("byte offset %d: unexpected end of JSON (truncated file?)", len(raw))
	}
	return err
}

// decodeStrict decodes raw (Python NaN/Infinity allowed) into v, rejecting
// unknown fields when strict and trailing data always.
func decodeStrict(raw []byte, v any, strict bool) error {
	s := sanitizeJSON(raw)
	dec := json.NewDecoder(bytes.NewReader(s.text))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("empty file (no JSON value)")
		}
		return jsonErrMapped(raw, s, err)
	}
	if tok, err := dec.Token(); err != io.EOF {
		off := s.origOffset(dec.InputOffset())
		l, c := lineCol(raw, off)
		if err != nil {
			return fmt.Errorf("byte offset %d (line %d col %d): trailing data after the JSON value: %v", off, l, c, err)
		}
		return fmt.Errorf("byte offset %d (line %d col %d): trailing data after the JSON value (%v)", off, l, c, tok)
	}
	return nil
}
