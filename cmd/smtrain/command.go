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
func (c *Command) Parse(fs *flag.FlagSet, args []string, stderr io.Writer, allowArgs bool) error {
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
		n := 0
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			fmt.Fprintf(w, "\nFlags:\n")
			fs.SetOutput(w)
			fs.PrintDefaults()
			fs.SetOutput(io.Discard)
		}
	}
}
