// llama_eval.mjs runs a GGUF file through llama.cpp (node-llama-cpp) for
// smtrain's tests and benchmark.
//
//   node llama_eval.mjs PKGDIR REQUEST.json
//
// PKGDIR is the node-llama-cpp package folder; the request is
//   {"model": path, "threads": n, "context": n, "ban": [ids],
//    "prompts": [[ids]], "new": n, "probs": bool, "texts": [strings],
//    "bench": {"prompt": [ids], "new": n, "reps": n}}
// It prints one JSON object: for each prompt the greedy continuation
// (temperature 0, banned ids at logit -inf, stopping at an end-of-
// generation token) with, when probs is set, each step's next-token
// probabilities over the whole vocabulary; for each text llama.cpp's
// tokenization (special tokens parsed) and the detokenized ids; for bench
// the wall time of each rep of a greedy decode of bench.new tokens.
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { join } from "node:path";

const [pkg, reqPath] = process.argv.slice(2);
const req = JSON.parse(readFileSync(reqPath, "utf8"));
const { getLlama, LlamaLogLevel, TokenBias } = await import(pathToFileURL(join(pkg, "dist", "index.js")).href);

const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
const model = await llama.loadModel({ modelPath: req.model });
const ctx = await model.createContext({ contextSize: req.context, threads: req.threads, batchSize: req.context, sequences: 1 });
const seq = ctx.getSequence();
let bias;
if (req.ban && req.ban.length) {
  bias = new TokenBias(model.tokenizer);
  for (const id of req.ban) bias.set(id, "never");
}

async function greedy(prompt, n, probs) {
  await seq.clearHistory();
  const toks = [], dists = [];
  const gen = seq.evaluateWithMetadata(prompt, { probabilities: !!probs }, { temperature: 0, tokenBias: bias });
  for await (const out of gen) {
    toks.push(out.token);
    if (probs) dists.push(Object.fromEntries(out.probabilities));
    if (toks.length >= n) break;
  }
  return { tokens: toks, probs: probs ? dists : undefined };
}

const res = { runtime: "node-llama-cpp", prompts: [], texts: [] };
for (const p of req.prompts || []) res.prompts.push(await greedy(p, req.new, req.probs));
for (const t of req.texts || []) {
  const ids = model.tokenize(t, true);
  res.texts.push({ ids: Array.from(ids), text: model.detokenize(ids, true) });
}
if (req.bench) {
  res.bench = { seconds: [], tokens: [] };
  await greedy(req.bench.prompt, 4, false); // warm-up
  for (let r = 0; r < req.bench.reps; r++) {
    const t0 = process.hrtime.bigint();
    const out = await greedy(req.bench.prompt, req.bench.new, false);
    res.bench.seconds.push(Number(process.hrtime.bigint() - t0) / 1e9);
    res.bench.tokens.push(out.tokens.length);
  }
}
process.stdout.write(JSON.stringify(res) + "\n");
await ctx.dispose();
await model.dispose();
await llama.dispose();
