package train

import (
	"errors"

	"smtrain/model"
)

// NewAdamWFor32 makes a float32 optimizer for the parameters of a float32
// model, with the DecayMask of their shapes.
func NewAdamWFor32(cfg AdamWConfig, p *model.Params) (*AdamW[float32], error) {
	if p.DType != model.F32 {
		return nil, errors.New("adamw: NewAdamWFor32 needs float32 parameters")
	}
	names, sizes, shapes := paramInfo(p)
	return NewAdamW[float32](cfg, names, sizes, DecayMask(shapes))
}

// NewAdamWFor64 makes a float64 optimizer for a float64 model.
func NewAdamWFor64(cfg AdamWConfig, p *model.Params) (*AdamW[float64], error) {
	if p.DType != model.F64 {
		return nil, errors.New("adamw: NewAdamWFor64 needs float64 parameters")
	}
	names, sizes, shapes := paramInfo(p)
	return NewAdamW[float64](cfg, names, sizes, DecayMask(shapes))
}

func paramInfo(p *model.Params) (names []string, sizes []int, shapes [][]int) {
	for _, q := range p.List {
		names = append(names, q.Name)
		n := 1
		for _, d := range q.Shape {
			n *= d
		}
		sizes = append(sizes, n)
		shapes = append(shapes, q.Shape)
	}
	return
}

// Params32 returns the float32 data slices of p in List order.
func Params32(p *model.Params) [][]float32 {
	out := make([][]float32, len(p.List))
	for i, q := range p.List {
		out[i] = q.F32
	}
	return out
}

// Params64 returns the float64 data slices of p in List order.
func Params64(p *model.Params) [][]float64 {
	out := make([][]float64, len(p.List))
	for i, q := range p.List {
		out[i] = q.F64
	}
	return out
}
