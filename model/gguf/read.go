package gguf

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"

	"smtrain/model"
)

// File is a parsed GGUF file: its metadata and tensors (F32 and F16 only).
type File struct {
	Version uint32
	// KV holds the metadata: uint32/int32/uint64/int64/float32/float64/
	// bool/string values, arrays as []any.
	KV      map[string]any
	Tensors []TensorInfo
	data    []byte // the tensor data section
}

// TensorInfo is one tensor's entry: dims innermost first, as ggml has them.
type TensorInfo struct {
	Name   string
	Dims   []uint64
	Type   TensorType
	Offset uint64
}

// ReadFile parses the GGUF file at path.
func ReadFile(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	f, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// maxCount bounds array lengths and dims read from a file (hostile input).
const maxCount = 1 << 40

// Parse parses a whole GGUF file held in b. Every length and offset is
// checked against b; errors name the byte offset.
func Parse(b []byte) (*File, error) {
	d := &dec{b: b}
	if m := d.u32(); d.err == nil && m != Magic {
		return nil, fmt.Errorf("not a GGUF file (magic %#x)", m)
	}
	f := &File{Version: d.u32(), KV: map[string]any{}}
	if d.err == nil && f.Version != Version {
		return nil, fmt.Errorf("GGUF version %d, this reader knows %d", f.Version, Version)
	}
	nt, nkv := d.u64(), d.u64()
	if nt > maxCount || nkv > maxCount {
		return nil, fmt.Errorf("implausible counts: %d tensors, %d keys", nt, nkv)
	}
	for i := uint64(0); i < nkv && d.err == nil; i++ {
		k := d.str()
		f.KV[k] = d.value(d.u32(), 0)
	}
	align := uint64(Alignment)
	if a, ok := f.KV["general.alignment"].(uint32); ok {
		if a == 0 || a&(a-1) != 0 {
			return nil, fmt.Errorf("general.alignment %d is not a power of two", a)
		}
		align = uint64(a)
	}
	for i := uint64(0); i < nt && d.err == nil; i++ {
		t := TensorInfo{Name: d.str()}
		nd := d.u32()
		if nd > 4 {
			return nil, fmt.Errorf("tensor %q: %d dims", t.Name, nd)
		}
		for j := uint32(0); j < nd; j++ {
			t.Dims = append(t.Dims, d.u64())
		}
		t.Type, t.Offset = TensorType(d.u32()), d.u64()
		f.Tensors = append(f.Tensors, t)
	}
	if d.err != nil {
		return nil, d.err
	}
	start := pad(uint64(d.off), align)
	if start > uint64(len(b)) {
		return nil, fmt.Errorf("tensor data starts at %d, past the end (%d bytes)", start, len(b))
	}
	f.data = b[start:]
	for _, t := range f.Tensors {
		if t.Type != F32 && t.Type != F16 {
			return nil, fmt.Errorf("tensor %q: type %v not supported by this reader", t.Name, t.Type)
		}
		if t.Offset%align != 0 {
			return nil, fmt.Errorf("tensor %q: offset %d not aligned to %d", t.Name, t.Offset, align)
		}
		n, ok := elements(t.Dims)
		if !ok || t.Offset > uint64(len(f.data)) || n*uint64(t.Type.size()) > uint64(len(f.data))-t.Offset {
			return nil, fmt.Errorf("tensor %q: dims %v at offset %d overrun the data (%d bytes)", t.Name, t.Dims, t.Offset, len(f.data))
		}
	}
	return f, nil
}

// elements is the product of dims, false on overflow past maxCount.
func elements(dims []uint64) (uint64, bool) {
	n := uint64(1)
	for _, x := range dims {
		if x > maxCount || (x > 0 && n > maxCount/x) {
			return 0, false
		}
		n *= x
	}
	return n, true
}

// Tensor returns the named tensor as a safetensors-style tensor (shape
// outermost first, dtype "F32" or "F16"), or false if it is absent.
func (f *File) Tensor(name string) (model.Tensor, bool) {
	for _, t := range f.Tensors {
		if t.Name != name {
			continue
		}
		n, _ := elements(t.Dims)
		shape := make([]int, len(t.Dims))
		for i, x := range t.Dims {
			shape[len(t.Dims)-1-i] = int(x)
		}
		dt := "F32"
		if t.Type == F16 {
			dt = "F16"
		}
		nb := n * uint64(t.Type.size())
		return model.Tensor{Name: name, DType: dt, Shape: shape, Data: f.data[t.Offset : t.Offset+nb]}, true
	}
	return model.Tensor{}, false
}

// dec reads little-endian values, remembering the first error.
type dec struct {
	b   []byte
	off int
	err error
}

func (d *dec) take(n uint64) []byte {
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)-d.off) {
		d.err = fmt.Errorf("truncated at byte %d (want %d more bytes)", d.off, n)
		return nil
	}
	s := d.b[d.off : d.off+int(n)]
	d.off += int(n)
	return s
}

func (d *dec) u8() uint8 {
	if s := d.take(1); s != nil {
		return s[0]
	}
	return 0
}

func (d *dec) u16() uint16 {
	if s := d.take(2); s != nil {
		return binary.LittleEndian.Uint16(s)
	}
	return 0
}

func (d *dec) u32() uint32 {
	if s := d.take(4); s != nil {
		return binary.LittleEndian.Uint32(s)
	}
	return 0
}

func (d *dec) u64() uint64 {
	if s := d.take(8); s != nil {
		return binary.LittleEndian.Uint64(s)
	}
	return 0
}

func (d *dec) str() string { return string(d.take(d.u64())) }

// value reads a metadata value of type typ; depth bounds nested arrays.
func (d *dec) value(typ uint32, depth int) any {
	switch typ {
	case typeUint8:
		return d.u8()
	case typeInt8:
		return int8(d.u8())
	case typeUint16:
		return d.u16()
	case typeInt16:
		return int16(d.u16())
	case typeUint32:
		return d.u32()
	case typeInt32:
		return int32(d.u32())
	case typeFloat32:
		return math.Float32frombits(d.u32())
	case typeBool:
		return d.u8() != 0
	case typeString:
		return d.str()
	case typeUint64:
		return d.u64()
	case typeInt64:
		return int64(d.u64())
	case typeFloat64:
		return math.Float64frombits(d.u64())
	case typeArray:
		et, n := d.u32(), d.u64()
		if depth > 2 || n > uint64(len(d.b)-d.off) {
			if d.err == nil {
				d.err = fmt.Errorf("array at byte %d: %d elements, nesting %d", d.off, n, depth)
			}
			return nil
		}
		out := make([]any, 0, n)
		for i := uint64(0); i < n && d.err == nil; i++ {
			out = append(out, d.value(et, depth+1))
		}
		return out
	}
	if d.err == nil {
		d.err = fmt.Errorf("unknown value type %d at byte %d", typ, d.off)
	}
	return nil
}
