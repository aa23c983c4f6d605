package train

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progress is the progress bar hook: steps done, throughput and ETA on
// stderr, off when stderr is not a terminal (progress=auto). Console lines
// go through println so they do not tear the bar.
type progress struct {
	bar     *progressbar.ProgressBar
	console io.Writer
}

// ProgressWriter is where the bar is drawn (tests may replace it).
var progressWriter io.Writer = os.Stderr

func newProgress(cfg Config, done int, console io.Writer) *progress {
	p := &progress{console: console}
	on := cfg.Progress == "on" || (cfg.Progress == "auto" && term.IsTerminal(int(os.Stderr.Fd())))
	if !on {
		return p
	}
	p.bar = progressbar.NewOptions(cfg.Steps,
		progressbar.OptionSetWriter(progressWriter),
		progressbar.OptionSetDescription("train"),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("step"),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionFullWidth(),
		progressbar.OptionClearOnFinish(),
	)
	_ = p.bar.Set(done)
	return p
}

func (p *progress) add(info *StepInfo) {
	if p == nil || p.bar == nil {
		return
	}
	p.bar.Describe(fmt.Sprintf("loss %.3f | %s tok/s", info.Loss, humanRate(info.TokensPerS)))
	_ = p.bar.Add(1)
}

func (p *progress) println(s string) {
	if p == nil {
		return
	}
	if p.bar != nil {
		_ = p.bar.Clear()
	}
	fmt.Fprintln(p.console, s)
}

func (p *progress) finish() {
	if p == nil || p.bar == nil {
		return
	}
	_ = p.bar.Finish()
	p.bar = nil
}
