#!/usr/bin/python3
"""Independent PyTorch (autograd, float64) reference for smtrain's objectives.

Writes torch_golden.json next to this file: a random transition table, the
logits, and for each objective/config the loss, components and the gradient
d loss / d logits computed by autograd from the DESIGN.md 4 formulas.
Regenerate with: /usr/bin/python3 objective/testdata/torch_ref.py
"""
import json, math, os, random
import torch

torch.set_default_dtype(torch.float64)
rng = random.Random(1234)
torch.manual_seed(1234)

B, T, V, BK = 3, 10, 7, 2
lengths = [rng.randint(6, T) for _ in range(B)]
allowed = [[rng.random() < 0.6 for _ in range(T)] for _ in range(B)]
trans = []  # state, action, next, done, t, set, seq
for b in range(B):
    s = rng.randrange(lengths[b])
    n = rng.randint(3, 7)
    st = "D" if b != 1 else "G"
    for t in range(n):
        done = (t == n - 1) and b != 2  # sequence 2 is cut off
        a = rng.randrange(V)
        if t % 2 == 1 and allowed[b][s]:
            a = BK  # a trained <bkspc> where it is allowed
        if a == BK and not allowed[b][s]:
            a = 3
        nxt = -1 if done else rng.randrange(lengths[b])
        trans.append([b * T + s, a, b * T + nxt if nxt >= 0 else -1, done, t, st, b])
        s = nxt
        if done:
            break
# a second D set member in sequence 0 to mix sets within rows
L0 = (torch.randn(B * T, V) * 1.5)
# Move a few r into the bounded domains: raise some action logits.
for i, tr in enumerate(trans):
    if i % 3 == 0:
        L0[tr[0], tr[1]] += 3.0


def V_of(L, row):
    b, j = divmod(row, T)
    x = L[row]
    if not allowed[b][j]:
        x = torch.cat([x[:BK], x[BK + 1:]])
    return torch.logsumexp(x, 0)


def losses(name, cfg, lam, L):
    g, c, eps = cfg["gamma"], cfg["c"], cfg["clamp_eps"]
    D = [tr for tr in trans if tr[5] == "D"]
    G = [tr for tr in trans if tr[5] == "G"]
    w = lambda tr: 1.0 if cfg["weighting"] == "uniform" else g ** tr[4]
    def E(X, f):
        den = sum(w(tr) for tr in X)
        if den == 0:
            return None
        return sum(w(tr) * f(tr) for tr in X) / den
    def Emix(f):
        d, gg = E(D, f), E(G, f)
        if d is not None and gg is not None:
            return 0.5 * d + 0.5 * gg
        if d is not None:
            return d
        if gg is not None:
            return gg
        return torch.zeros(())
    vnext = lambda tr: torch.zeros(()) if tr[3] else V_of(L, tr[2])
    r = lambda tr: L[tr[0], tr[1]] - g * vnext(tr)
    nll = sum(V_of(L, tr[0]) - L[tr[0], tr[1]] for tr in D) / len(D)
    comps = {"nll": nll}
    if name in ("mle", "bc"):
        if name == "bc":
            comps["bc"] = nll
        return nll, comps
    value = lambda tr: V_of(L, tr[0]) - g * vnext(tr)
    val = E(D, value) if cfg["value_on"] == "data" else Emix(value)
    sq = torch.zeros(())
    if name == "chi2mix":
        lin = -E(D, r)
        sq = c * Emix(lambda tr: r(tr) ** 2)
    elif name == "chi2":
        lin = -E(D, r)
        sq = c * E(D, lambda tr: r(tr) ** 2)
    else:
        lo, hi = -math.inf, math.inf
        if name == "kl":
            phi = lambda x: -torch.exp(-(x + 1))
        elif name == "js":
            phi = lambda x: torch.log(2 - torch.exp(-x)); lo = -math.log(2) + eps
        elif name == "hellinger":
            phi = lambda x: x / (1 + x); lo = -1 + eps
        elif name == "tv":
            phi = lambda x: x; lo, hi = -0.5 + eps, 0.5 - eps
        def phic(tr):
            x = r(tr)
            if x.item() < lo:
                return phi(torch.tensor(lo))  # constant: no gradient through phi
            if x.item() > hi:
                return phi(torch.tensor(hi))
            return phi(x)
        lin = -E(D, phic)
    comps.update({"bc": nll, "linear": lin, "square": sq, "value": val})
    return (1 - lam) * nll + lam * (lin + sq + val), comps


cfgs = [
    {"gamma": 0.998, "c": 0.25, "weighting": "discounted", "value_on": "mix", "clamp_eps": 1e-3},
    {"gamma": 0.3, "c": 0.7, "weighting": "uniform", "value_on": "data", "clamp_eps": 1e-2},
]
cases = []
for name in ["mle", "bc", "chi2mix", "chi2", "kl", "js", "hellinger", "tv"]:
    for ci, cfg in enumerate(cfgs):
        lam = [0.5, 0.8][ci]
        L = L0.clone().requires_grad_(True)
        loss, comps = losses(name, cfg, lam, L)
        loss.backward()
        cases.append({"name": name, "config": cfg, "lambda": lam, "loss": loss.item(),
                      "components": {k: float(v) for k, v in comps.items()},
                      "grad": L.grad.flatten().tolist()})
out = {"B": B, "T": T, "V": V, "bkspc": BK, "lengths": lengths,
       "allowed": [x for row in allowed for x in row],
       "trans": [[tr[0], tr[1], tr[2], tr[3], tr[4], 0 if tr[5] == "D" else 1, tr[6]] for tr in trans],
       "logits": L0.flatten().tolist(), "cases": cases,
       "generator": "torch " + torch.__version__}
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_golden.json"), "w") as f:
    json.dump(out, f)
print(len(trans), "transitions,", len(cases), "cases")
