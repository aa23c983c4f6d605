package train

import "math"

// LRAt is the learning rate at optimizer step `step` (0-based): linear
// warm-up from lr/warmup to lr over warmup steps, then cosine decay to
// minLR at step total-1 (nanoGPT's schedule).
func LRAt(step, warmup, total int, lr, minLR float64) float64 {
	if step < warmup {
		return lr * float64(step+1) / float64(warmup)
	}
	if step >= total-1 || total-1 <= warmup {
		if step < total-1 {
			return lr
		}
		return minLR
	}
	ratio := float64(step-warmup) / float64(total-1-warmup)
	coeff := 0.5 * (1 + math.Cos(math.Pi*ratio)) // 1 -> 0
	return minLR + coeff*(lr-minLR)
}
