package data

import (
	"fmt"
	"math/rand/v2"
	"slices"
)

// StringTaskConfig configures the string tasks: the assistant copies,
// sorts or reverses a string over Alphabet. A mistake is visible from the
// context (the input string is in the prompt), so a policy can notice it.
type StringTaskConfig struct {
	// Kind is "copy", "sort" or "reverse".
	Kind string
	// MinLen and MaxLen bound the input length (uniform in between).
	MinLen, MaxLen int
	// Alphabet are the symbols (distinct printable ASCII bytes, not '>').
	Alphabet string
	// NTrain and NTest are the numbers of distinct questions; the sets
	// never overlap.
	NTrain, NTest int
	// Seed makes the split deterministic.
	Seed uint64
}

// StringTaskKinds are the valid StringTaskConfig.Kind values.
var StringTaskKinds = []string{"copy", "sort", "reverse"}

func (c *StringTaskConfig) check() error {
	switch {
	case !slices.Contains(StringTaskKinds, c.Kind):
		return fmt.Errorf("string task %q: want copy, sort or reverse", c.Kind)
	case c.MinLen < 1 || c.MaxLen < c.MinLen || c.MaxLen > 64:
		return fmt.Errorf("string task: lengths %d..%d (want 1 <= min <= max <= 64)", c.MinLen, c.MaxLen)
	case len(c.Alphabet) < 2:
		return fmt.Errorf("string task: alphabet %q has fewer than 2 symbols", c.Alphabet)
	case c.NTrain < 0 || c.NTest < 0:
		return fmt.Errorf("string task: negative split size")
	}
	seen := map[byte]bool{}
	for i := 0; i < len(c.Alphabet); i++ {
		b := c.Alphabet[i]
		if b <= ' ' || b >= 0x7f || b == '>' || seen[b] {
			return fmt.Errorf("string task: alphabet %q: symbol %q at %d is repeated, '>' or not printable ASCII", c.Alphabet, b, i)
		}
		seen[b] = true
	}
	// enough distinct questions?
	space := 0.0
	for n := c.MinLen; n <= c.MaxLen; n++ {
		x := 1.0
		for k := 0; k < n; k++ {
			x *= float64(len(c.Alphabet))
		}
		space += x
	}
	if float64(c.NTrain+c.NTest) > space/2 {
		return fmt.Errorf("string task: %d questions requested from only %.0f distinct strings (ask for at most half)", c.NTrain+c.NTest, space)
	}
	return nil
}

// StringTaskAnswer is the answer of the task kind for input x.
func StringTaskAnswer(kind, x string) string {
	b := []byte(x)
	switch kind {
	case "sort":
		slices.Sort(b)
	case "reverse":
		slices.Reverse(b)
	}
	return string(b)
}

// StringTaskSplits draws NTrain + NTest distinct inputs (length uniform in
// MinLen..MaxLen, symbols uniform) with a generator seeded by Seed: the
// first NTrain are the training set, the rest the test set. The question is
// the input followed by '>' ("cab>"), the answer the copy, sorted or
// reversed input ("abc" for sort). The problems use only the Question and
// Answer fields of ArithProblem (exact-match checker).
func StringTaskSplits(cfg StringTaskConfig) (train, test []ArithProblem, err error) {
	if err := cfg.check(); err != nil {
		return nil, nil, err
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x57a5))
	want := cfg.NTrain + cfg.NTest
	seen := make(map[string]bool, want)
	all := make([]ArithProblem, 0, want)
	for len(all) < want {
		n := cfg.MinLen + rng.IntN(cfg.MaxLen-cfg.MinLen+1)
		b := make([]byte, n)
		for i := range b {
			b[i] = cfg.Alphabet[rng.IntN(len(cfg.Alphabet))]
		}
		x := string(b)
		if seen[x] {
			continue
		}
		seen[x] = true
		all = append(all, ArithProblem{Question: x + ">", Answer: StringTaskAnswer(cfg.Kind, x)})
	}
	return all[:cfg.NTrain], all[cfg.NTrain:], nil
}
