package main

import (
	"errors"
	"flag"

	"smtrain/decode"
	"smtrain/envbridge"
)

// constrainFlag is -constrain (sample, rollout, serve, compare): the
// grammar replies are decoded under, action or none.
type constrainFlag struct{ action bool }

var _ flag.Value = (*constrainFlag)(nil)

// addConstrainFlag defines -constrain on fs; what says what it constrains.
func addConstrainFlag(fs *flag.FlagSet, what string) *constrainFlag {
	c := &constrainFlag{}
	fs.Var(c, "constrain", what+": `action|none`; action = MLE-Dojo's reply format (prose, then a fenced json action block that parses and validates)")
	return c
}

func (c *constrainFlag) String() string {
	if c != nil && c.action {
		return "action"
	}
	return "none"
}

func (c *constrainFlag) Set(v string) error {
	switch v {
	case "action", "none":
		c.action = v == "action"
		return nil
	}
	return errors.New("must be action or none")
}

// grammar is the grammar the flag names (nil for none).
func (c *constrainFlag) grammar() decode.Grammar {
	if !c.action {
		return nil
	}
	return envbridge.NewActionGrammar()
}
