package sandbox

import (
	"fmt"
	"sync"
)

// capture is an io.Writer that keeps at most limit bytes: the first head
// bytes and the last (limit-head) bytes, discarding the middle. Memory use
// is bounded by limit whatever is written.
type capture struct {
	mu      sync.Mutex
	limit   int
	head    []byte
	tail    []byte // ring buffer of capacity limit-len(head cap)
	tailCap int
	tailPos int  // next write position in tail once full
	tailFul bool // tail ring has wrapped
	total   int64
}

func newCapture(limit int) *capture {
	if limit < 2 {
		limit = 2
	}
	head := limit * 3 / 4
	return &capture{limit: limit, head: make([]byte, 0, head), tailCap: limit - head}
}

// Write implements io.Writer; it never fails.
func (c *capture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(p)
	c.total += int64(n)
	if room := cap(c.head) - len(c.head); room > 0 {
		k := min(room, len(p))
		c.head = append(c.head, p[:k]...)
		p = p[k:]
	}
	if len(p) == 0 {
		return n, nil
	}
	if len(p) >= c.tailCap {
		// Only the last tailCap bytes can survive.
		c.tail = append(c.tail[:0], p[len(p)-c.tailCap:]...)
		c.tailPos = 0
		c.tailFul = true
		return n, nil
	}
	if !c.tailFul {
		room := c.tailCap - len(c.tail)
		if len(p) <= room {
			c.tail = append(c.tail, p...)
			return n, nil
		}
		c.tail = append(c.tail, p[:room]...)
		p = p[room:]
		c.tailFul = true
		c.tailPos = 0
	}
	for len(p) > 0 {
		k := copy(c.tail[c.tailPos:], p)
		p = p[k:]
		c.tailPos = (c.tailPos + k) % c.tailCap
	}
	return n, nil
}

// truncated reports whether bytes were discarded.
func (c *capture) truncated() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total > int64(len(c.head)+len(c.tail))
}

// String returns the kept bytes, with a marker where bytes were dropped.
func (c *capture) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var tail []byte
	if c.tailFul {
		tail = make([]byte, 0, c.tailCap)
		tail = append(tail, c.tail[c.tailPos:]...)
		tail = append(tail, c.tail[:c.tailPos]...)
	} else {
		tail = c.tail
	}
	dropped := c.total - int64(len(c.head)+len(tail))
	if dropped <= 0 {
		return string(c.head) + string(tail)
	}
	return string(c.head) + fmt.Sprintf("\n... [%d bytes of output truncated] ...\n", dropped) + string(tail)
}
