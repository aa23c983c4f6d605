//go:build !unix

package objective

import "time"

// cpuTime is unavailable here: CPU-time ratios read 0/0.
func cpuTime() time.Duration { return 0 }
