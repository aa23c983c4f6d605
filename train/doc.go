// Package train is the training loop: configuration, AdamW, the learning-
// rate schedule, gradient clipping and accumulation, the SequenceMatch
// schedule with its replay buffer, evaluation, metrics, and checkpoints with
// bit-exact resume.
//
// Where things live:
//
//   - config.go: Config, its keys, defaults and validation (Validate).
//   - trainer.go: New (a run from its inputs: the data comes prepared by
//     data.Prepare, the tokenizer and model are chosen in prepare.go) and
//     Run, one optimizer step (trainStep) and the end-of-step work
//     (afterStep: log line, evaluation, replay refresh, checkpoint).
//   - prepare.go: resolveTokenizer and resolveModel (checkpoint, -init,
//     tokenizer file, or new); init.go: loading -init with its vocabulary
//     grown.
//   - eval.go: the Evaluator (validation losses); noise.go: the noise
//     options of a run, with the policy kind's forward pass; diag.go: the
//     backspace diagnostics.
//   - adamw.go, adamw_params.go: the optimizer; schedule.go: the
//     learning rate.
//   - ckpt.go: checkpoints and exact resume; rundir.go: the output folder;
//     metrics.go: metrics.jsonl; progress.go, warn.go: the console.
//   - envreplay.go: the replay buffer filled from live environments;
//     iterate.go: expert iteration.
package train
