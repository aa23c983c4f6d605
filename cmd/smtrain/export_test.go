package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"smtrain/model/gguf"
)

func TestExportCommand(t *testing.T) {
	dir, tok := tinyCheckpoint(t)
	out := filepath.Join(t.TempDir(), "m.gguf")
	var so, se bytes.Buffer
	if code := run(context.Background(), []string{"export", "-ckpt", dir, "-type", "f16", "-out", out}, &so, &se); code != 0 {
		t.Fatalf("exit %d: %s", code, se.String())
	}
	f, err := gguf.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if f.KV["general.file_type"] != uint32(1) || len(f.KV["tokenizer.ggml.tokens"].([]any)) != tok.VocabSize() {
		t.Errorf("file_type %v, %d tokens", f.KV["general.file_type"], len(f.KV["tokenizer.ggml.tokens"].([]any)))
	}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"-ckpt", dir, "-out", out, "-format", "onnx"}, 2, `-format "onnx": only gguf`},
		{[]string{"-ckpt", dir, "-out", out, "-type", "q4"}, 2, `unknown tensor type "q4"`},
		{[]string{"-ckpt", dir}, 2, "-out is required"},
		{[]string{"-ckpt", filepath.Join(dir, "missing"), "-out", out}, 1, "missing"},
	} {
		so.Reset()
		se.Reset()
		code := run(context.Background(), append([]string{"export"}, c.args...), &so, &se)
		if code != c.code || !strings.Contains(se.String(), c.want) {
			t.Errorf("export %v: exit %d, stderr %q; want exit %d and %q", c.args, code, se.String(), c.code, c.want)
		}
	}
}
