#!/usr/bin/python3
"""Writes the golden reference state for model/reference_test.go.

Run from the repository root with Debian's torch:
    /usr/bin/python3 model/testdata/gen_reference.py

Outputs (deterministic for a given torch version):
  model/testdata/reference_tiny.safetensors
      params under HF names (float64), and under "ref.": the batch (inputs,
      positions, parents, targets), logits, loss, every parameter gradient
      ("ref.grad.<name>"), and for 5 AdamW steps the loss before each step
      and after the last ("ref.adamw.losses", 6 values) and the pre-clip
      gradient norms ("ref.adamw.gradnorms").
  model/testdata/hf_tiny/{config.json,model.safetensors}
      the same params as an HF-style checkpoint (float32, "transformer."
      prefix, attention buffers, tied lm_head.weight), for the Go loader.

AdamW as nanoGPT: lr 1e-2, betas (0.9, 0.95), eps 1e-8, weight decay 0.1 on
every parameter with >= 2 dimensions (all matmul weights and wte, wpe), none
on biases and layer-norm parameters; global-norm gradient clipping at 1.0.
"""
import json
import os
import sys

import torch

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reftorch as R  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CFG = {"n_layer": 2, "n_head": 2, "n_embd": 16, "n_positions": 32, "vocab_size": 48,
       "layer_norm_epsilon": 1e-5, "bkspc_token_id": 2, "eos_token_id": 1}
ADAMW = dict(lr=1e-2, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
CLIP = 1.0
STEPS = 5


def compile_row(prompt, actions, T, bk="<bk>"):
    """DESIGN.md 3.1 stack algorithm: (inputs, positions, parents) padded to T."""
    inputs, positions, parents, stack = [], [], [], []
    for tok in prompt:
        parents.append(stack[-1] if stack else -1)
        positions.append(len(stack))
        inputs.append(tok)
        stack.append(len(inputs) - 1)
    floor = len(stack)
    for a in actions:
        if a == bk:
            assert len(stack) > floor
            stack.pop()
            continue
        parents.append(stack[-1])
        positions.append(len(stack))
        inputs.append(a)
        stack.append(len(inputs) - 1)
    n = len(inputs)
    assert n <= T
    pad = T - n
    return inputs + [0] * pad, positions + [0] * pad, parents + [-1] * pad, n


def main():
    torch.manual_seed(1234)
    torch.set_default_dtype(torch.float64)
    B, T, V = 3, 8, CFG["vocab_size"]
    g = torch.Generator().manual_seed(20261125)
    rows = [
        # plain causal row (no backspace)
        compile_row([5, 7, 9], [11, 13, 17, 19, 23], T),
        # prompt p0 p1, actions a b c <bk> d <bk> <bk> e f: inputs p0 p1 a b c d e f,
        # positions 0 1 2 3 4 4 3 4, d's parent is b, e's parent is a.
        compile_row([3, 4], [30, 31, 32, "<bk>", 33, "<bk>", "<bk>", 34, 35], T),
        # short row with a backspace, then padding
        compile_row([6], [40, 41, "<bk>", 42, 43], T),
    ]
    inputs = torch.tensor([r[0] for r in rows], dtype=torch.int64)
    positions = torch.tensor([r[1] for r in rows], dtype=torch.int64)
    parents = torch.tensor([r[2] for r in rows], dtype=torch.int64)
    assert rows[1][1] == [0, 1, 2, 3, 4, 4, 3, 4] and rows[1][2] == [-1, 0, 1, 2, 3, 3, 2, 6]
    targets = torch.randint(0, V, (B, T), generator=g)
    for b, r in enumerate(rows):
        targets[b, r[3]:] = -1          # padding is not trained
    targets[0, 2] = -1                  # nor is one real input

    # Parameters: large enough scales that every term matters.
    params = {}
    for name, shape in R.param_specs(CFG):
        if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name == "ln_f.weight":
            t = 1.0 + 0.1 * torch.randn(shape, generator=g)
        elif name.endswith(".bias"):
            t = 0.05 * torch.randn(shape, generator=g)
        else:
            t = 0.2 * torch.randn(shape, generator=g)
        params[name] = t.requires_grad_(True)

    def loss_of(p):
        logits = R.forward(p, CFG, inputs, positions, parents)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), ignore_index=-1)
        return logits, loss

    logits, loss = loss_of(params)
    loss.backward()
    out = {name: t.detach().clone() for name, t in params.items()}
    out["ref.inputs"] = inputs
    out["ref.positions"] = positions
    out["ref.parents"] = parents
    out["ref.targets"] = targets
    out["ref.logits"] = logits.detach()
    out["ref.loss"] = loss.detach().reshape(())
    for name, t in params.items():
        out["ref.grad." + name] = t.grad.detach().clone()

    # AdamW steps (nanoGPT grouping and clipping) from the same start.
    decay = [t for t in params.values() if t.dim() >= 2]
    nodecay = [t for t in params.values() if t.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": ADAMW["weight_decay"]},
                             {"params": nodecay, "weight_decay": 0.0}],
                            lr=ADAMW["lr"], betas=ADAMW["betas"], eps=ADAMW["eps"], foreach=False)
    losses, norms = [], []
    for _ in range(STEPS):
        opt.zero_grad(set_to_none=True)
        _, l = loss_of(params)
        l.backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_(list(params.values()), CLIP)))
        losses.append(float(l))
        opt.step()
    with torch.no_grad():
        losses.append(float(loss_of(params)[1]))
    out["ref.adamw.losses"] = torch.tensor(losses)
    out["ref.adamw.gradnorms"] = torch.tensor(norms)

    meta = {"config": json.dumps(CFG), "adamw": json.dumps(dict(ADAMW, clip=CLIP, steps=STEPS)),
            "generator": "model/testdata/gen_reference.py", "torch": torch.__version__}
    R.write_safetensors(os.path.join(HERE, "reference_tiny.safetensors"), out, meta)

    # The same initial params as an HF-style float32 checkpoint folder.
    hf = os.path.join(HERE, "hf_tiny")
    os.makedirs(hf, exist_ok=True)
    P = CFG["n_positions"]
    ht = {}
    for name, _ in R.param_specs(CFG):
        ht["transformer." + name] = out[name].to(torch.float32)
        if name.endswith("attn.c_attn.weight"):
            layer = name.split(".")[1]
            ht[f"transformer.h.{layer}.attn.bias"] = torch.tril(torch.ones(P, P, dtype=torch.float32)).view(1, 1, P, P)
            ht[f"transformer.h.{layer}.attn.masked_bias"] = torch.tensor(-1e4, dtype=torch.float32)
    ht["lm_head.weight"] = out["wte.weight"].to(torch.float32)
    R.write_safetensors(os.path.join(hf, "model.safetensors"), ht, {"format": "pt"})
    hfcfg = {"activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"], "attn_pdrop": 0.1,
             "embd_pdrop": 0.1, "initializer_range": 0.02, "model_type": "gpt2", "n_ctx": P, "n_inner": None,
             "resid_pdrop": 0.1, "torch_dtype": "float32", "use_cache": True}
    hfcfg.update({k: v for k, v in CFG.items() if k != "bkspc_token_id"})
    hfcfg["bos_token_id"] = CFG["eos_token_id"]
    with open(os.path.join(hf, "config.json"), "w") as f:
        json.dump(hfcfg, f, indent=2, sort_keys=True)
        f.write("\n")
    print(f"loss {float(loss):.12f}; adamw losses {', '.join(f'{x:.6f}' for x in losses)}")


if __name__ == "__main__":
    main()
