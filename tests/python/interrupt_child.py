"""Trains for far longer than the test waits, so that Ctrl-C lands mid-fit; run by
test_interrupt.py, which sends SIGINT once this prints 'training'."""
import json
import sys
import threading

import numpy as np

import opgraph as og

g = og.Graph()
x = g.input("x", ("N", 64))
y = g.input("y", ("N",))
h = og.nn.relu(og.nn.dense(x, 256, "hidden"))
g.set_loss(og.nn.softmax_cross_entropy(og.nn.dense(h, 10, "out"), y))
model = og.Model(g, seed=1)
rng = np.random.default_rng(0)
X = rng.standard_normal((4096, 64)).astype(np.float32)
Y = rng.integers(0, 10, 4096).astype(np.float32)

# No callback: Python code run between epochs would deliver the signal by itself, and the
# test is of the check the training loop makes after every step. A timer thread says when
# fit is running (fit releases the GIL, so the thread can print).
optimizer = og.Optimizer("sgd:lr=0.01")
threading.Timer(1.0, lambda: print("training", flush=True)).start()
try:
    model.fit(X, Y, optimizer=optimizer, epochs=100000, batch=8)
    interrupted = False
except KeyboardInterrupt:
    interrupted = True
finite = all(np.isfinite(v).all() for v in model.params.values())
after = model.evaluate(X, Y)  # the model still works after the interrupt
print(json.dumps({"interrupted": interrupted, "steps": optimizer.steps, "params_finite": bool(finite),
                  "loss_after": after.loss}))
sys.exit(0)
