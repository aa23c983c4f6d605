package data

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
)

// ArithConfig configures the arithmetic task of the SequenceMatch
// experiments: questions "a+b=" / "a-b=" on n-digit numbers in base Base,
// answered by the assistant.
type ArithConfig struct {
	// Digits is the number of digits n of each operand (default 3).
	Digits int
	// Base is the number base, 2..36 (default 10); digits above 9 are a-z.
	Base int
	// Op is "add" (default), "sub" or "mixed" (each question picks + or -
	// with probability 1/2).
	Op string
	// Reversed writes answers least significant digit first.
	Reversed bool
	// NTrain and NTest are the numbers of distinct questions (defaults
	// 5000 and 1000). Train and test questions never overlap.
	NTrain, NTest int
	// Seed makes the split deterministic.
	Seed uint64
}

// ArithProblem is one question with its answer.
type ArithProblem struct {
	A, B     int64
	Op       byte // '+' or '-'
	Question string
	Answer   string
}

func (c *ArithConfig) defaults() error {
	if c.Digits == 0 {
		c.Digits = 3
	}
	if c.Base == 0 {
		c.Base = 10
	}
	if c.Op == "" {
		c.Op = "add"
	}
	if c.NTrain == 0 {
		c.NTrain = 5000
	}
	if c.NTest == 0 {
		c.NTest = 1000
	}
	switch {
	case c.Base < 2 || c.Base > 36:
		return fmt.Errorf("arith: base %d not in 2..36", c.Base)
	case c.Digits < 1 || float64(c.Digits)*math.Log2(float64(c.Base)) > 60:
		return fmt.Errorf("arith: %d digits in base %d is out of range", c.Digits, c.Base)
	case c.Op != "add" && c.Op != "sub" && c.Op != "mixed":
		return fmt.Errorf("arith: op %q (want add, sub or mixed)", c.Op)
	case c.NTrain < 0 || c.NTest < 0:
		return fmt.Errorf("arith: negative split size")
	}
	return nil
}

// FormatInt writes v (>= 0) in base (2..36) with digits 0-9a-z.
func FormatInt(v int64, base int) string {
	const digits = "0123456789abcdefghijklmnopqrstuvwxyz"
	if v == 0 {
		return "0"
	}
	var b []byte
	for v > 0 {
		b = append(b, digits[v%int64(base)])
		v /= int64(base)
	}
	for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
	return string(b)
}

func reverseString(s string) string {
	b := []byte(s)
	for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
	return string(b)
}

// newProblem builds the question and answer. Subtraction orders the
// operands so the result is non-negative.
func (c *ArithConfig) newProblem(a, b int64, op byte) ArithProblem {
	if op == '-' && a < b {
		a, b = b, a
	}
	r := a + b
	if op == '-' {
		r = a - b
	}
	ans := FormatInt(r, c.Base)
	if c.Reversed {
		ans = reverseString(ans)
	}
	return ArithProblem{A: a, B: b, Op: op, Question: FormatInt(a, c.Base) + string(op) + FormatInt(b, c.Base) + "=", Answer: ans}
}

// ArithSplits draws NTrain + NTest distinct questions (operands uniform
// over the numbers with exactly Digits digits; 0..Base-1 for one digit)
// with a generator seeded by Seed: the first NTrain are the training set,
// the rest the test set, so the sets never share a question.
func ArithSplits(cfg ArithConfig) (train, test []ArithProblem, err error) {
	if err := cfg.defaults(); err != nil {
		return nil, nil, err
	}
	lo := int64(math.Pow(float64(cfg.Base), float64(cfg.Digits-1)))
	if cfg.Digits == 1 {
		lo = 0
	}
	hi := int64(math.Pow(float64(cfg.Base), float64(cfg.Digits)))
	span := hi - lo
	// distinct questions: a+b and b+a differ; subtraction orders operands
	var space int64
	switch cfg.Op {
	case "add":
		space = span * span
	case "sub":
		space = span * (span + 1) / 2
	default:
		space = span*span + span*(span+1)/2
	}
	want := int64(cfg.NTrain + cfg.NTest)
	if want > space {
		return nil, nil, fmt.Errorf("arith: %d questions requested but only %d distinct ones exist", want, space)
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0xa417))
	var all []ArithProblem
	if space <= 1<<20 && want > space/4 {
		// small space: enumerate every question and shuffle
		for a := lo; a < hi; a++ {
			for b := lo; b < hi; b++ {
				if cfg.Op != "sub" {
					all = append(all, cfg.newProblem(a, b, '+'))
				}
				if cfg.Op != "add" && a >= b {
					all = append(all, cfg.newProblem(a, b, '-'))
				}
			}
		}
		rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
		all = all[:want]
	} else {
		seen := make(map[string]bool, want)
		for int64(len(all)) < want {
			a := lo + rng.Int64N(span)
			b := lo + rng.Int64N(span)
			op := byte('+')
			switch cfg.Op {
			case "sub":
				op = '-'
			case "mixed":
				if rng.IntN(2) == 1 {
					op = '-'
				}
			}
			p := cfg.newProblem(a, b, op)
			if seen[p.Question] {
				continue
			}
			seen[p.Question] = true
			all = append(all, p)
		}
	}
	return all[:cfg.NTrain], all[cfg.NTrain:], nil
}

// Messages is the problem as a chat: user asks the question, assistant
// answers.
func (p ArithProblem) Messages() []Message {
	return []Message{{Role: RoleUser, Content: p.Question}, {Role: RoleAssistant, Content: p.Answer}}
}

// Episode is the problem as an episode with reward 1.
func (p ArithProblem) Episode() Episode {
	return Episode{Messages: p.Messages(), Reward: 1, Source: "arith:" + p.Question}
}

// Correct is the exact-match checker: the output (after surrounding white
// space is trimmed) must equal the answer.
func (p ArithProblem) Correct(output string) bool {
	return strings.TrimSpace(output) == p.Answer
}

// ArithSeqs applies the chat template to problems.
func ArithSeqs(tok *Tokenizer, ps []ArithProblem) ([]*ActionSeq, error) {
	out := make([]*ActionSeq, len(ps))
	for i, p := range ps {
		s, err := ChatSeq(tok, p.Messages())
		if err != nil {
			return nil, err
		}
		out[i] = s
	}
	return out, nil
}

// ArithTokenizer is the tokenizer for the arithmetic task: bytes only (no
// merges), so every digit and operator is one token (vocabulary 263).
func ArithTokenizer() *Tokenizer { return ByteTokenizer() }
