"""The opgraph package as `cmake --install` left it: imported from the install folder
alone (not the build tree), it finds its libopgraph and trains XOR.
    python3 python_package.py SITE_PACKAGES"""
import os
import sys

site = os.path.abspath(sys.argv[1])
sys.path.insert(0, site)
import numpy as np  # noqa: E402

import opgraph as og  # noqa: E402

assert os.path.abspath(og.__file__).startswith(site), og.__file__
g = og.Graph()
x = g.input("x", ("N", 2))
y = g.input("y", ("N", 1))
h = og.nn.logistic(og.nn.dense(x, 2, "hidden"))
g.set_loss(og.nn.binary_cross_entropy(og.nn.logistic(og.nn.dense(h, 1, "out")), y))
model = og.Model(g, seed=0)
X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
history = model.fit(X, np.array([0, 1, 1, 0], np.float32), optimizer="sgd:lr=0.3", epochs=20000, target_loss=0.01)
assert history.reached_target, history.train_loss[-1]
print(f"opgraph from {os.path.dirname(og.__file__)}: XOR to loss {history.train_loss[-1]:.4f} in {len(history)} epochs")
