package decode

import "testing"

// benchChoose times one sampling decision over a vocabulary of 1024.
func benchChoose(b *testing.B, mod func(*Options)) {
	l := hashLogits(1024, 4)([]int32{1, 2, 3})
	o := DefaultOptions()
	mod(&o)
	var c chooser
	rng := NewRand(1, 0)
	m := stateMask(&o, len(l), true, -1)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.choose(l, &o, m, rng); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkChooseV1024(b *testing.B)       { benchChoose(b, func(*Options) {}) }
func BenchmarkChooseV1024Greedy(b *testing.B) { benchChoose(b, func(o *Options) { o.Greedy = true }) }
func BenchmarkChooseV1024TopK50(b *testing.B) { benchChoose(b, func(o *Options) { o.TopK = 50 }) }
func BenchmarkChooseV1024TopP09(b *testing.B) { benchChoose(b, func(o *Options) { o.TopP = 0.9 }) }
