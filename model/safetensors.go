package model

// Reading and writing the safetensors format (HF): an 8-byte little-endian
// header length N, N bytes of JSON header
//
//	{"__metadata__": {"k": "v"}, "name": {"dtype": "F32", "shape": [2, 3],
//	 "data_offsets": [begin, end]}, ...}
//
// and then the raw little-endian tensor data; offsets are relative to the
// first byte after the header. Reading is strict: the header must lie inside
// the file, be one JSON object without duplicate keys, every tensor must have
// a known dtype, a size equal to prod(shape)·sizeof(dtype), and the tensors
// must cover the data section exactly, without holes or overlaps.

import (
	"smtrain/model/internal/vec"
	"unsafe"

	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"

	"smtrain/internal/atomicfile"
)

// MaxSafetensorsHeader is the largest header accepted (the reference
// implementation's limit).
const MaxSafetensorsHeader = 100 << 20

// dtypeSizes are the element sizes in bytes of the safetensors dtypes.
var dtypeSizes = map[string]int{
	"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1,
	"I16": 2, "U16": 2, "F16": 2, "BF16": 2,
	"I32": 4, "U32": 4, "F32": 4,
	"I64": 8, "U64": 8, "F64": 8,
}

// DTypeSize returns the element size in bytes of a safetensors dtype name,
// or 0 for an unknown one.
func DTypeSize(dtype string) int { return dtypeSizes[dtype] }

// Tensor is one named tensor of a safetensors file: its dtype name ("F32",
// "F64", "BF16", ...), shape, and raw little-endian data.
type Tensor struct {
	Name  string
	DType string
	Shape []int
	Data  []byte
}

// NumElements is the product of the shape (1 for a scalar).
func (t *Tensor) NumElements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// IsFloat reports whether the dtype converts to floating point (F16, BF16,
// F32, F64).
func (t *Tensor) IsFloat() bool {
	switch t.DType {
	case "F16", "BF16", "F32", "F64":
		return true
	}
	return false
}

// Float64s converts the data of a float tensor to float64 (exactly).
func (t *Tensor) Float64s() ([]float64, error) {
	n := t.NumElements()
	if err := t.checkLen(n); err != nil {
		return nil, err
	}
	out := make([]float64, n)
	d := t.Data
	switch t.DType {
	case "F64":
		for i := range out {
			out[i] = math.Float64frombits(binary.LittleEndian.Uint64(d[8*i:]))
		}
	case "F32":
		for i := range out {
			out[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(d[4*i:])))
		}
	case "F16":
		for i := range out {
			out[i] = float64(vec.HalfToFloat32(binary.LittleEndian.Uint16(d[2*i:])))
		}
	case "BF16":
		for i := range out {
			out[i] = float64(math.Float32frombits(uint32(binary.LittleEndian.Uint16(d[2*i:])) << 16))
		}
	default:
		return nil, fmt.Errorf("tensor %s: dtype %s is not a float type", t.Name, t.DType)
	}
	return out, nil
}

// Float32s converts the data of a float tensor to float32 (F64 is rounded
// to nearest).
func (t *Tensor) Float32s() ([]float32, error) {
	n := t.NumElements()
	if err := t.checkLen(n); err != nil {
		return nil, err
	}
	out := make([]float32, n)
	d := t.Data
	switch t.DType {
	case "F32":
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(d[4*i:]))
		}
	case "F64", "F16", "BF16":
		f, err := t.Float64s()
		if err != nil {
			return nil, err
		}
		for i, v := range f {
			out[i] = float32(v)
		}
	default:
		return nil, fmt.Errorf("tensor %s: dtype %s is not a float type", t.Name, t.DType)
	}
	return out, nil
}

// Int64s converts the data of an integer tensor (I8..I64, U8..U32, BOOL) to
// int64.
func (t *Tensor) Int64s() ([]int64, error) {
	n := t.NumElements()
	if err := t.checkLen(n); err != nil {
		return nil, err
	}
	out := make([]int64, n)
	d := t.Data
	switch t.DType {
	case "I64":
		for i := range out {
			out[i] = int64(binary.LittleEndian.Uint64(d[8*i:]))
		}
	case "I32":
		for i := range out {
			out[i] = int64(int32(binary.LittleEndian.Uint32(d[4*i:])))
		}
	case "U32":
		for i := range out {
			out[i] = int64(binary.LittleEndian.Uint32(d[4*i:]))
		}
	case "I16":
		for i := range out {
			out[i] = int64(int16(binary.LittleEndian.Uint16(d[2*i:])))
		}
	case "U16":
		for i := range out {
			out[i] = int64(binary.LittleEndian.Uint16(d[2*i:]))
		}
	case "I8":
		for i := range out {
			out[i] = int64(int8(d[i]))
		}
	case "U8", "BOOL":
		for i := range out {
			out[i] = int64(d[i])
		}
	default:
		return nil, fmt.Errorf("tensor %s: dtype %s is not an integer type", t.Name, t.DType)
	}
	return out, nil
}

func (t *Tensor) checkLen(n int) error {
	if sz := dtypeSizes[t.DType]; sz == 0 || len(t.Data) != n*sz {
		return fmt.Errorf("tensor %s: %d bytes of data for dtype %s and shape %v", t.Name, len(t.Data), t.DType, t.Shape)
	}
	return nil
}

// F32Tensor makes an F32 tensor from float32 values.
func F32Tensor(name string, shape []int, v []float32) Tensor {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return Tensor{Name: name, DType: "F32", Shape: append([]int(nil), shape...), Data: b}
}

// F32TensorView is F32Tensor whose Data aliases v on a little-endian host
// (a copy elsewhere): for encoding v's values right away without a second
// copy of them in memory (Save, optimizer state). Data must not be
// modified and is only valid while v is unchanged.
func F32TensorView(name string, shape []int, v []float32) Tensor {
	if !littleEndian || len(v) == 0 {
		return F32Tensor(name, shape, v)
	}
	b := unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v))
	return Tensor{Name: name, DType: "F32", Shape: append([]int(nil), shape...), Data: b}
}

// F64TensorView is F32TensorView for float64 values.
func F64TensorView(name string, shape []int, v []float64) Tensor {
	if !littleEndian || len(v) == 0 {
		return F64Tensor(name, shape, v)
	}
	b := unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 8*len(v))
	return Tensor{Name: name, DType: "F64", Shape: append([]int(nil), shape...), Data: b}
}

// littleEndian: the host stores numbers as safetensors does.
var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// F64Tensor makes an F64 tensor from float64 values.
func F64Tensor(name string, shape []int, v []float64) Tensor {
	b := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(x))
	}
	return Tensor{Name: name, DType: "F64", Shape: append([]int(nil), shape...), Data: b}
}

// I64Tensor makes an I64 tensor from int64 values.
func I64Tensor(name string, shape []int, v []int64) Tensor {
	b := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(b[8*i:], uint64(x))
	}
	return Tensor{Name: name, DType: "I64", Shape: append([]int(nil), shape...), Data: b}
}

// Safetensors is the parsed content of a safetensors file. Tensors are in
// file (data offset) order; Data slices alias the buffer that was parsed.
type Safetensors struct {
	Metadata map[string]string
	Tensors  []Tensor
	index    map[string]int
}

// Get returns the tensor called name, or nil.
func (s *Safetensors) Get(name string) *Tensor {
	if i, ok := s.index[name]; ok {
		return &s.Tensors[i]
	}
	return nil
}

// Names returns the tensor names in file order.
func (s *Safetensors) Names() []string {
	out := make([]string, len(s.Tensors))
	for i := range s.Tensors {
		out[i] = s.Tensors[i].Name
	}
	return out
}

// ReadSafetensors reads and validates the safetensors file at path. Errors
// name the file.
func ReadSafetensors(path string) (*Safetensors, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	st, err := ParseSafetensors(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return st, nil
}

// stEntry is one header entry.
type stEntry struct {
	DType       string  `json:"dtype"`
	Shape       []int64 `json:"shape"`
	DataOffsets []int64 `json:"data_offsets"`
}

// ParseSafetensors parses and validates a whole safetensors file held in b.
// The returned tensors' Data alias b.
func ParseSafetensors(b []byte) (*Safetensors, error) {
	if len(b) < 8 {
		return nil, fmt.Errorf("truncated: %d bytes, need at least 8 for the header length", len(b))
	}
	n := binary.LittleEndian.Uint64(b)
	if n > MaxSafetensorsHeader {
		return nil, fmt.Errorf("header length %d exceeds the limit %d (not a safetensors file?)", n, MaxSafetensorsHeader)
	}
	if n < 2 {
		return nil, fmt.Errorf("header length %d is too small for a JSON object", n)
	}
	if n > uint64(len(b)-8) {
		return nil, fmt.Errorf("truncated: header length %d but only %d bytes follow", n, len(b)-8)
	}
	hdr := b[8 : 8+n]
	data := b[8+n:]
	if hdr[0] != '{' {
		return nil, errors.New("header does not start with '{' (not a safetensors file?)")
	}
	dec := json.NewDecoder(bytes.NewReader(hdr))
	dec.UseNumber()
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("header: invalid JSON: %v", err)
	}
	st := &Safetensors{index: map[string]int{}}
	seen := map[string]bool{}
	type parsedTensor struct {
		t   Tensor
		beg int64
	}
	var parsed []parsedTensor
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("header: invalid JSON: %v", err)
		}
		name, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("header: invalid JSON key %v", tok)
		}
		if seen[name] {
			return nil, fmt.Errorf("header: duplicate entry %q", name)
		}
		seen[name] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("header: entry %q: invalid JSON: %v", name, err)
		}
		if name == "__metadata__" {
			md := map[string]string{}
			if err := json.Unmarshal(raw, &md); err != nil {
				return nil, fmt.Errorf("header: __metadata__ must be an object of strings: %v", err)
			}
			st.Metadata = md
			continue
		}
		var e stEntry
		d2 := json.NewDecoder(bytes.NewReader(raw))
		d2.DisallowUnknownFields()
		if err := d2.Decode(&e); err != nil {
			return nil, fmt.Errorf("header: tensor %s: %v", name, err)
		}
		t, beg, err := checkEntry(name, e, data)
		if err != nil {
			return nil, fmt.Errorf("header: tensor %s: %w", name, err)
		}
		parsed = append(parsed, parsedTensor{t, beg})
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("header: invalid JSON: %v", err)
	}
	if rest := bytes.TrimRight(hdr[dec.InputOffset():], " \t\r\n"); len(rest) != 0 {
		return nil, fmt.Errorf("header: %d bytes of trailing garbage after the JSON object", len(rest))
	}
	// The tensors must tile the data section: sorted by offset, no holes,
	// no overlaps, nothing after the last one.
	sort.SliceStable(parsed, func(i, j int) bool { return parsed[i].beg < parsed[j].beg })
	var pos int64
	for i := range parsed {
		p := &parsed[i]
		switch {
		case p.beg < pos:
			return nil, fmt.Errorf("tensor %s: data overlaps the previous tensor (begins at %d, previous ends at %d)", p.t.Name, p.beg, pos)
		case p.beg > pos:
			return nil, fmt.Errorf("tensor %s: hole in the data section before offset %d (previous ends at %d)", p.t.Name, p.beg, pos)
		}
		pos = p.beg + int64(len(p.t.Data))
		st.index[p.t.Name] = len(st.Tensors)
		st.Tensors = append(st.Tensors, p.t)
	}
	if pos != int64(len(data)) {
		return nil, fmt.Errorf("data section is %d bytes but the tensors cover %d (truncated or trailing data)", len(data), pos)
	}
	return st, nil
}

// checkEntry validates one header entry against the data section and
// returns the tensor (aliasing data) and its begin offset.
func checkEntry(name string, e stEntry, data []byte) (Tensor, int64, error) {
	sz, ok := dtypeSizes[e.DType]
	if !ok {
		return Tensor{}, 0, fmt.Errorf("unknown dtype %q", e.DType)
	}
	if e.Shape == nil {
		return Tensor{}, 0, errors.New("missing shape")
	}
	if len(e.DataOffsets) != 2 {
		return Tensor{}, 0, fmt.Errorf("data_offsets must have 2 entries, got %d", len(e.DataOffsets))
	}
	shape := make([]int, len(e.Shape))
	nel := int64(1)
	for i, d := range e.Shape {
		if d < 0 {
			return Tensor{}, 0, fmt.Errorf("negative dimension in shape %v", e.Shape)
		}
		if d > 0 && nel > math.MaxInt64/8/d {
			return Tensor{}, 0, fmt.Errorf("shape %v is too large", e.Shape)
		}
		nel *= d
		shape[i] = int(d)
	}
	beg, end := e.DataOffsets[0], e.DataOffsets[1]
	if beg < 0 || end < beg || end > int64(len(data)) {
		return Tensor{}, 0, fmt.Errorf("data_offsets [%d, %d] outside the data section of %d bytes (truncated file?)", beg, end, len(data))
	}
	if want := nel * int64(sz); end-beg != want {
		return Tensor{}, 0, fmt.Errorf("data_offsets [%d, %d] hold %d bytes, shape %v of %s needs %d", beg, end, end-beg, e.Shape, e.DType, want)
	}
	return Tensor{Name: name, DType: e.DType, Shape: shape, Data: data[beg:end:end]}, beg, nil
}

// EncodeSafetensors writes tensors (in the given order) and metadata in the
// safetensors format to w. The header is padded with spaces to a multiple of
// 8 bytes, as the reference implementation does.
func EncodeSafetensors(w io.Writer, tensors []Tensor, metadata map[string]string) error {
	hdr, err := encodeHeader(tensors, metadata)
	if err != nil {
		return err
	}
	var lenb [8]byte
	binary.LittleEndian.PutUint64(lenb[:], uint64(len(hdr)))
	if _, err := w.Write(lenb[:]); err != nil {
		return err
	}
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	for i := range tensors {
		if _, err := w.Write(tensors[i].Data); err != nil {
			return err
		}
	}
	return nil
}

// MarshalSafetensors returns the safetensors encoding of tensors.
func MarshalSafetensors(tensors []Tensor, metadata map[string]string) ([]byte, error) {
	var buf bytes.Buffer
	if err := EncodeSafetensors(&buf, tensors, metadata); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func encodeHeader(tensors []Tensor, metadata map[string]string) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	first := true
	writeKey := func(k string) {
		if !first {
			buf.WriteByte(',')
		}
		first = false
		kb, _ := json.Marshal(k)
		buf.Write(kb)
		buf.WriteByte(':')
	}
	if len(metadata) > 0 {
		writeKey("__metadata__")
		mb, err := json.Marshal(metadata)
		if err != nil {
			return nil, err
		}
		buf.Write(mb)
	}
	seen := map[string]bool{}
	var off int64
	for i := range tensors {
		t := &tensors[i]
		switch {
		case t.Name == "" || t.Name == "__metadata__":
			return nil, fmt.Errorf("invalid tensor name %q", t.Name)
		case seen[t.Name]:
			return nil, fmt.Errorf("duplicate tensor name %q", t.Name)
		case dtypeSizes[t.DType] == 0:
			return nil, fmt.Errorf("tensor %s: unknown dtype %q", t.Name, t.DType)
		}
		seen[t.Name] = true
		for _, d := range t.Shape {
			if d < 0 {
				return nil, fmt.Errorf("tensor %s: negative dimension in shape %v", t.Name, t.Shape)
			}
		}
		if want := t.NumElements() * dtypeSizes[t.DType]; len(t.Data) != want {
			return nil, fmt.Errorf("tensor %s: %d bytes of data, shape %v of %s needs %d", t.Name, len(t.Data), t.Shape, t.DType, want)
		}
		shape := t.Shape
		if shape == nil {
			shape = []int{}
		}
		e := struct {
			DType       string  `json:"dtype"`
			Shape       []int   `json:"shape"`
			DataOffsets []int64 `json:"data_offsets"`
		}{t.DType, shape, []int64{off, off + int64(len(t.Data))}}
		eb, err := json.Marshal(e)
		if err != nil {
			return nil, err
		}
		writeKey(t.Name)
		buf.Write(eb)
		off += int64(len(t.Data))
	}
	buf.WriteByte('}')
	for buf.Len()%8 != 0 {
		buf.WriteByte(' ')
	}
	return buf.Bytes(), nil
}

// WriteSafetensors writes tensors and metadata to path atomically (a
// temporary file in the same directory, synced, then renamed over path).
func WriteSafetensors(path string, tensors []Tensor, metadata map[string]string) error {
	return atomicfile.Write(path, func(w io.Writer) error {
		return EncodeSafetensors(w, tensors, metadata)
	})
}
