// Package data turns trajectory files into compiled training batches:
// loaders (MLE-Dojo run folders, AIDE journals, JSONL chats), the tokenizer,
// the chat template, action sequences with noise+backspace augmentation,
// compilation into tree-attention batches with a transition table, batching,
// the replay buffer and the arithmetic task.
//
// Where things live:
//
//   - episode.go: Episode, Load/LoadWith and what was skipped (kinds.go
//     names MLE-Dojo files that hold no agent messages; utf8check.go counts
//     bytes that are not UTF-8); mledojo.go: MLE-Dojo run folders and AIDE
//     journals, with the alignment of turns to history entries.
//   - tokenizer.go (with tokenizer_json.go, tokenizer_gpt2files.go):
//     the byte-level BPE tokenizer and its files; bpetrain.go: training one.
//   - sequence.go: ActionSeq, the chat template (ChatSeq), truncation,
//     SplitTurns, and the noise kinds (NoiseKind) with Augment/AugmentBatch.
//   - batching.go: BuildSeqs, the one place episodes become sequences
//     (SeqMode episode, turn or auto); Split; the Loader and its Cursor.
//   - prepare.go: a run's prepared inputs (Prepare: SplitEpisodes, a BPE on
//     the training split when no tokenizer is given, BuildSeqs).
//   - compile.go: Compile, sequences to a tree-attention Batch (batch.go).
//   - replay.go: the replay buffer; arith.go, strtask.go: synthetic tasks;
//     jsonutil.go: JSON with NaN; counts.go: KeysByCount.
package data
