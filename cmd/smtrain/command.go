package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// A Command is one entry of the command table.
type Command struct {
	// Name is the command's name, one or two words ("fit", "data stats").
	Name string
	// UsageLine is the one-line synopsis: "smtrain fit [flags]".
	UsageLine string
	// Short is the one-line description shown by `smtrain help`.
	Short string
	// Long is the text shown by `smtrain help NAME`.
	Long string
	// Run parses args (with a FlagSet from c.FlagSet) and does the work.
	// It returns a *UsageError for bad usage, an *ExitError for a chosen
	// exit status, any other error for a runtime failure.
	Run func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// UsageError reports bad command-line usage (exit status 2).
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// usagef returns a *UsageError with a formatted message.
func usagef(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// ExitError asks main to exit with Code after printing Err (if non-nil).
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}
func (e *ExitError) Unwrap() error { return e.Err }

// errHelpShown is returned when -h/-help printed the command's help.
var errHelpShown = errors.New("help shown")

// NewFlagSet returns a FlagSet for c whose errors are returned, not printed
// with os.Exit, and whose -h prints the command's usage and flags to stderr.
func (c *Command) NewFlagSet(stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(c.Name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	_ = stderr
	return fs
}

// Parse parses args with fs and converts flag errors into usage errors.
// When -h or -help is given it prints the command's help and flags to stderr
// and returns errHelpShown. Positional arguments are rejected unless
// allowArgs is true.
//
// Flag names follow one convention, words joined by underscores like the
// config keys (-max_new, -skip_bad, -batch_size); the same name with
// dashes (-max-new) is accepted as an alias, as are the aliases of
// flagAliases, whichever spelling the flag was defined with.
func (c *Command) Parse(fs *flag.FlagSet, args []string, stderr io.Writer, allowArgs bool) error {
	args = canonicalArgs(fs, args)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			c.printHelp(stderr, fs)
			return errHelpShown
		}
		return &UsageError{Err: err}
	}
	if !allowArgs && fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

func (c *Command) printHelp(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: %s\n\n%s\n", c.UsageLine, strings.TrimSpace(c.Long))
	if fs != nil {
		// The flags under their canonical (underscore) names.
		shown := flag.NewFlagSet(c.Name, flag.ContinueOnError)
		n := 0
		fs.VisitAll(func(f *flag.Flag) {
			shown.Var(f.Value, canonicalFlagName(f.Name), f.Usage)
			n++
		})
		if n > 0 {
			fmt.Fprintf(w, "\nFlags:\n")
			shown.SetOutput(w)
			shown.PrintDefaults()
		}
	}
}

// flagAliases are extra spellings of flags: alias -> canonical name.
var flagAliases = map[string]string{
	"q": "quiet",
}

// canonicalFlagName is a flag's name in the command-line convention:
// words joined by underscores.
func canonicalFlagName(name string) string { return strings.ReplaceAll(name, "-", "_") }

// lookupFlag finds the flag a command-line name means: the name itself,
// its underscore or dash spelling, or an alias.
func lookupFlag(fs *flag.FlagSet, name string) *flag.Flag {
	if f := fs.Lookup(name); f != nil {
		return f
	}
	if a, ok := flagAliases[name]; ok {
		name = a
	}
	for _, n := range []string{name, canonicalFlagName(name), strings.ReplaceAll(name, "_", "-")} {
		if f := fs.Lookup(n); f != nil {
			return f
		}
	}
	return nil
}

// canonicalArgs rewrites each flag of args to the name it was defined
// with on fs (so -max_new and -max-new both reach "max-new"). Values are
// left alone: the word after a non-boolean flag without "=" is skipped,
// and rewriting stops at "--" or the first positional argument, as the
// flag package does.
func canonicalArgs(fs *flag.FlagSet, args []string) []string {
	out := append([]string(nil), args...)
	for i := 0; i < len(out); i++ {
		a := out[i]
		if a == "--" || len(a) < 2 || a[0] != '-' {
			return out
		}
		dashes := "-"
		name := a[1:]
		if strings.HasPrefix(name, "-") {
			dashes, name = "--", name[1:]
		}
		value, hasValue := "", false
		if k := strings.IndexByte(name, '='); k >= 0 {
			name, value, hasValue = name[:k], name[k:], true
		}
		f := lookupFlag(fs, name)
		if f == nil {
			continue // the flag package reports it
		}
		out[i] = dashes + f.Name + value
		if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); !hasValue && !(ok && bf.IsBoolFlag()) {
			i++ // the value
		}
	}
	return out
}
