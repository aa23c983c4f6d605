package train

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func writeCfg(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestConfigFileTypesExact: a file value must have its key's type (5.7 is
// no step count, in YAML or JSON), errors name the file and line, a list
// key takes one string like its flag, and unknown keys are refused.
func TestConfigFileTypesExact(t *testing.T) {
	for _, c := range []struct{ name, text, want string }{
		{"a.yaml", "lr: 1e-3\nsteps: 5.7\n", "a.yaml:2: key steps: expected an integer"},
		{"b.json", "{\n  \"steps\": 5.7\n}\n", "b.json:2: key steps: expected an integer"},
		{"c.yaml", "task: 3\n", "c.yaml:1: key task: expected a string"},
		{"d.yaml", "skip_bad: yes please\n", "d.yaml:1: key skip_bad: expected true or false"},
		{"e.yaml", "stepz: 3\n", `e.yaml:1: unknown config key "stepz"`},
		{"f.json", "{\"steps\": 3,}", "f.json: byte"},
	} {
		cfg := DefaultConfig()
		err := LoadConfigFile(writeCfg(t, c.name, c.text), &cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
	}
	for _, c := range []struct {
		name, text string
		want       []string
	}{
		{"one.yaml", "data: mledojo\n", []string{"mledojo"}},
		{"two.json", `{"data": "a, b"}`, []string{"a", "b"}},
		{"list.yaml", "data: [x, y]\n", []string{"x", "y"}},
	} {
		cfg := DefaultConfig()
		if err := LoadConfigFile(writeCfg(t, c.name, c.text), &cfg); err != nil || !slices.Equal(cfg.Data, c.want) {
			t.Errorf("%s: data %q, err %v; want %q", c.name, cfg.Data, err, c.want)
		}
	}
}

// TestValidateFromNamesSource: a bad value from a file names the file and
// line; from a flag, the flag (and is marked as a flag error).
func TestValidateFromNamesSource(t *testing.T) {
	p := writeCfg(t, "x.yaml", "lr: 1e-3\nsteps: -5\n")
	cfg := DefaultConfig()
	lines, err := LoadConfigFileLines(p, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = cfg.ValidateFrom(Sources{File: p, Lines: lines})
	var ke *KeyError
	if !errors.As(err, &ke) || ke.Flag || !strings.Contains(err.Error(), p+":2: key steps: must be positive") {
		t.Fatalf("file error %v", err)
	}
	fs := newTestFlagSet()
	b := BindFlags(fs)
	if err := fs.Parse([]string{"-steps", "-5"}); err != nil {
		t.Fatal(err)
	}
	cfg = DefaultConfig()
	if err := b.Apply(&cfg); err != nil {
		t.Fatal(err)
	}
	err = cfg.ValidateFrom(Sources{File: p, Lines: lines, Flags: b})
	if !errors.As(err, &ke) || !ke.Flag || !strings.Contains(err.Error(), "flag -steps: must be positive") {
		t.Fatalf("flag error %v", err)
	}
}

// TestMinRewardOptional: min_reward is unset by default (null in JSON, no
// -1e308 in help or config.json), NaN is refused, and an old config.json
// with the -1e308 sentinel and the removed threads key still loads.
func TestMinRewardOptional(t *testing.T) {
	cfg := DefaultConfig()
	if cfg.MinReward.Set {
		t.Fatal("min_reward set by default")
	}
	js, err := MarshalConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(js), `"min_reward": null`) || strings.Contains(string(js), "threads") || strings.Contains(string(js), "e+308") {
		t.Fatalf("config.json:\n%s", js)
	}
	old := writeCfg(t, "config.json", `{"min_reward": -1e308, "threads": 4, "steps": 9}`)
	cfg = DefaultConfig()
	if err := LoadConfigFile(old, &cfg); err != nil || cfg.MinReward.Set || cfg.Steps != 9 {
		t.Fatalf("old config: %v, min_reward %+v", err, cfg.MinReward)
	}
	set := writeCfg(t, "m.yaml", "min_reward: 0.5\n")
	if err := LoadConfigFile(set, &cfg); err != nil || cfg.MinReward != Some(0.5) {
		t.Fatalf("min_reward 0.5: %v %+v", err, cfg.MinReward)
	}
	cfg.MinReward = Some(nan())
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "min_reward") {
		t.Fatalf("NaN min_reward: %v", err)
	}
	cfg = DefaultConfig()
	cfg.Eta = nan()
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "eta") {
		t.Fatalf("NaN eta: %v", err)
	}
	fs := newTestFlagSet()
	BindFlags(fs)
	if fs.Lookup("threads") != nil {
		t.Fatal("-threads still a flag")
	}
	if f := fs.Lookup("min_reward"); f == nil || f.DefValue != "" {
		t.Fatalf("-min_reward default %q, want empty", f.DefValue)
	}
	efs := newTestFlagSet()
	BindEvalFlags(efs)
	if efs.Lookup("beta2") != nil || efs.Lookup("lr") != nil || efs.Lookup("objective") == nil || efs.Lookup("eta") == nil {
		t.Fatal("eval flags: training-only keys bound or evaluation keys missing")
	}
}

func nan() float64 { var z float64; return z / z }

func newTestFlagSet() *flag.FlagSet { return flag.NewFlagSet("t", flag.ContinueOnError) }
