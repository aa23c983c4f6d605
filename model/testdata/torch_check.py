#!/usr/bin/python3
"""Loads an smtrain checkpoint folder in PyTorch and computes its logits.

    /usr/bin/python3 model/testdata/torch_check.py CKPT_DIR BATCH.safetensors OUT.safetensors

BATCH holds I64 tensors "inputs", "positions", "parents" (B, T); OUT gets
"logits" (B, T, V) in float64, computed by the independent implementation
in reftorch.py from the checkpoint's model.safetensors and config.json
(float32 weights are widened to float64 first). Used by
model/reference_test.go to prove that a Go-written checkpoint loads in torch.
"""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch  # noqa: E402

import reftorch as R  # noqa: E402


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    ckpt, batch, out = sys.argv[1:]
    params, cfg = R.load_checkpoint(ckpt, torch.float64)
    b, _ = R.read_safetensors(batch)
    with torch.no_grad():
        logits = R.forward(params, cfg, b["inputs"], b["positions"], b["parents"])
    R.write_safetensors(out, {"logits": logits.to(torch.float64)}, {"config": str(cfg)})


if __name__ == "__main__":
    main()
