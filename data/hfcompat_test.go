package data

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestHFTokenizersAgree cross-checks our encoder against Hugging Face's own
// Rust tokenizers (npm package "tokenizers", Node bindings) on a saved
// tokenizer.json: same ids for every case, and HF decodes back to the
// text. It runs only when SMTRAIN_HF_NODE_MODULES names a node_modules
// folder containing "tokenizers" (npm install tokenizers@0.23.2).
func TestHFTokenizersAgree(t *testing.T) {
	mods := os.Getenv("SMTRAIN_HF_NODE_MODULES")
	if mods == "" {
		t.Skip("SMTRAIN_HF_NODE_MODULES not set (node_modules with HF tokenizers)")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not found")
	}
	dir := t.TempDir()
	toks := map[string]*Tokenizer{"bpe": testTokenizer(t), "bytes": ByteTokenizer()}
	if tok, err := ParseTokenizerJSON(gpt2StyleJSON(false)); err == nil {
		toks["gpt2style"] = tok
	}
	var cases []string
	for _, x := range roundTripCases() {
		if x != "" && isValidUTF8(x) {
			cases = append(cases, x)
		}
	}
	cases = append(cases, "Hello world  it's 42!\n\n  x", "a  b\t\tc\n d", "x\u00a0y\u2003z", "1,234.56e7 -> ok?!")
	if traj, err := os.ReadFile(filepath.Join(sampleDir, "agent_trajectory.json")); err == nil {
		var msgs []Message
		if json.Unmarshal(traj, &msgs) == nil {
			for _, m := range msgs {
				cases = append(cases, m.Content)
			}
		}
	}
	for name, tok := range toks {
		path := filepath.Join(dir, name+".json")
		if err := tok.Save(path); err != nil {
			t.Fatal(err)
		}
		var want [][]int32
		for _, c := range cases {
			ids, _ := tok.Encode(c)
			want = append(want, ids)
		}
		cj, _ := json.Marshal(cases)
		os.WriteFile(filepath.Join(dir, "cases.json"), cj, 0o644)
		script := `const {Tokenizer} = require('tokenizers');
const fs = require('fs');
(async () => {
  const tok = Tokenizer.fromFile(process.argv[1]);
  const cases = JSON.parse(fs.readFileSync(process.argv[2]));
  const out = [];
  for (const c of cases) {
    const e = await tok.encode(c, null, {addSpecialTokens: false});
    const ids = e.getIds();
    const back = await tok.decode(ids, false);
    out.push({ids, back});
  }
  console.log(JSON.stringify(out));
})().catch(e => { console.error(e); process.exit(1); });`
		cmd := exec.Command(node, "-e", script, path, filepath.Join(dir, "cases.json"))
		cmd.Env = append(os.Environ(), "NODE_PATH="+mods)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: node: %v: %s", name, err, stderr.String())
		}
		var got []struct {
			IDs  []int32 `json:"ids"`
			Back string  `json:"back"`
		}
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("%s: %v: %s", name, err, out)
		}
		for i, c := range cases {
			if !slices.Equal(got[i].IDs, want[i]) {
				t.Errorf("%s: %q: HF ids %v, ours %v", name, c, got[i].IDs, want[i])
			}
			if got[i].Back != c {
				t.Errorf("%s: HF decodes %q as %q", name, c, got[i].Back)
			}
		}
		t.Logf("%s: %d cases agree with HF tokenizers", name, len(cases))
	}
}

func isValidUTF8(s string) bool {
	for _, r := range s {
		if r == 0xfffd {
			return false
		}
	}
	return true
}
