#!/usr/bin/env python3
"""PyTorch on one workload at one thread count: the peer bench_suite compares against.

Mirrors workload_bench (same arguments, same JSON line, same data and initial weights,
see workloads.hpp), written as a PyTorch user writes it: nn.Linear layers in eager mode,
torch.optim.SGD, F.cross_entropy on logits.

    torch_bench.py --workload W1 --threads N [--mode time|verify|baseline|probe] ...

Threads: torch.set_num_threads sets the OpenMP pool, but Debian's torch does its GEMMs in
OpenBLAS (pthreads), which reads OPENBLAS_NUM_THREADS at load; bench_suite sets both, and
OPENBLAS_CORETYPE=SkylakeX on AVX-512 machines (Debian's OpenBLAS otherwise picks a
generic kernel there).
"""
import argparse
import json
import math
import sys
import time

# Workloads as in workloads.hpp: layers, hidden activation(s), output, batch, epoch rows,
# inference, unit, learning rate.
WORKLOADS = {
    "W1": ("mlp", [784, 256, 10], "logistic", "softmax_ce", 10000, 0, False, "ms/step", 0.1),
    "W2-64": ("mlp", [784, 256, 10], "logistic", "softmax_ce", 64, 60000, False, "s/epoch", 0.1),
    "W2-256": ("mlp", [784, 256, 10], "logistic", "softmax_ce", 256, 60000, False, "s/epoch", 0.1),
    "W3-xor": ("mlp", [2, 2, 1], "logistic", "sigmoid_bce", 4, 0, False, "us/step", 0.3),
    "W3-iris": ("mlp", [4, 8, 3], "logistic", "softmax_ce", 150, 0, False, "us/step", 0.1),
    "W4": ("mlp", [3, 3, 3, 3], "relu/logistic", "softmax_then_ce", 210, 0, False, "us/step", 0.1),
    "W5": ("mlp", [784, 1024, 1024, 10], "relu", "softmax_ce", 256, 0, False, "ms/step", 0.01),
    "W6": ("towers", [256, 256, 10], "relu", "softmax_ce", 256, 0, False, "ms/step", 0.01),
    "I1": ("mlp", [784, 256, 10], "logistic", "softmax_ce", 10000, 0, True, "ms/step", 0.0),
    "W7-64": ("lenet", [400, 120, 84, 10], "relu", "softmax_ce", 64, 0, False, "ms/step", 0.01),
    "W7-256": ("lenet", [400, 120, 84, 10], "relu", "softmax_ce", 256, 0, False, "ms/step", 0.01),
    "W8": ("transformer", [], "gelu", "softmax_ce", 32, 0, False, "ms/step", 0.01),
}
TOWERS = 4
# W8, as workloads.hpp: blocks, model width, heads, positions, MLP width, classes.
BLOCKS8, MODEL8, HEADS8, POSITIONS8, HIDDEN8, CLASSES8 = 2, 128, 4, 64, 512, 16
M64 = (1 << 64) - 1


def mix(np, seed, i):
    """splitmix64 of (seed << 32) ^ i, vectorised over the uint64 array i."""
    z = (np.uint64(seed << 32) ^ i) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def uniform(np, seed, n):
    """n floats in [0, 1), made a million at a time so that no large temporary adds to the RSS."""
    out = np.empty(n, dtype=np.float32)
    step = 1 << 20
    for b in range(0, n, step):
        bits = mix(np, seed, np.arange(b, min(n, b + step), dtype=np.uint64)) >> np.uint64(40)
        out[b:b + step] = bits.astype(np.float32) * np.float32(1.0 / 16777216.0)
    return out


def param_specs(kind, layers):
    """(name, rows, cols, seed, scale, constant) in workloads.hpp's order and seeds."""
    specs = []

    def weight(name, rows, cols, fan_in, fan_out):
        specs.append((name, rows, cols, 100 + len(specs), math.sqrt(6.0 / (fan_in + fan_out)), 0.0))

    def vector(name, n, constant=0.0):
        specs.append((name, n, 0, 0, 0.0, constant))

    def dense(name, n_in, n_out):
        weight(name + ".W", n_in, n_out, n_in, n_out)
        vector(name + ".b", n_out)

    def conv(name, n_in, n_out, k):
        weight(name + ".W", n_out, n_in * k * k, n_in * k * k, n_out * k * k)
        vector(name + ".b", n_out)

    if kind == "mlp":
        for l in range(len(layers) - 1):
            dense("l%d" % l, layers[l], layers[l + 1])
    elif kind == "lenet":
        conv("c1", 1, 6, 5)
        conv("c2", 6, 16, 5)
        for l in range(len(layers) - 1):
            dense("l%d" % l, layers[l], layers[l + 1])
    elif kind == "transformer":
        d = MODEL8
        for b in range(BLOCKS8):
            p = "b%d" % b
            vector(p + ".ln1.g", d, 1.0)
            vector(p + ".ln1.b", d)
            for m in (".Wq", ".Wk", ".Wv", ".Wo"):
                weight(p + m, d, d, d, d)
            vector(p + ".ln2.g", d, 1.0)
            vector(p + ".ln2.b", d)
            weight(p + ".W1", d, HIDDEN8, d, HIDDEN8)
            vector(p + ".c1", HIDDEN8)
            weight(p + ".W2", HIDDEN8, d, HIDDEN8, d)
            vector(p + ".c2", d)
        vector("ln.g", d, 1.0)
        vector("ln.b", d)
        dense("out", d, CLASSES8)
    else:
        for t in range(TOWERS):
            dense("t%da" % t, layers[0], layers[1])
            dense("t%db" % t, layers[1], layers[1])
        dense("out", layers[1], layers[2])
    return specs


def param_values(np, spec):
    """A parameter's initial values, float32, shape [rows, cols] (or [rows])."""
    name, rows, cols, seed, scale, constant = spec
    n = rows * cols if cols else rows
    if scale == 0.0:
        v = np.full(n, constant, dtype=np.float32)
    else:
        v = ((2.0 * uniform(np, seed, n).astype(np.float64) - 1.0) * scale).astype(np.float32)
    return v.reshape(rows, cols) if cols else v


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workload")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--mode", default="time", choices=["time", "verify", "baseline", "probe"])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--min-seconds", type=float, default=0.2)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()

    import numpy as np
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(a.threads)
    if a.mode == "probe":
        print(json.dumps({"torch": torch.__version__}))
        return 0
    if a.mode == "baseline":
        torch.ones(1 << 16).mul_(2.0)
        print(json.dumps({"mode": "baseline", "threads": a.threads}))
        return 0

    kind, layers, hidden, output, batch, epoch_rows, inference, unit, lr = WORKLOADS[a.workload]
    if a.quick and epoch_rows:
        epoch_rows = 4 * batch
    rows = epoch_rows or batch
    if kind == "transformer":
        features, per_sample, classes = POSITIONS8 * MODEL8, POSITIONS8, CLASSES8
    else:
        features, per_sample = (784 if kind == "lenet" else layers[0]), 1
        classes = 2 if layers[-1] == 1 else layers[-1]
    x_all = torch.from_numpy(uniform(np, 1, rows * features).reshape(rows, features))
    labels = torch.from_numpy((mix(np, 2, np.arange(rows * per_sample, dtype=np.uint64)) %
                               np.uint64(classes)).astype(np.int64))
    if per_sample > 1:
        labels = labels.reshape(rows, per_sample)

    specs = param_specs(kind, layers)
    values = {spec[0]: param_values(np, spec) for spec in specs}

    def linear(name):
        """nn.Linear from our [in, out] weight (its weight is [out, in]: the transpose)."""
        w = values[name + ".W"]
        lin = torch.nn.Linear(w.shape[0], w.shape[1])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(w.T.copy()))
            lin.bias.zero_()
        return lin

    def conv2d(name, n_in, n_out, pad):
        c = torch.nn.Conv2d(n_in, n_out, 5, padding=pad)
        with torch.no_grad():
            c.weight.copy_(torch.from_numpy(values[name + ".W"].reshape(n_out, n_in, 5, 5)))
            c.bias.zero_()
        return c

    if kind == "transformer":
        # Raw tensors, the way attention is written by hand in PyTorch 1.13 (no fused kernel).
        tensors = {name: torch.from_numpy(v.copy()).requires_grad_() for name, v in values.items()}
        params = [tensors[spec[0]] for spec in specs]
    elif kind == "lenet":
        convs = [conv2d("c1", 1, 6, 2), conv2d("c2", 6, 16, 0)]
        linears = [linear("l%d" % l) for l in range(len(layers) - 1)]
        params = [p for m in convs + linears for p in m.parameters()]
    else:
        # Parameters as nn.Linear layers.
        names = sorted({spec[0][:-2] for spec in specs}, key=lambda n: [s[0] for s in specs].index(n + ".W"))
        linears = [linear(n) for n in names]
        params = [p for lin in linears for p in lin.parameters()]
    opt = torch.optim.SGD(params, lr=lr) if not inference else None

    def act(l, v):
        name = hidden if hidden != "relu/logistic" else ("relu" if l == 0 else "logistic")
        return torch.relu(v) if name == "relu" else torch.sigmoid(v)

    def transformer(xb):
        t = tensors
        d, heads = MODEL8, HEADS8
        dh = d // heads
        h = xb.reshape(xb.shape[0], POSITIONS8, d)
        n = h.shape[0]

        def split(v):
            return v.reshape(n, POSITIONS8, heads, dh).transpose(1, 2)

        for b in range(BLOCKS8):
            p = "b%d" % b
            n1 = F.layer_norm(h, (d,), t[p + ".ln1.g"], t[p + ".ln1.b"], 1e-5)
            q, k, v = split(n1 @ t[p + ".Wq"]), split(n1 @ t[p + ".Wk"]), split(n1 @ t[p + ".Wv"])
            att = torch.softmax((q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(dh)), dim=-1) @ v
            h = h + att.transpose(1, 2).reshape(n, POSITIONS8, d) @ t[p + ".Wo"]
            n2 = F.layer_norm(h, (d,), t[p + ".ln2.g"], t[p + ".ln2.b"], 1e-5)
            h = h + F.gelu(n2 @ t[p + ".W1"] + t[p + ".c1"]) @ t[p + ".W2"] + t[p + ".c2"]
        out = F.layer_norm(h, (d,), t["ln.g"], t["ln.b"], 1e-5) @ t["out.W"] + t["out.b"]
        return out.reshape(-1, CLASSES8)

    def forward(xb, yb):
        if kind == "transformer":
            out = transformer(xb)
            return F.cross_entropy(out, yb.reshape(-1)), out
        if kind == "lenet":
            h = xb.reshape(xb.shape[0], 1, 28, 28)
            for c in convs:
                h = F.max_pool2d(torch.relu(c(h)), 2)
            h = h.flatten(1)
            for l, lin in enumerate(linears):
                h = lin(h)
                if l + 1 < len(linears):
                    h = torch.relu(h)
            return F.cross_entropy(h, yb), h
        if kind == "mlp":
            h = xb
            for l, lin in enumerate(linears):
                h = lin(h)
                if l + 1 < len(linears):
                    h = act(l, h)
            out = h
        else:
            s = None
            for t in range(TOWERS):
                v = torch.relu(linears[2 * t + 1](torch.relu(linears[2 * t](xb))))
                s = v if s is None else s + v
            out = linears[-1](s)
        if output == "softmax_ce":
            return F.cross_entropy(out, yb), out
        if output == "softmax_then_ce":
            p = torch.softmax(out, dim=1)
            return -torch.log(p.gather(1, yb[:, None]).clamp_min(1e-7)).mean(), out
        p = torch.sigmoid(out)
        return F.binary_cross_entropy(p, yb[:, None].to(p.dtype)), out

    xb0, yb0 = x_all[:batch], labels[:batch]

    def step():
        if inference:
            with torch.no_grad():
                loss, _ = forward(xb0, yb0)
            return loss.item()
        loss, _ = forward(xb0, yb0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    def epoch(e):
        g = torch.Generator().manual_seed(e + 1)
        perm = torch.randperm(rows, generator=g)
        correct = 0
        loss_sum = 0.0
        for b in range(0, rows, batch):
            idx = perm[b:b + batch]
            xb, yb = x_all.index_select(0, idx), labels.index_select(0, idx)
            loss, out = forward(xb, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(idx)
            correct += int((out.argmax(1) == yb).sum())
        return loss_sum, correct

    if a.mode == "verify":
        losses = [step() for _ in range(a.steps)]
        print(json.dumps({"mode": "verify", "workload": a.workload, "contender": "pytorch", "threads": a.threads,
                          "losses": losses}))
        return 0

    scale = {"ms/step": 1e3, "us/step": 1e6, "s/epoch": 1.0}[unit]
    values = []
    per_rep = 1
    reps = 1 if a.quick else a.reps
    if epoch_rows:
        epoch(-1)
        for r in range(reps):
            t0 = time.perf_counter()
            epoch(r)
            values.append((time.perf_counter() - t0) * scale)
    else:
        t0 = time.perf_counter()
        warm = 0
        while warm < 3 or (not a.quick and time.perf_counter() - t0 < 0.3):
            step()
            warm += 1
        one = (time.perf_counter() - t0) / warm
        per_rep = 1 if a.quick else max(1, math.ceil(a.min_seconds / one))
        for r in range(reps):
            t1 = time.perf_counter()
            for _ in range(per_rep):
                step()
            values.append((time.perf_counter() - t1) / per_rep * scale)
    print(json.dumps({"mode": "time", "workload": a.workload, "contender": "pytorch", "threads": a.threads,
                      "unit": unit, "steps_per_rep": per_rep, "values": values}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
