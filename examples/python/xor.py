"""Reference notebook 2 in Python: XOR with plain gradient descent written out.

The 2-2-1 sigmoid network of examples/xor_plan.cpp, compiled once into a plan; each step
runs forward() and backward() and updates every parameter in place through the NumPy
views of model.params (w -= lr * grad): the plan reads the same memory, nothing is
copied. The same seed and learning rate as the C++ example, so the same loss curve.

    PYTHONPATH=build/python python3 examples/python/xor.py
"""
import argparse
import json

import numpy as np

import opgraph as og

ap = argparse.ArgumentParser()
ap.add_argument("--epochs", type=int, default=100000)
ap.add_argument("--seed", type=int, default=0)
args = ap.parse_args()

g = og.Graph()
x = g.input("x", ("N", 2))
y = g.input("y", ("N", 1))
h = og.nn.logistic(og.nn.dense(x, 2, "hidden"))
p = og.nn.logistic(og.nn.dense(h, 1, "out")).named("p")
g.set_loss(og.nn.binary_cross_entropy(p, y).named("loss"))
model = og.Model(g, seed=args.seed)

X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
Y = np.array([[0], [1], [1], [0]], dtype=np.float32)
plan = model.compile(batch=4, keep=["p"])
plan.forward({"x": X, "y": Y})  # bound once, not copied
params = model.params           # name -> view of the model's own buffers
grads = plan.grads              # name -> view of the plan's gradient buffers

lr = np.float32(0.3)
epoch = 0
for epoch in range(args.epochs):
    plan.forward()
    loss = plan.loss
    if not np.isfinite(loss) or loss <= 0.01:
        break
    plan.backward()
    for name, w in params.items():
        w -= lr * grads[name]

out = plan.value("p").ravel()
for (a, b), o in zip(X, out):
    print(f"xor({a:g}, {b:g}) = {o:.4f}")
print(f"loss {loss:.5f} after {epoch} steps")
worst = float(np.max(np.abs(out - Y.ravel())))
print(json.dumps({"example": "xor", "loss": float(loss), "epochs": epoch, "worst_output_error": worst}))
