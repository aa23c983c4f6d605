// Command smtrain trains autoregressive transformer policies with a backspace
// action using SequenceMatch, compares them against maximum likelihood, and
// runs them in MLE-Dojo-style environments.
//
// The command table follows the go tool: each command has a usage line, a
// short and a long help text and its own FlagSet. Usage errors exit 2,
// runtime errors exit 1, both with one line on stderr.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"smtrain/internal/blasfix"
)

// commands is the command table, in the order `smtrain help` lists them.
// Each entry lives in a file of its own (fit.go, sample.go, ...).
var commands []*Command

func init() {
	commands = []*Command{
		cmdFit, cmdEval,
		cmdCollect,
		cmdEnvServe,
		cmdEnvList,
		cmdSample, cmdExport,
		cmdServe,
		cmdRollout,
		cmdIterate,
		cmdCompare,
		cmdDataStats, cmdDataConvert, cmdTokenizerTrain,
		cmdVersion,
		cmdHelp,
	}
}

func main() {
	if err := blasfix.Exec(); err != nil { // returns only without a fix to make, or when it failed
		fmt.Fprintln(os.Stderr, "smtrain:", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run dispatches args to a command and maps its error to an exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		printUsage(stderr)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help":
		printUsage(stdout)
		return 0
	case "-version", "--version":
		args = append([]string{"version"}, args[1:]...)
	}
	cmd, rest := lookup(args)
	if cmd == nil {
		fmt.Fprintf(stderr, "smtrain %s: unknown command\nRun 'smtrain help' for usage.\n", args[0])
		return 2
	}
	err := cmd.Run(ctx, rest, stdout, stderr)
	return exitCode(cmd, err, stderr)
}

// exitCode prints err (one line) and returns the process exit status.
func exitCode(cmd *Command, err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	var ue *UsageError
	var ee *ExitError
	switch {
	case errors.Is(err, errHelpShown):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "smtrain %s: %v\nusage: %s\nRun 'smtrain help %s' for details.\n", cmd.Name, ue.Err, cmd.UsageLine, cmd.Name)
		return 2
	case errors.As(err, &ee):
		if ee.Err != nil {
			fmt.Fprintf(stderr, "smtrain %s: %v\n", cmd.Name, ee.Err)
		}
		return ee.Code
	default:
		fmt.Fprintf(stderr, "smtrain %s: %v\n", cmd.Name, err)
		return 1
	}
}

// lookup finds the command named by the first one or two words of args
// (two-word commands such as "data stats" win over one-word ones).
func lookup(args []string) (*Command, []string) {
	if len(args) >= 2 {
		name := args[0] + " " + args[1]
		for _, c := range commands {
			if c.Name == name {
				return c, args[2:]
			}
		}
	}
	for _, c := range commands {
		if c.Name == args[0] {
			return c, args[1:]
		}
	}
	return nil, nil
}
