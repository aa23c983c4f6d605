package train

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"os"
)

// Event is one line of OUT/metrics.jsonl.
type Event struct {
	Step       int                `json:"step"`
	Split      string             `json:"split"` // train, val, sample, skip, replay, ckpt
	Loss       *float64           `json:"loss,omitempty"`
	Components map[string]float64 `json:"components,omitempty"`
	LR         float64            `json:"lr,omitempty"`
	GradNorm   float64            `json:"grad_norm,omitempty"`
	TokensPerS float64            `json:"tokens_per_s,omitempty"`
	Tokens     int                `json:"tokens,omitempty"`
	ElapsedS   float64            `json:"elapsed_s"`
	Extra      map[string]any     `json:"extra,omitempty"`
}

// metricsLog appends events to metrics.jsonl and knows its size, so that a
// checkpoint can record the offset and a resume can cut the file back to it.
type metricsLog struct {
	f    *os.File
	w    *bufio.Writer
	size int64
}

// openMetrics opens path for appending, first truncating it to keep bytes
// (keep < 0 keeps everything; 0 starts a fresh file).
func openMetrics(path string, keep int64) (*metricsLog, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	size := st.Size()
	if keep >= 0 && keep <= size {
		if err := f.Truncate(keep); err != nil {
			f.Close()
			return nil, err
		}
		size = keep
	}
	if _, err := f.Seek(size, 0); err != nil {
		f.Close()
		return nil, err
	}
	return &metricsLog{f: f, w: bufio.NewWriter(f), size: size}, nil
}

func finiteOrNil(x float64) *float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return nil
	}
	return &x
}

func (m *metricsLog) write(e Event) error {
	for k, v := range e.Components {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			delete(e.Components, k)
			if e.Extra == nil {
				e.Extra = map[string]any{}
			}
			e.Extra["nonfinite_"+k] = fmt.Sprint(v)
		}
	}
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	n, err := m.w.Write(b)
	m.size += int64(n)
	return err
}

// sync flushes buffered events to the file and the disk; it returns the
// file size, which a checkpoint records.
func (m *metricsLog) sync() (int64, error) {
	if err := m.w.Flush(); err != nil {
		return 0, err
	}
	if err := m.f.Sync(); err != nil {
		return 0, err
	}
	return m.size, nil
}

func (m *metricsLog) close() error {
	if m == nil || m.f == nil {
		return nil
	}
	err := m.w.Flush()
	if cerr := m.f.Close(); err == nil {
		err = cerr
	}
	m.f = nil
	return err
}
