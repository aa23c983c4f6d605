package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"smtrain/model/gguf"
)

var cmdExport = &Command{
	Name:      "export",
	UsageLine: "smtrain export -ckpt DIR -format gguf [-type f32|f16] -out FILE [-name NAME]",
	Short:     "write a checkpoint as a GGUF file for llama.cpp",
	Long: `Export writes a checkpoint folder (or a training output folder's latest
checkpoint) as a GGUF file for llama.cpp's GPT-2 architecture ("gpt2"):
the weights (-type f32, or f16 for the matrices with norms and biases in
f32), the model's shape, and the tokenizer as llama.cpp's gpt2 byte-level
BPE tokenizer with its merges, smtrain's special tokens as control tokens
and <eos> as BOS and EOS. The file is written atomically. A checkpoint
llama.cpp cannot hold (a tokenizer larger than the model's vocabulary,
special ids that differ from the model's, two ids with one text, f16
values beyond ±65504, non-finite values) is refused with a message naming
what.

llama.cpp treats <bkspc> as an ordinary token: choosing it appends it to
the context, nothing pops the KV cache. To reproduce smtrain's greedy
decode with <bkspc> banned, ban its id in llama.cpp (logit bias -inf; the
id is stored as smtrain.bkspc_token_id). Sampling with <bkspc> allowed in
llama.cpp is not smtrain's policy: the token stays in the context instead
of deleting the one before it.`,
}

func init() { cmdExport.Run = runExport }

func runExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cmdExport.NewFlagSet(stderr)
	ckpt := fs.String("ckpt", "", "checkpoint folder or training output folder (required)")
	format := fs.String("format", "gguf", "output format (gguf)")
	typ := fs.String("type", "f32", "weight type: f32 or f16")
	out := fs.String("out", "", "output file (required)")
	name := fs.String("name", "", "model name stored in the file (default smtrain-gpt2)")
	if err := cmdExport.Parse(fs, args, stderr, false); err != nil {
		return err
	}
	switch {
	case *ckpt == "":
		return usagef("-ckpt is required")
	case *out == "":
		return usagef("-out is required")
	case *format != "gguf":
		return usagef("-format %q: only gguf is supported", *format)
	}
	tt, err := gguf.ParseTensorType(*typ)
	if err != nil {
		return usagef("-type: %v", err)
	}
	start := time.Now()
	dir, p, tok, err := loadPolicy(*ckpt)
	if err != nil {
		return err
	}
	if err := gguf.Write(*out, p, tok, gguf.Options{Type: tt, Name: *name}); err != nil {
		return fmt.Errorf("export %s: %w", dir, err)
	}
	st, err := os.Stat(*out)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "export: %s -> %s (gguf, %s, %.1f MB, %.1fs)\n", dir, *out, tt, float64(st.Size())/1e6, time.Since(start).Seconds())
	return nil
}
