#!/usr/bin/env python3
"""Data-parallel training on one machine: what processes, shards and the exchange cost.

  OPGRAPH_DATA=... python3 bench/mpi_bench.py [--quick] [--build build] [--out bench/DISTRIBUTED.md]

For each workload (W1: 784-256-10 sigmoid, batches of 10 000; W5: 784-1024-1024-10 ReLU,
batches of 256; CNN: LeNet-5, batches of 64; MNIST, 10 000 training images), `opgraph
train` runs in these configurations, in rotating order, `rounds` times each:

  plain     1 process x 2 threads, no shards (ordinary training)
  shards    1 process x 2 threads, --shards 4 (the shard split alone: smaller GEMMs, the tree sum)
  np2       mpirun -np 2, 1 thread each, 4 shards, tree sum, overlapped with the backward pass
  np2-seq   the same with --no-overlap (exchange after the backward pass)
  np2-ar    the same with --allreduce (MPI's own sum; the bits depend on the process count)

and reports training seconds per epoch (as `opgraph train --json` measures them: the
epochs' training time, without loading and evaluation), the samples per second, and the
bytes each process sent per step (the communicator counts them). Writes the table to
--out naming the machine, and its figures to bench/distributed.json."""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from machine import machine  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--build", default=os.path.join(ROOT, "build"))
ap.add_argument("--out", default=os.path.join(HERE, "DISTRIBUTED.md"))
ap.add_argument("--json", default=None, help="the figures as JSON (default: beside --out, distributed.json)")
ap.add_argument("--quick", action="store_true", help="tiny sizes: checks that it runs, measures nothing")
ap.add_argument("--rounds", type=int, default=3)
args = ap.parse_args()
binary = os.path.join(args.build, "opgraph")
per_class = 20 if args.quick else 1000
epochs = 1 if args.quick else 2
rounds = 1 if args.quick else args.rounds

MODELS = {
    "W1": ("784-256-10 sigmoid, batch 10 000 (full batch of the 10 000 images)",
           "input x [N, 784]\nlabels y [N]\nparam W1 [784, 256] xavier\nparam b1 [256] zeros\n"
           "h = logistic(bias_add(matmul(x, W1), b1))\nparam W2 [256, 10] xavier\nparam b2 [10] zeros\n"
           "loss l = softmax_cross_entropy(bias_add(matmul(h, W2), b2), y)\n", 10000, "sgd:lr=0.5"),
    "W5": ("784-1024-1024-10 ReLU, batch 256",
           "input x [N, 784]\nlabels y [N]\nparam W1 [784, 1024] he\nparam b1 [1024] zeros\n"
           "h1 = relu(bias_add(matmul(x, W1), b1))\nparam W2 [1024, 1024] he\nparam b2 [1024] zeros\n"
           "h2 = relu(bias_add(matmul(h1, W2), b2))\nparam W3 [1024, 10] xavier\nparam b3 [10] zeros\n"
           "loss l = softmax_cross_entropy(bias_add(matmul(h2, W3), b3), y)\n", 256, "adam:lr=1e-3"),
    "CNN": ("LeNet-5 (examples/models/lenet.og), batch 64", None, 64, "adam:lr=1e-3"),
}
CONFIGS = {
    "plain": ([], []),
    "shards": ([], ["--shards", "4", "--threads", "2"]),
    "np2": (["mpirun", "--oversubscribe", "-np", "2"], []),
    "np2-seq": (["mpirun", "--oversubscribe", "-np", "2"], ["--no-overlap"]),
    "np2-ar": (["mpirun", "--oversubscribe", "-np", "2"], ["--allreduce"]),
}
env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_btl="self,vader")
if not env.get("OPGRAPH_DATA"):
    sys.exit("mpi_bench: set OPGRAPH_DATA (the folder holding mnist/)")

work = tempfile.mkdtemp(prefix="opgraph-mpi-bench-")
results = {}
for name, (what, text, batch, optim) in MODELS.items():
    model = os.path.join(ROOT, "examples", "models", "lenet.og") if text is None else os.path.join(work, name + ".og")
    if text is not None:
        open(model, "w").write(text)
    runs = {c: [] for c in CONFIGS}
    info = {}
    order = list(CONFIGS)
    for r in range(rounds):
        for c in order[r % len(order):] + order[:r % len(order)]:
            launcher, extra = CONFIGS[c]
            cmd = launcher + [binary, "train", model, "--data", f"mnist:per_class={per_class},scale=1/255",
                              "--batch", str(batch), "--epochs", str(epochs), "--optim", optim, "--seed", "1",
                              "--json", *extra]
            if c == "plain":
                cmd += ["--threads", "2"]
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=work)
            if out.returncode != 0:
                sys.exit(f"mpi_bench: {' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
            j = json.loads(out.stdout)
            runs[c].append(j["seconds"] / j["epochs_run"])
            info[c] = j
    samples = 10 * per_class
    row = {}
    for c in CONFIGS:
        j = info[c]
        med = statistics.median(runs[c])
        row[c] = {"seconds_per_epoch": med, "min": min(runs[c]), "max": max(runs[c]),
                  "samples_per_second": samples / med, "train_loss": j["train_loss"],
                  "bytes_per_step": j["bytes_sent"] / j["steps"] if j.get("steps") else 0.0}
    results[name] = {"what": what, "batch": batch, "configs": row}

lines = ["# Data-parallel training on one machine", "",
         "Written by `bench/mpi_bench.py`; do not edit by hand.", "",
         f"Machine: {machine()}. Open MPI (mpirun), shared-memory transport. MNIST, "
         f"{10 * per_class} training images, {epochs} epochs per run, median [min–max] of {rounds} runs per "
         "configuration, configurations in rotating order.", "",
         "Configurations: **plain** 1 process × 2 threads, ordinary training; **shards** 1 process × 2 threads, "
         "`--shards 4` (the split alone); **np2** `mpirun -np 2`, 1 thread each, 4 shards summed along the fixed "
         "tree, exchange overlapped with the backward pass; **np2-seq** the same, exchange after the backward pass "
         "(`--no-overlap`); **np2-ar** the same with `--allreduce`.", "",
         "| workload | configuration | s/epoch | samples/s | vs plain | bytes sent per step per process | train loss |",
         "|---|---|---|---|---|---|---|"]
for name, r in results.items():
    base = r["configs"]["plain"]["seconds_per_epoch"]
    for c, v in r["configs"].items():
        lines.append(f"| {name} {r['what']} | {c} | {v['seconds_per_epoch']:.3f} [{v['min']:.3f}–{v['max']:.3f}] | "
                     f"{v['samples_per_second']:.0f} | {base / v['seconds_per_epoch']:.2f}× | "
                     f"{v['bytes_per_step'] / 1e6:.3f} MB | {v['train_loss']:.6f} |")
lines.append("")
lines.append("The train loss column shows the bits: plain differs from the sharded runs only by rounding; shards, "
             "np2 and np2-seq are identical by construction (one tree, any process count); np2-ar sums in MPI's "
             "order.")

# A model on paper of N machines like this one (2 cores each), the global batch fixed (the
# same training as one machine: S = N shards, one per machine). Per step: compute
# t1 / N, where t1 is one machine's measured step (plain); communication of the fixed-tree
# exchange with one shard per machine: a reduce-scatter and an all-gather, each N - 1
# messages of P/N bytes per machine (P: the gradient bytes, what np2 sent per step), so
# t_comm = 2 (N - 1) alpha + 2 P (N - 1) / N / bandwidth, alpha = 20 us per message over
# Ethernet. Without overlap a step takes t1/N + t_comm; with perfect overlap max(t1/N, t_comm).
ALPHA = 20e-6
model_rows = []
for name, r in results.items():
    plain = r["configs"]["plain"]
    steps_per_epoch = -(-(10 * per_class) // r["batch"])
    t1 = plain["seconds_per_epoch"] / steps_per_epoch
    grad_bytes = r["configs"]["np2"]["bytes_per_step"]
    r["model"] = {"step_seconds_one_machine": t1, "gradient_bytes": grad_bytes, "rows": []}
    for gbit in (10, 25, 100):
        cells = []
        for n in (8, 16, 32, 64):
            comm = 2 * (n - 1) * ALPHA + 2 * grad_bytes * (n - 1) / n / (gbit * 1e9 / 8)
            seq, over = t1 / (t1 / n + comm), t1 / max(t1 / n, comm)
            r["model"]["rows"].append({"gbit": gbit, "machines": n, "speedup_sequential": seq, "speedup_overlap": over})
            cells.append(f"{seq:.1f}–{over:.1f}×")
        model_rows.append(f"| {name} | {t1 * 1e3:.2f} ms | {grad_bytes / 1e6:.2f} MB | {gbit} Gbit/s | " + " | ".join(cells) + " |")
lines += ["", "## Scaling on paper: 8 to 64 machines like this one", "",
          "The global batch fixed (the same training as one machine), one shard per machine; per step compute "
          "t1/N and the exchange 2(N−1)·α + 2·P·(N−1)/N / bandwidth (α = 20 µs per message); speed-up over one "
          "machine without overlap – with perfect overlap. t1 is one machine's measured step (plain), P the "
          "gradient bytes (what np2 sent per step). docs/distributed.md explains the model and its limits.", "",
          "| workload | t1 (one machine) | P | network | 8 | 16 | 32 | 64 |", "|---|---|---|---|---|---|---|---|",
          *model_rows]
if not args.quick:
    open(args.out, "w").write("\n".join(lines) + "\n")
    path = args.json or os.path.join(os.path.dirname(args.out), "distributed.json")
    json.dump({"machine": machine(), "results": results}, open(path, "w"), indent=1)
print("\n".join(lines))
