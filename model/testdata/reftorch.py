"""Independent PyTorch implementation of smtrain's GPT-2 policy, for tests.

Plain torch only (Debian python3-torch 1.13; no transformers, no
safetensors package): a few-line safetensors reader/writer and a functional
GPT-2 (HF tensor names and Conv1D layouts, pre-LN, tanh GELU, tied LM head)
with tree attention from parent pointers (DESIGN.md 3.1): each input
attends to itself and its ancestors; parent -1 marks a row's first input
and padding.

Used by gen_reference.py (writes the golden file) and torch_check.py (loads
a Go-written checkpoint and computes logits).
"""
import json
import math
import struct

import torch

_DTYPES = {
    "F64": (torch.float64, 8), "F32": (torch.float32, 4), "F16": (torch.float16, 2),
    "BF16": (torch.bfloat16, 2), "I64": (torch.int64, 8), "I32": (torch.int32, 4),
    "U8": (torch.uint8, 1), "BOOL": (torch.bool, 1),
}
_NAMES = {v[0]: k for k, v in _DTYPES.items()}


def read_safetensors(path):
    """Returns ({name: tensor}, metadata) of a safetensors file."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    if n > len(raw) - 8:
        raise ValueError(f"{path}: header length {n} past the end of the file")
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    data = raw[8 + n:]
    out = {}
    for name, e in header.items():
        dt, size = _DTYPES[e["dtype"]]
        b, end = e["data_offsets"]
        count = end - b
        if count != size * math.prod(e["shape"]) or end > len(data):
            raise ValueError(f"{path}: tensor {name}: bad data_offsets")
        buf = bytearray(data[b:end])
        t = torch.frombuffer(buf, dtype=dt) if count else torch.empty(0, dtype=dt)
        out[name] = t.reshape(e["shape"]).clone()
    return out, meta


def write_safetensors(path, tensors, metadata=None):
    """Writes {name: tensor} (insertion order) with optional metadata."""
    header = {}
    if metadata:
        header["__metadata__"] = metadata
    blobs, off = [], 0
    for name, t in tensors.items():
        t = t.detach().contiguous().cpu()
        b = t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.view(torch.int16).numpy().tobytes()
        header[name] = {"dtype": _NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def param_specs(cfg):
    """(name, shape) of every parameter in HF GPT-2 order."""
    D, V, P = cfg["n_embd"], cfg["vocab_size"], cfg["n_positions"]
    s = [("wte.weight", (V, D)), ("wpe.weight", (P, D))]
    for l in range(cfg["n_layer"]):
        h = f"h.{l}."
        s += [(h + "ln_1.weight", (D,)), (h + "ln_1.bias", (D,)),
              (h + "attn.c_attn.weight", (D, 3 * D)), (h + "attn.c_attn.bias", (3 * D,)),
              (h + "attn.c_proj.weight", (D, D)), (h + "attn.c_proj.bias", (D,)),
              (h + "ln_2.weight", (D,)), (h + "ln_2.bias", (D,)),
              (h + "mlp.c_fc.weight", (D, 4 * D)), (h + "mlp.c_fc.bias", (4 * D,)),
              (h + "mlp.c_proj.weight", (4 * D, D)), (h + "mlp.c_proj.bias", (D,))]
    s += [("ln_f.weight", (D,)), ("ln_f.bias", (D,))]
    return s


def ancestor_mask(parents):
    """parents (B, T) int -> bool (B, T, T): [b, i, j] = j is i or an ancestor of i."""
    B, T = parents.shape
    m = torch.zeros(B, T, T, dtype=torch.bool)
    for b in range(B):
        for i in range(T):
            j = i
            while j >= 0:
                m[b, i, j] = True
                j = int(parents[b, j])
    return m


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def forward(p, cfg, inputs, positions, parents):
    """Logits (B, T, V) of params p ({HF name: tensor}) on a tree batch."""
    B, T = inputs.shape
    D, H = cfg["n_embd"], cfg["n_head"]
    hd = D // H
    eps = cfg["layer_norm_epsilon"]
    mask = ancestor_mask(parents)[:, None, :, :]                     # (B, 1, T, T)
    x = p["wte.weight"][inputs] + p["wpe.weight"][positions]          # (B, T, D)
    for l in range(cfg["n_layer"]):
        h = f"h.{l}."
        a = layer_norm(x, p[h + "ln_1.weight"], p[h + "ln_1.bias"], eps)
        qkv = a @ p[h + "attn.c_attn.weight"] + p[h + "attn.c_attn.bias"]  # (B, T, 3D)
        q, k, v = qkv.split(D, dim=-1)
        q = q.view(B, T, H, hd).transpose(1, 2)                      # (B, H, T, hd)
        k = k.view(B, T, H, hd).transpose(1, 2)
        v = v.view(B, T, H, hd).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(hd)              # (B, H, T, T)
        att = att.masked_fill(~mask, float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, D)
        x = x + y @ p[h + "attn.c_proj.weight"] + p[h + "attn.c_proj.bias"]
        m = layer_norm(x, p[h + "ln_2.weight"], p[h + "ln_2.bias"], eps)
        m = gelu_tanh(m @ p[h + "mlp.c_fc.weight"] + p[h + "mlp.c_fc.bias"])  # (B, T, 4D)
        x = x + m @ p[h + "mlp.c_proj.weight"] + p[h + "mlp.c_proj.bias"]
    x = layer_norm(x, p["ln_f.weight"], p["ln_f.bias"], eps)
    return x @ p["wte.weight"].t()                                   # (B, T, V)


def load_checkpoint(folder, dtype=torch.float64):
    """Reads an smtrain/HF GPT-2 checkpoint folder: (params, cfg)."""
    with open(f"{folder}/config.json") as f:
        cfg = json.load(f)
    cfg.setdefault("layer_norm_epsilon", 1e-5)
    tensors, _ = read_safetensors(f"{folder}/model.safetensors")
    tensors = {k[len("transformer."):] if k.startswith("transformer.") else k: v for k, v in tensors.items()}
    p = {}
    for name, shape in param_specs(cfg):
        t = tensors[name]
        if tuple(t.shape) != tuple(shape):
            raise ValueError(f"{name}: shape {tuple(t.shape)}, want {shape}")
        p[name] = t.to(dtype)
    return p, cfg
