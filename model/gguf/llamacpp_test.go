package gguf

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"smtrain/data"
	"smtrain/decode"
	"smtrain/model"
	"smtrain/train"
)

// NodeLlamaCpp returns the folder of the node-llama-cpp package (pinned
// 3.21.1, installed by scripts/deps.sh) and the node binary, or a reason
// why they are not there. SMTRAIN_NODE_LLAMA_CPP may name the package
// folder or a folder holding node_modules/node-llama-cpp; otherwise the
// global npm root is searched.
func nodeLlamaCpp() (pkg, node, why string) {
	node, err := exec.LookPath("node")
	if err != nil {
		return "", "", "node not on PATH (node-llama-cpp@3.21.1 needs Node.js; see scripts/deps.sh)"
	}
	var cands []string
	if d := os.Getenv("SMTRAIN_NODE_LLAMA_CPP"); d != "" {
		cands = append(cands, d, filepath.Join(d, "node_modules", "node-llama-cpp"))
	}
	if out, err := exec.Command("npm", "root", "-g").Output(); err == nil {
		cands = append(cands, filepath.Join(strings.TrimSpace(string(out)), "node-llama-cpp"))
	}
	for _, c := range cands {
		if _, err := os.Stat(filepath.Join(c, "dist", "index.js")); err == nil {
			return c, node, ""
		}
	}
	return "", "", "node-llama-cpp not installed (scripts/deps.sh installs node-llama-cpp@3.21.1; or set SMTRAIN_NODE_LLAMA_CPP)"
}

// llamaRequest is llama_eval.mjs's input; llamaResult its output.
type llamaRequest struct {
	Model   string    `json:"model"`
	Threads int       `json:"threads"`
	Context int       `json:"context"`
	Ban     []int32   `json:"ban"`
	Prompts [][]int32 `json:"prompts"`
	New     int       `json:"new"`
	Probs   bool      `json:"probs"`
	Texts   []string  `json:"texts"`
}

type llamaResult struct {
	Prompts []struct {
		Tokens []int32              `json:"tokens"`
		Probs  []map[string]float64 `json:"probs"`
	} `json:"prompts"`
	Texts []struct {
		IDs  []int32 `json:"ids"`
		Text string  `json:"text"`
	} `json:"texts"`
}

// runLlama runs testdata/llama_eval.mjs on req.
func runLlama(t *testing.T, pkg, node string, req llamaRequest) llamaResult {
	t.Helper()
	b, _ := json.Marshal(req)
	rp := filepath.Join(t.TempDir(), "req.json")
	if err := os.WriteFile(rp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join("testdata", "llama_eval.mjs"), pkg, rp)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("llama_eval.mjs: %v\n%s", err, stderr.String())
	}
	var res llamaResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("llama_eval.mjs output: %v\n%s", err, out)
	}
	return res
}

// qa is the fixture's training data: short question/answer chats the tiny
// model memorises, so that its greedy choices have clear margins.
var qa = [][2]string{
	{"What colour is the sky?", "The sky is blue."},
	{"What colour is grass?", "Grass is green."},
	{"What do cats say?", "Cats say meow."},
	{"What do dogs say?", "Dogs say woof."},
	{"Count to five.", "one two three four five"},
	{"Name a fruit.", "An apple."},
	{"Spell cat.", "c a t"},
	{"What is two plus two?", "Two plus two is four."},
}

var (
	fixtureOnce sync.Once
	fixtureP    *model.Params
	fixtureTok  *data.Tokenizer
	fixtureErr  error
	fixtureTime time.Duration
)

// trainedFixture trains (once per test binary) a tiny MLE policy on qa:
// L2 D64 H2, 300 steps of batch 8, with a BPE tokenizer trained on the
// chats (so the exported vocabulary has merges). Deterministic (seed 1).
func trainedFixture(t *testing.T) (*model.Params, *data.Tokenizer) {
	t.Helper()
	fixtureOnce.Do(func() {
		start := time.Now()
		defer func() { fixtureTime = time.Since(start) }()
		dir, err := os.MkdirTemp("", "gguf-fixture-")
		if err != nil {
			fixtureErr = err
			return
		}
		defer os.RemoveAll(dir)
		cfg := train.DefaultConfig()
		cfg.Out, cfg.Objective, cfg.Steps, cfg.Seed = dir, "mle", 300, 1
		cfg.NLayer, cfg.NHead, cfg.NEmbd, cfg.NPositions = 2, 2, 64, 64
		cfg.VocabSize, cfg.BatchSize, cfg.LR, cfg.WarmupSteps = 320, 8, 3e-3, 20
		cfg.EvalEvery, cfg.EvalSamples, cfg.CkptEvery, cfg.LogEvery, cfg.Progress = 0, 0, 0, 1000, "off"
		var in train.Inputs
		for _, c := range qa {
			in.Train = append(in.Train, data.Episode{Messages: []data.Message{{Role: data.RoleUser, Content: c[0]}, {Role: data.RoleAssistant, Content: c[1]}}, Reward: math.NaN()})
		}
		in.Val = in.Train
		tr, err := train.New(cfg, in, false, nil)
		if err != nil {
			fixtureErr = err
			return
		}
		defer tr.Close()
		if fixtureErr = tr.Run(context.Background()); fixtureErr != nil {
			return
		}
		fixtureP, fixtureTok = tr.Params(), tr.Tokenizer()
	})
	if fixtureErr != nil {
		t.Fatal(fixtureErr)
	}
	return fixtureP, fixtureTok
}

// softmaxNoBkspc is the next-token distribution with <bkspc> banned.
func softmaxNoBkspc(logits []float32, bkspc int32) []float64 {
	m := math.Inf(-1)
	for i, x := range logits {
		if int32(i) != bkspc {
			m = math.Max(m, float64(x))
		}
	}
	p := make([]float64, len(logits))
	var s float64
	for i, x := range logits {
		if int32(i) != bkspc {
			p[i] = math.Exp(float64(x) - m)
			s += p[i]
		}
	}
	for i := range p {
		p[i] /= s
	}
	return p
}

// Tolerances of the llama.cpp round trip on the fixture: the largest
// absolute difference of any next-token probability along the greedy
// continuations (ggml's f16 GELU table and accumulation order differ from
// smtrain's kernels even at f32; f16 weights add their rounding).
const (
	probTolF32 = 2e-3
	probTolF16 = 5e-3
)

// TestLlamaCppRoundTrip exports the trained fixture as f32 and f16 GGUF,
// runs it in llama.cpp (node-llama-cpp 3.21.1) and checks that llama.cpp's
// greedy continuation of each prompt (with <bkspc> banned) equals smtrain's
// greedy decode with <bkspc> banned, that every next-token probability
// along it agrees within the tolerance, and that llama.cpp tokenizes and
// detokenizes text like smtrain's tokenizer.
func TestLlamaCppRoundTrip(t *testing.T) {
	pkg, node, why := nodeLlamaCpp()
	if why != "" {
		t.Skip("llama.cpp round trip skipped: " + why)
	}
	p, tok := trainedFixture(t)
	t.Logf("fixture: %d steps of training in %.1fs", 300, fixtureTime.Seconds())
	const maxNew = 24
	// smtrain: greedy, <bkspc> banned, stop at <eos>/<|end|> (llama.cpp's
	// end-of-generation tokens), no retry block (it only acts after a
	// backspace).
	o := decode.DefaultOptions()
	o.Greedy, o.AllowBkspc, o.BkspcID, o.MaxNewTokens, o.BatchSize, o.Workers = true, false, tok.BkspcID(), maxNew, 1, 1
	o.StopTokens = []int32{tok.EOSID(), tok.EndID()}
	var prompts [][]int32
	for _, q := range append(qa[:5:5], [2]string{"What colour is a cat?", ""}) {
		pr, err := decode.ChatPrompt(tok, []data.Message{{Role: data.RoleUser, Content: q[0]}}, p.Cfg.NPositions-maxNew)
		if err != nil {
			t.Fatal(err)
		}
		prompts = append(prompts, pr)
	}
	want, _, err := decode.Generate(context.Background(), decode.ModelFactory(p), prompts, o)
	if err != nil {
		t.Fatal(err)
	}
	// smtrain's next-token distributions along its own greedy paths.
	dec, err := model.NewDecoder(p, 1, p.Cfg.NPositions)
	if err != nil {
		t.Fatal(err)
	}
	// (No space before punctuation: llama.cpp's gpt-2 detokenizer drops it,
	// clean_up_tokenization_spaces, while the token ids are the same.)
	texts := []string{"What do cats say?", "<|user|>Spell cat.<|end|><|assistant|>c a t<bkspc>", " héllo\n\twörld  12345 x!!\n\n"}
	for _, typ := range []TensorType{F32, F16} {
		path := filepath.Join(t.TempDir(), "fixture-"+typ.String()+".gguf")
		if err := Write(path, p, tok, Options{Type: typ}); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		res := runLlama(t, pkg, node, llamaRequest{Model: path, Threads: 1, Context: p.Cfg.NPositions, Ban: []int32{tok.BkspcID()},
			Prompts: prompts, New: maxNew, Probs: true, Texts: texts})
		tol := map[TensorType]float64{F32: probTolF32, F16: probTolF16}[typ]
		maxDiff, steps, minMargin := 0.0, 0, math.Inf(1)
		for i, w := range want {
			got := res.Prompts[i].Tokens
			wt := append([]int32(nil), w.Tokens...)
			if w.Stop == decode.StopToken {
				wt = append(wt, w.StopTokenID)
			}
			// llama.cpp does not yield the end-of-generation token.
			if len(wt) > len(got) && len(wt) == len(got)+1 && (wt[len(got)] == tok.EOSID() || wt[len(got)] == tok.EndID()) {
				wt = wt[:len(got)]
			}
			if fmt.Sprint(got) != fmt.Sprint(wt) {
				t.Errorf("%v prompt %d: llama.cpp greedy %v (%q), smtrain %v (%q)", typ, i, got, tok.Decode(got), wt, tok.Decode(wt))
				continue
			}
			dec.Reset(0)
			if err := dec.Prefill(0, prompts[i]); err != nil {
				t.Fatal(err)
			}
			for s, dist := range res.Prompts[i].Probs {
				ours := softmaxNoBkspc(dec.Logits(0), tok.BkspcID())
				for id, q := range ours {
					d := math.Abs(q - dist[strconv.Itoa(id)])
					maxDiff = math.Max(maxDiff, d)
				}
				// margin of the greedy choice over the runner-up
				best, second := 0.0, 0.0
				for _, q := range ours {
					if q > best {
						best, second = q, best
					} else if q > second {
						second = q
					}
				}
				minMargin = math.Min(minMargin, best-second)
				steps++
				if s < len(got) {
					if err := dec.Push([]int{0}, []int32{got[s]}); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		t.Logf("%v: %d prompts, %d steps compared, max |p_llama.cpp - p_smtrain| = %.2e (tolerance %.0e), smallest greedy margin %.3f, llama.cpp %.1fs",
			typ, len(prompts), steps, maxDiff, tol, minMargin, time.Since(start).Seconds())
		if steps == 0 || maxDiff > tol {
			t.Errorf("%v: max probability difference %.3e over %d steps, tolerance %.0e", typ, maxDiff, steps, tol)
		}
		for i, s := range texts {
			ids, err := tok.Encode(s)
			if err != nil {
				t.Fatal(err)
			}
			if got := res.Texts[i]; fmt.Sprint(got.IDs) != fmt.Sprint(ids) || got.Text != s {
				t.Errorf("text %q: llama.cpp tokens %v -> %q, smtrain %v", s, got.IDs, got.Text, ids)
			}
		}
	}
	for i, w := range want {
		t.Logf("prompt %d: %q -> %q (%s)", i, tok.Decode(prompts[i]), tok.Decode(w.Tokens), w.Stop)
	}
}
