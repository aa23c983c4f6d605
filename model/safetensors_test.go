package model

import (
	"smtrain/model/internal/vec"

	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// rawST builds a safetensors file from a literal header and data section.
func rawST(header string, data []byte) []byte {
	b := make([]byte, 8, 8+len(header)+len(data))
	binary.LittleEndian.PutUint64(b, uint64(len(header)))
	b = append(b, header...)
	return append(b, data...)
}

func sampleTensors() []Tensor {
	return []Tensor{
		F32Tensor("a", []int{2, 3}, []float32{1, -2, 3.5, 4, 5, float32(math.Inf(1))}),
		F64Tensor("b.weight", []int{3}, []float64{math.Pi, -1e-300, 0}),
		I64Tensor("ids", []int{2, 1}, []int64{-7, 1 << 40}),
		F32Tensor("empty", []int{0, 4}, nil),
		F64Tensor("scalar", []int{}, []float64{42}),
	}
}

func TestSafetensorsRoundTrip(t *testing.T) {
	ts := sampleTensors()
	md := map[string]string{"format": "pt", "note": "x\"y"}
	b, err := MarshalSafetensors(ts, md)
	if err != nil {
		t.Fatal(err)
	}
	if n := binary.LittleEndian.Uint64(b); (8+n)%8 != 0 {
		t.Errorf("header length %d not padded to 8", n)
	}
	st, err := ParseSafetensors(b)
	if err != nil {
		t.Fatal(err)
	}
	if st.Metadata["format"] != "pt" || st.Metadata["note"] != "x\"y" {
		t.Errorf("metadata %v", st.Metadata)
	}
	if got := strings.Join(st.Names(), ","); got != "a,b.weight,ids,empty,scalar" {
		t.Errorf("names in file order: %s", got)
	}
	for _, want := range ts {
		got := st.Get(want.Name)
		if got == nil {
			t.Fatalf("missing %s", want.Name)
		}
		if got.DType != want.DType || !bytes.Equal(got.Data, want.Data) || len(got.Shape) != len(want.Shape) {
			t.Errorf("%s: got %s %v, want %s %v", want.Name, got.DType, got.Shape, want.DType, want.Shape)
		}
	}
	f, err := st.Get("a").Float64s()
	if err != nil || f[2] != 3.5 || !math.IsInf(f[5], 1) {
		t.Errorf("a as float64: %v %v", f, err)
	}
	g, err := st.Get("b.weight").Float32s()
	if err != nil || g[0] != float32(math.Pi) || g[1] != 0 {
		t.Errorf("b as float32: %v %v", g, err)
	}
	ids, err := st.Get("ids").Int64s()
	if err != nil || ids[0] != -7 || ids[1] != 1<<40 {
		t.Errorf("ids: %v %v", ids, err)
	}
	if _, err := st.Get("ids").Float32s(); err == nil {
		t.Error("I64 as float32: no error")
	}
	if st.Get("nope") != nil {
		t.Error("Get of a missing name is not nil")
	}

	// Through a file, atomically written.
	path := filepath.Join(t.TempDir(), "x.safetensors")
	if err := WriteSafetensors(path, ts, nil); err != nil {
		t.Fatal(err)
	}
	st2, err := ReadSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(st2.Tensors) != len(ts) || st2.Metadata != nil {
		t.Errorf("file round trip: %d tensors, metadata %v", len(st2.Tensors), st2.Metadata)
	}
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) != 1 {
		t.Errorf("temporary files left behind: %v", ents)
	}
}

func TestHalfConversion(t *testing.T) {
	cases := []struct {
		h    uint16
		want float32
	}{
		{0x3c00, 1}, {0xc000, -2}, {0x7bff, 65504}, {0x0001, 5.9604645e-8},
		{0x0400, 6.1035156e-5}, {0x3555, 0.33325195}, {0x8000, float32(math.Copysign(0, -1))},
		{0x7c00, float32(math.Inf(1))}, {0xfc00, float32(math.Inf(-1))},
	}
	for _, c := range cases {
		if got := vec.HalfToFloat32(c.h); got != c.want || math.Signbit(float64(got)) != math.Signbit(float64(c.want)) {
			t.Errorf("half %#04x = %g, want %g", c.h, got, c.want)
		}
	}
	if !math.IsNaN(float64(vec.HalfToFloat32(0x7e00))) {
		t.Error("half NaN")
	}
	// F16 and BF16 tensors read through a file.
	data := []byte{0x00, 0x3c, 0x00, 0xc0, 0x80, 0x3f, 0x40, 0xc0} // F16 1, -2; BF16 1, -3
	b := rawST(`{"h":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},"bf":{"dtype":"BF16","shape":[2],"data_offsets":[4,8]}}`, data)
	st, err := ParseSafetensors(b)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := st.Get("h").Float32s()
	bf, _ := st.Get("bf").Float32s()
	if h[0] != 1 || h[1] != -2 || bf[0] != 1 || bf[1] != -3 {
		t.Errorf("F16 %v BF16 %v", h, bf)
	}
}

func TestSafetensorsRejectsCorrupt(t *testing.T) {
	good, err := MarshalSafetensors(sampleTensors(), map[string]string{"format": "pt"})
	if err != nil {
		t.Fatal(err)
	}
	d8 := make([]byte, 8)
	cases := []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "truncated"},
		{"short", []byte{1, 2, 3}, "truncated"},
		{"huge header", append([]byte{0, 0, 0, 0, 0, 0, 0, 1}, good[8:]...), "exceeds the limit"},
		{"header past end", rawST(`{}`, nil)[:9], "truncated"},
		{"not json", rawST(`[1,2]`, nil), "does not start with"},
		{"bad json", rawST(`{"a":{"dtype":"F32",`, nil), "invalid JSON"},
		{"trailing garbage", rawST(`{} xx`, nil), "trailing garbage"},
		{"duplicate", rawST(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, d8), "duplicate entry \"a\""},
		{"unknown dtype", rawST(`{"a":{"dtype":"F128","shape":[1],"data_offsets":[0,8]}}`, d8), "unknown dtype"},
		{"unknown field", rawST(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}}`, d8), "unknown field"},
		{"missing shape", rawST(`{"a":{"dtype":"F32","data_offsets":[0,8]}}`, d8), "missing shape"},
		{"negative dim", rawST(`{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}`, d8), "negative dimension"},
		{"offsets count", rawST(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8,9]}}`, d8), "2 entries"},
		{"offsets outside", rawST(`{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`, d8), "outside the data section"},
		{"size mismatch", rawST(`{"a":{"dtype":"F64","shape":[2],"data_offsets":[0,8]}}`, d8), "needs 16"},
		{"overlap", rawST(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, d8), "overlaps"},
		{"hole", rawST(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, d8), "hole"},
		{"trailing data", rawST(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, d8), "trailing data"},
		{"huge shape", rawST(`{"a":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}}`, d8), "too large"},
		{"float dim", rawST(`{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}`, d8[:4]), "tensor a"},
		{"bad metadata", rawST(`{"__metadata__":{"a":1}}`, nil), "__metadata__"},
		{"truncated file", good[:len(good)-3], "truncated file?"},
	}
	for _, c := range cases {
		_, err := ParseSafetensors(c.b)
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q does not mention %q", c.name, err, c.want)
		}
	}
	// Errors from a file name the file.
	path := filepath.Join(t.TempDir(), "bad.safetensors")
	os.WriteFile(path, good[:len(good)/2], 0o644)
	if _, err := ReadSafetensors(path); err == nil || !strings.Contains(err.Error(), "bad.safetensors") {
		t.Errorf("file error does not name the file: %v", err)
	}
	// Every truncation of a good file is an error, never a panic.
	for n := 0; n < len(good); n++ {
		if _, err := ParseSafetensors(good[:n]); err == nil {
			t.Fatalf("truncated to %d bytes: no error", n)
		}
	}
}

func TestEncodeRejectsBadTensors(t *testing.T) {
	bad := [][]Tensor{
		{{Name: "a", DType: "F32", Shape: []int{2}, Data: make([]byte, 4)}},
		{{Name: "a", DType: "X", Shape: []int{1}, Data: make([]byte, 4)}},
		{F32Tensor("a", []int{1}, []float32{1}), F32Tensor("a", []int{1}, []float32{1})},
		{F32Tensor("__metadata__", []int{1}, []float32{1})},
		{{Name: "a", DType: "F32", Shape: []int{-1}}},
	}
	for i, ts := range bad {
		if _, err := MarshalSafetensors(ts, nil); err == nil {
			t.Errorf("case %d: no error", i)
		}
	}
}

func FuzzReadSafetensors(f *testing.F) {
	good, _ := MarshalSafetensors(sampleTensors(), map[string]string{"format": "pt"})
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add(rawST(`{"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}`, make([]byte, 4)))
	f.Add(rawST(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, make([]byte, 8)))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := ParseSafetensors(b)
		if err != nil {
			return
		}
		// A file that parses re-encodes to one that parses to the same
		// tensors, and every float tensor converts.
		for i := range st.Tensors {
			tt := &st.Tensors[i]
			if tt.IsFloat() {
				if _, err := tt.Float64s(); err != nil {
					t.Fatal(err)
				}
			}
		}
		b2, err := MarshalSafetensors(st.Tensors, st.Metadata)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		st2, err := ParseSafetensors(b2)
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if len(st2.Tensors) != len(st.Tensors) {
			t.Fatalf("re-parse: %d tensors, want %d", len(st2.Tensors), len(st.Tensors))
		}
		for i := range st.Tensors {
			a, c := &st.Tensors[i], &st2.Tensors[i]
			if a.Name != c.Name || a.DType != c.DType || !bytes.Equal(a.Data, c.Data) {
				t.Fatalf("tensor %d differs after re-encoding", i)
			}
		}
	})
}
