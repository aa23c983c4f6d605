package data

// NextSeqs is Next without the final Compile: it returns the (augmented,
// truncated) sequences of the batch at c and advances c, so that a caller
// can add sequences of its own (e.g. replay-buffer generations) before
// compiling.
func (l *Loader) NextSeqs(c *Cursor) ([]*ActionSeq, error) {
	if err := l.init(); err != nil {
		return nil, err
	}
	order, err := l.EpochOrder(c.Epoch)
	if err != nil {
		return nil, err
	}
	if len(order) == 0 {
		return nil, errNoBatches
	}
	if c.Index >= len(order) {
		c.Epoch++
		c.Index = 0
		if order, err = l.EpochOrder(c.Epoch); err != nil {
			return nil, err
		}
	}
	seqs, err := l.batchSeqs(c.Epoch, c.Index, order)
	if err != nil {
		return nil, err
	}
	c.Index++
	if c.Index >= len(order) {
		c.Epoch++
		c.Index = 0
	}
	return seqs, nil
}
