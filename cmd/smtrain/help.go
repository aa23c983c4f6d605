package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
	"text/tabwriter"
)

var cmdHelp = &Command{
	Name:      "help",
	UsageLine: "smtrain help [command]",
	Short:     "show help for smtrain or one of its commands",
	Long: `Help prints the list of commands, or the long help of one command
(for two-word commands, give both words: smtrain help data stats).`,
}

func init() {
	cmdHelp.Run = func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		if len(args) == 0 {
			printUsage(stdout)
			return nil
		}
		c, rest := lookup(args)
		if c == nil && len(args) == 1 {
			// A group of two-word commands ("data", "env"): list them.
			var group []*Command
			for _, c := range commands {
				if strings.HasPrefix(c.Name, args[0]+" ") {
					group = append(group, c)
				}
			}
			if len(group) > 0 {
				fmt.Fprintf(stdout, "The %s commands are:\n\n", args[0])
				tw := tabwriter.NewWriter(stdout, 0, 8, 2, ' ', 0)
				for _, c := range group {
					fmt.Fprintf(tw, "\t%s\t%s\n", c.Name, c.Short)
				}
				tw.Flush()
				fmt.Fprintf(stdout, "\nUse \"smtrain help %s <command>\" for more information about a command.\n", args[0])
				return nil
			}
		}
		if c == nil || len(rest) > 0 {
			return usagef("unknown help topic %q", strings.Join(args, " "))
		}
		// Build the command's FlagSet by asking it for help.
		if err := c.Run(ctx, []string{"-h"}, stdout, stdout); err != nil && err != errHelpShown {
			c.printHelp(stdout, nil)
		}
		return nil
	}
}

func printUsage(w io.Writer) {
	fmt.Fprintf(w, "smtrain trains transformer policies with a backspace action using\nSequenceMatch and runs them in MLE-Dojo-style environments.\n\nUsage:\n\n\tsmtrain <command> [flags]\n\nThe commands are:\n\n")
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for _, c := range commands {
		fmt.Fprintf(tw, "\t%s\t%s\n", c.Name, c.Short)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nUse \"smtrain help <command>\" for more information about a command.\n")
}

// Version is set at link time (-ldflags "-X main.Version=...") by the Makefile.
var Version = "dev"

var cmdVersion = &Command{
	Name:      "version",
	UsageLine: "smtrain version",
	Short:     "print the smtrain version",
	Long:      `Version prints the smtrain version, the Go version and the BLAS in use.`,
}

func init() {
	cmdVersion.Run = func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		fs := cmdVersion.NewFlagSet(stderr)
		if err := cmdVersion.Parse(fs, args, stderr, false); err != nil {
			return err
		}
		rev := ""
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" && len(s.Value) >= 12 {
					rev = " " + s.Value[:12]
				}
			}
		}
		fmt.Fprintf(stdout, "smtrain %s%s %s %s/%s blas=%s\n", Version, rev, runtime.Version(), runtime.GOOS, runtime.GOARCH, blasName())
		return nil
	}
}
