package compare

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"

	"smtrain/train"
)

// Stat is a mean and its standard error across seeds.
type Stat struct {
	Mean float64 `json:"mean"`
	// SE is the standard error of the mean, s/√n with the sample standard
	// deviation s (n−1 in the denominator); nil when n < 2.
	SE *float64 `json:"se,omitempty"`
	N  int      `json:"n"`
}

// MeanSE returns the mean of xs and its standard error s/√n, where s is the
// sample standard deviation (n−1 denominator). With fewer than two values
// the standard error is undefined and ok is false.
func MeanSE(xs []float64) (mean, se float64, ok bool) {
	n := len(xs)
	if n == 0 {
		return math.NaN(), math.NaN(), false
	}
	for _, x := range xs {
		mean += x
	}
	mean /= float64(n)
	if n < 2 {
		return mean, math.NaN(), false
	}
	var ss float64
	for _, x := range xs {
		d := x - mean
		ss += d * d
	}
	return mean, math.Sqrt(ss/float64(n-1)) / math.Sqrt(float64(n)), true
}

// Summary is the across-seed summary of one objective at one noise level.
type Summary struct {
	Objective string          `json:"objective"`
	Noise     float64         `json:"noise"`
	Metrics   map[string]Stat `json:"metrics"`
}

// Summarise groups rows by objective and noise level and computes the
// mean ± standard error of every metric across seeds, in the order of
// objectives and noise.
func Summarise(rows []Row, ms []Metric, objectives []string, noise []float64) []Summary {
	var out []Summary
	for _, eta := range noise {
		for _, o := range objectives {
			s := Summary{Objective: o, Noise: eta, Metrics: map[string]Stat{}}
			keys := map[string][]float64{}
			for _, r := range rows {
				if r.Objective != o || r.Noise != eta {
					continue
				}
				for k, v := range r.Metrics {
					if !math.IsNaN(v) && !math.IsInf(v, 0) {
						keys[k] = append(keys[k], v)
					}
				}
			}
			for k, xs := range keys {
				m, se, ok := MeanSE(xs)
				st := Stat{Mean: m, N: len(xs)}
				if ok {
					st.SE = &se
				}
				s.Metrics[k] = st
			}
			out = append(out, s)
		}
	}
	return out
}

// Curves are the loss curves of one run read from its metrics.jsonl.
type Curves struct {
	TrainStep []float64
	TrainLoss []float64
	ValStep   []float64
	ValLoss   []float64 // the objective's validation loss
	ValNLL    []float64 // token-mean NLL on clean validation data
	ElapsedS  float64
}

// ReadCurves reads train and val events from a metrics.jsonl file.
func ReadCurves(path string) (*Curves, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	c := &Curves{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	line := 0
	for sc.Scan() {
		line++
		var ev train.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		c.ElapsedS = max(c.ElapsedS, ev.ElapsedS)
		switch ev.Split {
		case "train":
			if ev.Loss != nil {
				c.TrainStep = append(c.TrainStep, float64(ev.Step))
				c.TrainLoss = append(c.TrainLoss, *ev.Loss)
			}
		case "val":
			if ev.Loss != nil {
				c.ValStep = append(c.ValStep, float64(ev.Step))
				c.ValLoss = append(c.ValLoss, *ev.Loss)
				c.ValNLL = append(c.ValNLL, ev.Components["nll"])
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// smooth is a trailing moving average over w points.
func smooth(xs []float64, w int) []float64 {
	out := make([]float64, len(xs))
	var sum float64
	for i, x := range xs {
		sum += x
		if i >= w {
			sum -= xs[i-w]
		}
		out[i] = sum / float64(min(i+1, w))
	}
	return out
}

// Paired is a paired difference a − b of one metric across the seeds both
// groups have.
type Paired struct {
	A      string  `json:"a"`
	B      string  `json:"b"`
	Noise  float64 `json:"noise"`
	Metric string  `json:"metric"`
	Stat   Stat    `json:"diff"`
	Higher int     `json:"seeds_a_higher"`
}

// PairedDiff is the per-seed difference of metric between the rows of
// objective labels a and b at noise level eta (same seed: same
// initialisation, data order and decoding streams), its mean and standard
// error over the seeds both have a value for, and how many seeds favour a.
func PairedDiff(rows []Row, metric, a, b string, eta float64) Paired {
	vals := func(o string) map[int64]float64 {
		m := map[int64]float64{}
		for _, r := range rows {
			if r.Objective == o && r.Noise == eta {
				if v, ok := r.Metrics[metric]; ok && !math.IsNaN(v) && !math.IsInf(v, 0) {
					m[r.Seed] = v
				}
			}
		}
		return m
	}
	va, vb := vals(a), vals(b)
	p := Paired{A: a, B: b, Noise: eta, Metric: metric}
	var ds []float64
	for _, r := range rows { // seed order of the rows
		if r.Objective != a || r.Noise != eta {
			continue
		}
		x, okA := va[r.Seed]
		y, okB := vb[r.Seed]
		if !okA || !okB {
			continue
		}
		ds = append(ds, x-y)
		if x > y {
			p.Higher++
		}
	}
	m, se, ok := MeanSE(ds)
	p.Stat = Stat{Mean: m, N: len(ds)}
	if ok {
		p.Stat.SE = &se
	}
	return p
}

// PairedDiffs are the paired differences the report shows for metric: at
// each noise level, every objective label against the first one, and each
// "chi2mix…" label against the "bc…" label with the same noise kind.
func PairedDiffs(rows []Row, metric string, objectives []string, noise []float64) []Paired {
	var out []Paired
	if len(objectives) < 2 {
		return nil
	}
	for _, eta := range noise {
		for _, o := range objectives[1:] {
			out = append(out, PairedDiff(rows, metric, o, objectives[0], eta))
		}
		for _, o := range objectives {
			name, kind, env, err := SplitLabel(o)
			if err != nil {
				continue
			}
			if base := strings.TrimSuffix(o, EnvSuffix); env && base != objectives[0] && slices.Contains(objectives, base) {
				out = append(out, PairedDiff(rows, metric, o, base, eta))
			}
			if name == "bc" {
				continue
			}
			bc := "bc"
			if kind != "" {
				bc += ":" + kind
			}
			if bc != objectives[0] && slices.Contains(objectives, bc) && name != "mle" {
				out = append(out, PairedDiff(rows, metric, o, bc, eta))
			}
		}
	}
	return out
}
