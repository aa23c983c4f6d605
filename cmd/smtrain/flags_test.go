package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// commandFlags returns the flag names a command's help lists.
func commandFlags(t *testing.T, c *Command) map[string]bool {
	t.Helper()
	var buf bytes.Buffer
	if err := c.Run(context.Background(), []string{"-h"}, &buf, &buf); err != nil && err != errHelpShown {
		t.Fatalf("%s -h: %v", c.Name, err)
	}
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^  -(\S+)`).FindAllStringSubmatch(buf.String(), -1) {
		names[m[1]] = true
	}
	return names
}

// TestFlagSpellingOneConvention: every command's flags are spelled with
// underscores (like the config keys) in its help; the dash spelling and
// the -q alias are accepted too, by every command.
func TestFlagSpellingOneConvention(t *testing.T) {
	for _, c := range commands {
		if c == cmdHelp {
			continue
		}
		var help bytes.Buffer
		_ = c.Run(context.Background(), []string{"-h"}, &help, &help)
		if strings.Contains(help.String(), "(default )") {
			t.Errorf("smtrain help %s: a flag shows an empty default:\n%s", c.Name, help.String())
		}
		for _, line := range strings.Split(help.String(), "\n") {
			if strings.HasPrefix(line, "    \t") && strings.Count(line, "`")%2 == 1 {
				t.Errorf("smtrain help %s: mangled back-quote in %q", c.Name, line)
			}
		}
		for name := range commandFlags(t, c) {
			if strings.Contains(name, "-") {
				t.Errorf("smtrain %s: flag -%s: words must be joined by underscores", c.Name, name)
			}
		}
	}
	// The examples: both spellings parse (exit 1 = the missing
	// data, not a usage error).
	dir := t.TempDir()
	for _, args := range [][]string{
		{"fit", "-skip-bad", "-data", dir + "/none.jsonl", "-out", dir + "/a"},
		{"fit", "-skip_bad", "-data", dir + "/none.jsonl", "-out", dir + "/b"},
		{"data", "stats", "-skip_bad", "-data", dir + "/none.jsonl"},
		{"data", "stats", "-skip-bad", "-data", dir + "/none.jsonl"},
		{"collect", "-q", "-episodes", "0", "-out", dir + "/c"},
		{"collect", "-quiet", "-episodes", "0", "-out", dir + "/c"},
	} {
		code, _, errb := runCLI(args...)
		if code == 2 && strings.Contains(errb, "flag provided but not defined") {
			t.Errorf("smtrain %s: %s", strings.Join(args, " "), errb)
		}
	}
}

func TestCanonicalArgs(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.Int("max_new", 1, "")
	fs.Bool("skip-bad", false, "")
	fs.Bool("quiet", false, "")
	fs.String("prompt", "", "")
	in := []string{"-max-new", "5", "--skip_bad", "-q", "-prompt", "-max-new", "-max_new=7", "pos", "-max-new"}
	want := []string{"-max_new", "5", "--skip-bad", "-quiet", "-prompt", "-max-new", "-max_new=7", "pos", "-max-new"}
	if got := canonicalArgs(fs, in); !slices.Equal(got, want) {
		t.Fatalf("canonicalArgs(%q) = %q, want %q", in, got, want)
	}
}

// TestTopLevelHelpAndVersion: -h, -help, --help print the usage (exit 0);
// --version and -version print the version.
func TestTopLevelHelpAndVersion(t *testing.T) {
	for _, a := range []string{"-h", "-help", "--help"} {
		if code, out, errb := runCLI(a); code != 0 || !strings.Contains(out, "The commands are") {
			t.Errorf("smtrain %s: exit %d, stdout %q stderr %q", a, code, out, errb)
		}
	}
	for _, a := range []string{"-version", "--version"} {
		if code, out, errb := runCLI(a); code != 0 || !strings.HasPrefix(out, "smtrain ") {
			t.Errorf("smtrain %s: exit %d, stdout %q stderr %q", a, code, out, errb)
		}
	}
}

var flagMention = regexp.MustCompile(`(?:^|[\s(\[,'"/|` + "`" + `])-([a-z][a-z0-9_-]*[a-z0-9])\b`)

// TestREADMEAndHelpNameRealFlags: every flag in a README command line
// (an indented "smtrain CMD ..." line or `smtrain CMD ...` in the text)
// and every flag a command's help text mentions is a flag of that command,
// spelled as its help lists it.
func TestREADMEAndHelpNameRealFlags(t *testing.T) {
	flagsOf := map[*Command]map[string]bool{}
	flags := func(c *Command) map[string]bool {
		if flagsOf[c] == nil {
			flagsOf[c] = commandFlags(t, c)
		}
		return flagsOf[c]
	}
	check := func(where string, c *Command, text string) {
		for _, m := range flagMention.FindAllStringSubmatch(text, -1) {
			if !flags(c)[m[1]] {
				t.Errorf("%s: smtrain %s has no flag -%s", where, c.Name, m[1])
			}
		}
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	cmdLine := regexp.MustCompile("(?m)^\\s+smtrain ([^#\\n]*)|`smtrain ([^`]*)`")
	n := 0
	for _, m := range cmdLine.FindAllStringSubmatch(string(readme), -1) {
		line := m[1] + m[2]
		c, rest := lookup(strings.Fields(line))
		if c == nil {
			continue
		}
		n++
		check("README `smtrain "+strings.TrimSpace(line)+"`", c, strings.Join(rest, " "))
	}
	if n < 10 {
		t.Fatalf("found only %d smtrain command lines in README.md", n)
	}
	anyFlag := func(name string) bool {
		for _, c := range commands {
			if c != cmdHelp && flags(c)[name] {
				return true
			}
		}
		return false
	}
	// Help texts may name other commands' flags ("smtrain fit -data"),
	// but only flags that exist, spelled as their help lists them.
	for _, c := range commands {
		if c == cmdHelp {
			continue
		}
		for _, m := range flagMention.FindAllStringSubmatch(c.Long, -1) {
			if !flags(c)[m[1]] && !anyFlag(m[1]) && m[1] != "inf" {
				t.Errorf("smtrain help %s: -%s is a flag of no command", c.Name, m[1])
			}
		}
	}
	// Flags the README names in its prose (`-lambda`).
	for _, m := range regexp.MustCompile("`(-[a-z][a-z0-9_]*)`").FindAllStringSubmatch(string(readme), -1) {
		if !anyFlag(m[1][1:]) && m[1] != "-short" { // go test -short
			t.Errorf("README mentions `%s`, a flag of no command", m[1])
		}
	}
}
