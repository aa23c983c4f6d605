package compare

import (
	"bytes"
	"fmt"
	"image/color"
	"path/filepath"
	"sort"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"smtrain/internal/atomicfile"
	"smtrain/train"
)

// WritePlots draws the PNG plots of res into dir and returns their file
// names (relative to dir): one loss-curve plot per objective (training
// loss, smoothed, and validation loss, averaged over seeds, one colour per
// noise level), the validation NLL of every objective, and every plotted
// metric against the noise level with standard-error bars.
func WritePlots(dir string, res *Results) ([]string, error) {
	var names []string
	curves := map[string]*Curves{}
	for _, r := range res.Rows {
		if _, ok := curves[r.Run]; ok {
			continue
		}
		c, err := ReadCurves(filepath.Join(dir, r.Run, train.MetricsFile))
		if err != nil {
			return nil, err
		}
		curves[r.Run] = c
	}
	for _, o := range res.Objectives {
		p := plot.New()
		p.Title.Text = fmt.Sprintf("%s: training (solid) and validation (dashed) loss", o)
		p.X.Label.Text = "step"
		p.Y.Label.Text = "loss (" + o + " objective)"
		drawn := map[string]bool{}
		for i, eta := range res.Noise {
			cs, key := curvesOf(res, curves, o, eta)
			if len(cs) == 0 || drawn[key] {
				continue // a run shared by every noise level is drawn once
			}
			drawn[key] = true
			label := fmt.Sprintf("η=%g", eta)
			if sharedObjective(res.Rows, o) {
				label = "clean data"
			}
			col := plotutil.Color(i)
			x, y := meanCurve(cs, func(c *Curves) ([]float64, []float64) { return c.TrainStep, smooth(c.TrainLoss, 50) })
			if err := addLine(p, x, y, col, nil, label+" train"); err != nil {
				return nil, err
			}
			x, y = meanCurve(cs, func(c *Curves) ([]float64, []float64) { return c.ValStep, c.ValLoss })
			if err := addLine(p, x, y, col, []vg.Length{vg.Points(4), vg.Points(3)}, label+" val"); err != nil {
				return nil, err
			}
		}
		p.Legend.Top = true
		name := "loss_" + strings.ReplaceAll(o, ":", "-") + ".png"
		if err := savePNG(p, filepath.Join(dir, name)); err != nil {
			return nil, err
		}
		names = append(names, name)
	}

	// Validation NLL of every objective (comparable across objectives).
	p := plot.New()
	p.Title.Text = "validation NLL (clean answers), mean over seeds"
	p.X.Label.Text = "step"
	p.Y.Label.Text = "NLL per token"
	k := 0
	drawn := map[string]bool{}
	for _, o := range res.Objectives {
		for _, eta := range res.Noise {
			cs, key := curvesOf(res, curves, o, eta)
			if len(cs) == 0 || drawn[key] {
				continue
			}
			drawn[key] = true
			x, y := meanCurve(cs, func(c *Curves) ([]float64, []float64) { return c.ValStep, c.ValNLL })
			label := fmt.Sprintf("%s η=%g", o, eta)
			if sharedObjective(res.Rows, o) {
				label = o
			}
			if err := addLine(p, x, y, plotutil.Color(k), plotutil.Dashes(k/7), label); err != nil {
				return nil, err
			}
			k++
		}
	}
	p.Legend.Top = true
	if err := savePNG(p, filepath.Join(dir, "val_nll.png")); err != nil {
		return nil, err
	}
	names = append(names, "val_nll.png")

	// Metrics against the noise level.
	for _, m := range res.Metrics {
		if !m.Plot {
			continue
		}
		p := plot.New()
		p.Title.Text = m.Label + " vs noise η (mean ± s.e. over seeds)"
		p.X.Label.Text = "noise rate η"
		p.Y.Label.Text = m.Label
		any := false
		for i, o := range res.Objectives {
			var xys plotter.XYs
			var errs plotter.YErrors
			for _, s := range res.Summary {
				if s.Objective != o {
					continue
				}
				st, ok := s.Metrics[m.Key]
				if !ok {
					continue
				}
				// offset objectives slightly so error bars do not overlap
				dx := (float64(i) - float64(len(res.Objectives)-1)/2) * 0.002
				xys = append(xys, plotter.XY{X: s.Noise + dx, Y: st.Mean})
				e := 0.0
				if st.SE != nil {
					e = *st.SE
				}
				errs = append(errs, struct{ Low, High float64 }{e, e})
			}
			if len(xys) == 0 {
				continue
			}
			any = true
			l, pts, err := plotter.NewLinePoints(xys)
			if err != nil {
				return nil, err
			}
			l.Color, pts.Color = plotutil.Color(i), plotutil.Color(i)
			pts.Shape = plotutil.Shape(i)
			eb, err := plotter.NewYErrorBars(errPoints{xys, errs})
			if err != nil {
				return nil, err
			}
			eb.Color = plotutil.Color(i)
			p.Add(l, pts, eb)
			p.Legend.Add(o, l, pts)
		}
		if !any {
			continue
		}
		p.Legend.Top = true
		p.Legend.Left = true
		name := m.Key + "_vs_noise.png"
		if err := savePNG(p, filepath.Join(dir, name)); err != nil {
			return nil, err
		}
		names = append(names, name)
	}
	return names, nil
}

type errPoints struct {
	plotter.XYs
	plotter.YErrors
}

func sharedObjective(rows []Row, o string) bool {
	for _, r := range rows {
		if r.Objective == o {
			return r.Shared
		}
	}
	return false
}

// meanCurve averages curves point by point over the steps present in every
// curve.
func meanCurve(cs []*Curves, get func(*Curves) ([]float64, []float64)) ([]float64, []float64) {
	count := map[float64]int{}
	sum := map[float64]float64{}
	for _, c := range cs {
		xs, ys := get(c)
		for i, x := range xs {
			count[x]++
			sum[x] += ys[i]
		}
	}
	var xs []float64
	for x, n := range count {
		if n == len(cs) {
			xs = append(xs, x)
		}
	}
	sort.Float64s(xs)
	ys := make([]float64, len(xs))
	for i, x := range xs {
		ys[i] = sum[x] / float64(len(cs))
	}
	// thin long curves to at most ~400 points
	if n := len(xs); n > 400 {
		step := n / 400
		var tx, ty []float64
		for i := 0; i < n; i += step {
			tx, ty = append(tx, xs[i]), append(ty, ys[i])
		}
		if tx[len(tx)-1] != xs[n-1] {
			tx, ty = append(tx, xs[n-1]), append(ty, ys[n-1])
		}
		xs, ys = tx, ty
	}
	return xs, ys
}

func addLine(p *plot.Plot, xs, ys []float64, col color.Color, dashes []vg.Length, label string) error {
	if len(xs) == 0 {
		return nil
	}
	xy := make(plotter.XYs, len(xs))
	for i := range xs {
		xy[i] = plotter.XY{X: xs[i], Y: ys[i]}
	}
	l, err := plotter.NewLine(xy)
	if err != nil {
		return err
	}
	l.Color = col
	l.Dashes = dashes
	p.Add(l)
	p.Legend.Add(label, l)
	return nil
}

// savePNG renders p to a 6×4 inch PNG and writes it atomically.
func savePNG(p *plot.Plot, path string) error {
	w, err := p.WriterTo(6*vg.Inch, 4*vg.Inch, "png")
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, buf.Bytes())
}

// curvesOf returns the curves of the runs of objective o at noise eta (one
// per seed) and a key naming those runs (runs shared across noise levels
// give the same key).
func curvesOf(res *Results, curves map[string]*Curves, o string, eta float64) ([]*Curves, string) {
	var cs []*Curves
	key := ""
	for _, r := range res.Rows {
		if r.Objective == o && r.Noise == eta {
			cs = append(cs, curves[r.Run])
			key += r.Run + ";"
		}
	}
	return cs, key
}
