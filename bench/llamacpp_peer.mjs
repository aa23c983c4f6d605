// llama.cpp peer for smtrain's benchmark: batch-1 greedy decode of a GGUF
// file (written by `smbench export`, the same weights smbench decodes)
// through node-llama-cpp, the way a user runs it.
//
//   node bench/llamacpp_peer.mjs PKGDIR MODEL.gguf CONFIG WEIGHTS THREADS REPS [PROMPT NEW]
//
// PKGDIR is the node-llama-cpp package folder. Each rep clears the context,
// evaluates a 16-token prompt (byte tokens 7..22) and generates NEW tokens
// greedily (temperature 0); the time includes the prefill, like smbench's.
// Prints one JSON line in smbench's format (impl "llamacpp").
import { pathToFileURL } from "node:url";
import { join } from "node:path";

const [pkg, modelPath, config, weights, threadsS, repsS, promptS = "16", newS = "64"] = process.argv.slice(2);
const threads = Number(threadsS), reps = Number(repsS), promptLen = Number(promptS), newTok = Number(newS);
const { getLlama, LlamaLogLevel } = await import(pathToFileURL(join(pkg, "dist", "index.js")).href);
const pkgVersion = JSON.parse(await (await import("node:fs/promises")).readFile(join(pkg, "package.json"), "utf8")).version;

const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
const model = await llama.loadModel({ modelPath });
const ctx = await model.createContext({ contextSize: 256, threads, batchSize: 256, sequences: 1 });
const seq = ctx.getSequence();
const prompt = Array.from({ length: promptLen }, (_, i) => 7 + i);

async function run(n) {
  await seq.clearHistory();
  let k = 0;
  for await (const _ of seq.evaluate(prompt, { temperature: 0 })) {
    if (++k >= n) break;
  }
  return k;
}

await run(8); // warm-up
const rates = [], tokens = [];
for (let r = 0; r < reps; r++) {
  const t0 = process.hrtime.bigint();
  const k = await run(newTok);
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  rates.push(k / s);
  tokens.push(k);
}
const sorted = [...rates].sort((a, b) => a - b);
const median = sorted.length % 2 ? sorted[(sorted.length - 1) / 2] : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2;
const out = {
  impl: "llamacpp", task: "decode", config, batch: 1, prompt: promptLen, new_tokens: newTok, generated: tokens,
  weights, tokens_per_s: rates, median, threads, peak_rss_mb: process.resourceUsage().maxRSS / 1024,
  node_llama_cpp: pkgVersion, llama_cpp: llama.llamaCppRelease ? `${llama.llamaCppRelease.repo}@${llama.llamaCppRelease.release}` : null,
};
process.stdout.write(JSON.stringify(out) + "\n");
await ctx.dispose();
await model.dispose();
await llama.dispose();
