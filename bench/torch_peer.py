#!/usr/bin/python3
"""PyTorch peer for smtrain's benchmark (DESIGN.md 7.2).

A GPT-2 layout model (HF Conv1D weights y = x @ W + b, pre-LN, tanh GELU,
tied LM head) in PyTorch 1.13, float32. One task per process, so peak RSS
belongs to that task:

    train  CONFIG   step = new random batch, forward, cross-entropy,
                    backward, global-norm clip 1.0, AdamW (nanoGPT groups)
    decode CONFIG   greedy generation with its own KV cache, batch --batch
    sgemm           torch.mm of 2048 x 2048 float32
    membw           read bandwidth: torch.sum over a 1 GiB float32 tensor
                    (the bound of batch-1 decoding, which reads every
                    weight once per token)

Prints one JSON object: tokens/s (or GFLOP/s) per rep, the median, peak RSS
(ru_maxrss) and versions. Run it the way bench.sh does, at the peer's best
thread layout: OPENBLAS_NUM_THREADS=2 OMP_NUM_THREADS=1 and
torch.set_num_threads(1) (--threads).
"""
import argparse
import json
import math
import os
import platform
import resource
import statistics
import sys
import time

import torch
import torch.nn.functional as F

CONFIGS = {
    # name: (L, D, H, T, B, V, P)
    "tiny": dict(L=2, D=64, H=2, T=32, B=8, V=300, P=128),
    "small": dict(L=4, D=128, H=4, T=128, B=16, V=1024, P=1024),
    # make dojo's recipe (L2 D128 H4, context 2048, batch 4)
    "dojo": dict(L=2, D=128, H=4, T=2048, B=4, V=2048, P=2048),
    # GPT-2 small's shape with nanoGPT's padded vocabulary (124M parameters)
    "gpt2s": dict(L=12, D=768, H=12, T=256, B=4, V=50304, P=1024),
}


class GPT(torch.nn.Module):
    def __init__(self, L, D, H, V, P, **_):
        super().__init__()
        self.L, self.D, self.H = L, D, H
        std = 0.02
        self.wte = torch.nn.Parameter(torch.randn(V, D) * std)
        self.wpe = torch.nn.Parameter(torch.randn(P, D) * std)
        self.blocks = torch.nn.ModuleList()
        for _ in range(L):
            b = torch.nn.Module()
            b.ln1 = torch.nn.LayerNorm(D)
            b.attn_w = torch.nn.Parameter(torch.randn(D, 3 * D) * std)
            b.attn_b = torch.nn.Parameter(torch.zeros(3 * D))
            b.proj_w = torch.nn.Parameter(torch.randn(D, D) * std / math.sqrt(2 * L))
            b.proj_b = torch.nn.Parameter(torch.zeros(D))
            b.ln2 = torch.nn.LayerNorm(D)
            b.fc_w = torch.nn.Parameter(torch.randn(D, 4 * D) * std)
            b.fc_b = torch.nn.Parameter(torch.zeros(4 * D))
            b.fcp_w = torch.nn.Parameter(torch.randn(4 * D, D) * std / math.sqrt(2 * L))
            b.fcp_b = torch.nn.Parameter(torch.zeros(D))
            self.blocks.append(b)
        self.lnf = torch.nn.LayerNorm(D)
        self.register_buffer("causal", torch.tril(torch.ones(P, P, dtype=torch.bool)), persistent=False)

    def _attn(self, q, k, v, mask):
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.size(-1)))
        if mask is not None:
            att = att.masked_fill(~mask, float("-inf"))
        return att.softmax(-1) @ v

    def forward(self, idx, past=None):
        """idx (B, T); past: list of (k, v) per layer (B, H, t, hd) or None.
        Returns logits (B, T, V) and the new cache."""
        B, T = idx.shape
        D, H = self.D, self.H
        t0 = 0 if past is None else past[0][0].size(2)
        pos = torch.arange(t0, t0 + T)
        x = self.wte[idx] + self.wpe[pos]                          # (B, T, D)
        mask = self.causal[t0:t0 + T, :t0 + T] if T > 1 else None
        new = []
        for l, b in enumerate(self.blocks):
            h = b.ln1(x)
            qkv = torch.addmm(b.attn_b, h.view(-1, D), b.attn_w).view(B, T, 3 * D)
            q, k, v = qkv.split(D, dim=-1)
            q = q.view(B, T, H, -1).transpose(1, 2)                # (B, H, T, hd)
            k = k.view(B, T, H, -1).transpose(1, 2)
            v = v.view(B, T, H, -1).transpose(1, 2)
            if past is not None:
                k = torch.cat([past[l][0], k], dim=2)
                v = torch.cat([past[l][1], v], dim=2)
            new.append((k, v))
            y = self._attn(q, k, v, mask).transpose(1, 2).reshape(B * T, D)
            x = x + torch.addmm(b.proj_b, y, b.proj_w).view(B, T, D)
            h = b.ln2(x)
            f = F.gelu(torch.addmm(b.fc_b, h.view(-1, D), b.fc_w), approximate="tanh")
            x = x + torch.addmm(b.fcp_b, f, b.fcp_w).view(B, T, D)
        x = self.lnf(x)
        return x @ self.wte.t(), new                               # (B, T, V)


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def bench_train(c, reps, steps, warmup, foreach):
    model = GPT(**c)
    params = list(model.parameters())
    decay = [p for p in params if p.dim() >= 2]
    nodecay = [p for p in params if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": nodecay, "weight_decay": 0.0}],
                            lr=3e-4, betas=(0.9, 0.95), eps=1e-8, foreach=foreach)
    B, T, V = c["B"], c["T"], c["V"]
    losses = []

    def step():
        data = torch.randint(0, V, (B, T + 1))
        x, y = data[:, :-1], data[:, 1:]
        logits, _ = model(x)
        loss = F.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        losses.append(float(loss))

    for _ in range(warmup):
        step()
    rates = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        rates.append(steps * B * T / (time.perf_counter() - t0))
    return {"tokens_per_s": rates, "steps_per_rep": steps, "last_loss": losses[-1]}


@torch.no_grad()
def bench_decode(c, reps, batch, prompt, new, warmup):
    model = GPT(**c).eval()
    V = c["V"]
    g = torch.Generator().manual_seed(0)

    def run():
        idx = torch.randint(0, V, (batch, prompt), generator=g)
        logits, past = model(idx)
        tok = logits[:, -1].argmax(-1, keepdim=True)
        for _ in range(new - 1):
            logits, past = model(tok, past)
            tok = logits[:, -1].argmax(-1, keepdim=True)

    for _ in range(warmup):
        run()
    rates = []
    for _ in range(reps):
        t0 = time.perf_counter()
        run()
        # tokens generated (prefill excluded from the count, included in time)
        rates.append(batch * new / (time.perf_counter() - t0))
    return {"tokens_per_s": rates, "batch": batch, "prompt": prompt, "new_tokens": new}


def bench_sgemm(reps, n=2048):
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    rates = []
    for _ in range(reps):
        t0 = time.perf_counter()
        k = 5
        for _ in range(k):
            torch.mm(a, b)
        rates.append(k * 2 * n ** 3 / (time.perf_counter() - t0) / 1e9)
    return {"gflops": rates, "n": n}


def bench_membw(reps, nbytes=1 << 30):
    """GB/s of torch.sum over a float32 tensor of nbytes (read once)."""
    a = torch.ones(nbytes // 4)
    float(a.sum())
    rates = []
    for _ in range(reps):
        t0 = time.perf_counter()
        k = 3
        for _ in range(k):
            float(a.sum())
        rates.append(k * nbytes / (time.perf_counter() - t0) / 1e9)
    return {"gb_per_s": rates, "bytes": nbytes}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("task", choices=["train", "decode", "sgemm", "membw"])
    ap.add_argument("config", nargs="?", default="tiny", choices=sorted(CONFIGS))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--steps", type=int, default=0, help="train steps per rep (default by config)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch", type=int, default=1, help="decode batch")
    ap.add_argument("--prompt", type=int, default=16)
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    ap.add_argument("--foreach", action="store_true", help="AdamW foreach implementation")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--T", type=int, default=0, help="train: sequence length (default: the config's)")
    ap.add_argument("--B", type=int, default=0, help="train: batch size (default: the config's)")
    ap.add_argument("--D", type=int, default=0, help="train: n_embd (default: the config's)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    c = dict(CONFIGS[a.config])
    if a.T:
        c["T"] = a.T
        c["P"] = max(c["P"], a.T)
    if a.B:
        c["B"] = a.B
    if a.D:
        if a.D % c["H"]:
            ap.error("D must be a multiple of n_head %d" % c["H"])
        c["D"] = a.D
    if a.task == "train":
        steps = a.steps or {"tiny": 60, "small": 5, "dojo": 2, "gpt2s": 1}[a.config]
        res = bench_train(c, a.reps, steps, a.warmup, a.foreach)
        res["median"] = statistics.median(res["tokens_per_s"])
        res.update({"T": c["T"], "B": c["B"], "D": c["D"]})
    elif a.task == "decode":
        res = bench_decode(c, a.reps, a.batch, a.prompt, a.new, max(1, a.warmup // 3))
        res["median"] = statistics.median(res["tokens_per_s"])
    elif a.task == "membw":
        res = bench_membw(a.reps)
        res["median"] = statistics.median(res["gb_per_s"])
    else:
        res = bench_sgemm(a.reps)
        res["median"] = statistics.median(res["gflops"])
    res.update({
        "impl": "pytorch", "task": a.task, "config": a.config if a.task not in ("sgemm", "membw") else None,
        "peak_rss_mb": peak_rss_mb(), "torch": torch.__version__, "python": platform.python_version(),
        "torch_threads": torch.get_num_threads(),
        "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
        "blas": "MKL" if torch.backends.mkl.is_available() else "OpenBLAS (Debian)",
    })
    json.dump(res, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
