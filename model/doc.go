// Package model holds the GPT-2 style policy: its configuration, named
// parameters (HF GPT-2 names and layouts), the training graph on gorgonia
// built from fused custom ops, the incremental KV-cache decoder, and
// checkpoint reading and writing (safetensors + config.json).
//
// Where things live:
//
//   - config.go: Config and the presets (Tiny, Small).
//   - params.go: Params, the tensors by HF name, in Params.List order (the
//     per-layer offsets pLn1W … pFcProjB).
//   - graph.go: the training graph. Its per-layer forward is the layer loop
//     of buildGraph (ln_1, c_attn, tree attention, c_proj + residual, ln_2,
//     c_fc, GELU, mlp.c_proj + residual), one fused op per layer piece
//     (ops.go: the op machinery; ops_layers.go: the ops).
//   - decoder.go: the decode step. Decoder.forward is the decoder's
//     per-layer forward, one code path for a batch-1 token, a batch of
//     slots and a prompt (n rows); Push, Pop and Prefill drive it. The
//     decoder uses the training graph's kernels on the same weights, and
//     TestDecoderMatchesFullForward (decoder_test.go) keeps its logits
//     equal to the training graph's after any pushes and pops, at several
//     batch sizes and on every linear path (TestDecoderPaths).
//   - kernels.go: the forward/backward kernels (llm.c style: embedding,
//     layer norm, linear, GELU, attention, cross entropy) and their loops
//     (named parallel.Task types: linRowsTask, lnForwardTask, geluForwardTask
//     …; attention keeps a forward/backward flag); tuning.go: the one struct of their
//     dispatch thresholds (when to split across cores, which product loop),
//     passed explicitly.
//   - fastmath.go: the float32 exp and tanh loops (their reference versions
//     are in fastmath_test.go); internal/vec: the AVX2/AVX-512 kernels.
//   - loss.go: the cross-entropy loss node; the training objectives are in
//     package objective.
//   - checkpoint.go, safetensors.go: checkpoint folders and files, written
//     atomically through smtrain/internal/atomicfile (the repository's one
//     atomic writer); grow.go: vocabulary growth; gguf: GGUF export.
//
// Parallel loops go through smtrain/internal/parallel (parallel.For over
// one process-wide worker pool), the repository's one parallel loop: the
// kernels here, the objectives' row passes and the optimizer use it.
package model
