#!/usr/bin/env python3
"""What the Python module costs: the same work from Python and from C++, in one run.

  PYTHONPATH=build/python python3 bench/python_bench.py [--quick] [--out bench/PYTHON.md]

1. The XOR loop of examples/xor_plan.cpp on a compiled plan: build/bench/xor_loop in C++,
   and the same loop in Python. forward() + backward() alone: the difference per step is
   the module's overhead (target: at most 3 us). With the update w -= lr * grad written in
   NumPy through the views of the parameters and gradients: what NumPy adds besides.
2. MNIST epochs (examples/models/mnist_adam.og, batch 128, Adam): model.fit from Python
   against `opgraph train`, the same model, data, seed and settings; the epochs' training
   seconds as each reports them (target: within 5 %). Needs $OPGRAPH_DATA.

Writes the table to --out, naming the machine, and its figures to bench/python.json (which
scripts/figures quotes in the docs)."""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

import opgraph as og

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from machine import machine  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--build", default=os.path.join(ROOT, "build"))
ap.add_argument("--out", default=os.path.join(HERE, "PYTHON.md"))
ap.add_argument("--json", default=None, help="the figures as JSON (default: beside --out, python.json)")
ap.add_argument("--quick", action="store_true", help="tiny sizes: checks that it runs, measures nothing")
ap.add_argument("--threads", type=int, default=0)
args = ap.parse_args()
steps, repeats, epochs = (200, 3, 1) if args.quick else (20000, 7, 3)
og.set_threads(args.threads)


def python_xor_loop(update):
    g = og.Graph()
    x = g.input("x", ("N", 2))
    y = g.input("y", ("N", 1))
    h = og.nn.logistic(og.nn.dense(x, 2, "hidden"))
    p = og.nn.logistic(og.nn.dense(h, 1, "out")).named("p")
    g.set_loss(og.nn.binary_cross_entropy(p, y).named("loss"))
    model = og.Model(g, seed=0)
    plan = model.compile(batch=4)
    plan.forward({"x": np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32),
                  "y": np.array([[0], [1], [1], [0]], np.float32)})
    pairs = [(w, plan.grads[name]) for name, w in model.params.items()]
    lr = np.float32(0.3)
    forward, backward = plan.forward, plan.backward
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        if update:
            for _ in range(steps):
                forward()
                backward()
                for w, gr in pairs:
                    w -= lr * gr
        else:
            for _ in range(steps):
                forward()
                backward()
        times.append((time.perf_counter() - t0) / steps * 1e6)
    return sorted(times)[len(times) // 2]


out = subprocess.run([os.path.join(args.build, "bench", "xor_loop"), str(steps), str(repeats)], check=True,
                     capture_output=True, text=True).stdout
cpp_passes, cpp_whole = (float(v) for v in out.split())
py_passes, py_whole = python_xor_loop(False), python_xor_loop(True)
figures = {"machine": machine(), "threads": og.threads(), "quick": args.quick, "xor_cpp_us": cpp_passes,
           "xor_python_us": py_passes, "xor_update_cpp_us": cpp_whole, "xor_update_python_us": py_whole}
rows = [("XOR: plan.forward() + plan.backward(), us per step", f"{cpp_passes:.2f}", f"{py_passes:.2f}",
         f"+{py_passes - cpp_passes:.2f} us", "at most +3 us", "met" if py_passes - cpp_passes <= 3 else "missed"),
        ("XOR: the same and w -= lr * grad on 4 parameters (NumPy in Python, a C++ loop in C++), us per step",
         f"{cpp_whole:.2f}", f"{py_whole:.2f}", f"+{py_whole - cpp_whole:.2f} us", "(what NumPy adds)", "")]
print(f"xor: forward+backward C++ {cpp_passes:.2f} us, Python {py_passes:.2f} us; with the update C++ "
      f"{cpp_whole:.2f} us, Python {py_whole:.2f} us", flush=True)

if os.environ.get("OPGRAPH_DATA"):
    spec = "mnist:scale=1/255" + (",limit=2000" if args.quick else "")
    model_file = os.path.join(ROOT, "examples", "models", "mnist_adam.og")
    cli = subprocess.run([os.path.join(args.build, "opgraph"), "train", model_file, "--data", spec, "--optim",
                          "adam:lr=1e-3", "--batch", "128", "--epochs", str(epochs), "--seed", "1", "--json",
                          "--threads", str(og.threads())], check=True, capture_output=True, text=True)
    cli_seconds = json.loads(cli.stdout.strip().splitlines()[-1])["seconds"]
    data = og.load_data(spec)
    model = og.load(model_file, seed=1)
    t0 = time.perf_counter()
    history = model.fit(data.x, data.y, optimizer="adam:lr=1e-3", batch=128, epochs=epochs, seed=1)
    wall = time.perf_counter() - t0
    py_seconds = sum(history.seconds)
    ratio = py_seconds / cli_seconds
    figures.update({"mnist_epochs": epochs, "mnist_cli_s": cli_seconds / epochs, "mnist_python_s": py_seconds / epochs,
                    "mnist_ratio": ratio})
    rows.append((f"MNIST 60k, mnist_adam.og, batch 128: s per epoch (mean of {epochs})", f"{cli_seconds / epochs:.3f}",
                 f"{py_seconds / epochs:.3f}", f"{100 * (ratio - 1):+.1f} %", "within 5 %",
                 "met" if abs(ratio - 1) <= 0.05 else "missed"))
    print(f"mnist: opgraph train {cli_seconds / epochs:.3f} s, model.fit {py_seconds / epochs:.3f} s per epoch "
          f"(fit() wall clock {wall:.2f} s for {epochs} epochs)", flush=True)
else:
    print("mnist: skipped (set OPGRAPH_DATA)")

lines = ["# The Python module against C++", "",
         "Written by `PYTHONPATH=build/python python3 bench/python_bench.py`; do not edit by hand.", "",
         f"Machine: {machine()}; {og.threads()} threads; "
         f"{'--quick: tiny sizes, not a measurement' if args.quick else f'XOR: median of {repeats} runs of {steps} steps'}.",
         "", "| work | C++ | Python | difference | target | |", "|---|---|---|---|---|---|"]
lines += ["| " + " | ".join(r) + " |" for r in rows]
with open(args.out, "w") as f:
    f.write("\n".join(lines) + "\n")
json_path = args.json or os.path.join(os.path.dirname(os.path.abspath(args.out)), "python.json")
with open(json_path, "w") as f:
    json.dump(figures, f, indent=1, sort_keys=True)
    f.write("\n")
print(f"wrote {args.out} and {json_path}")
