"""A custom op in Python: softplus defined with NumPy, checked, then trained in a model.

og.custom_op registers forward and vjp written in NumPy (like jax.custom_vjp or
torch.autograd.Function); og.check runs the same contract checks as `opgraph check`
(gradient against central differences, f32 against f64, ...); the op then works in graphs
built in Python and in .og model files. Each call holds the GIL: the prototyping path
before writing the op in C++ (docs/adding-an-op.md).

    PYTHONPATH=build/python python3 examples/python/custom_op.py
"""
import json
import os
import tempfile

import numpy as np

import opgraph as og


@og.custom_op("py_softplus", doc="softplus(x) = log(1 + exp(x)), written in NumPy")
class Softplus:
    def forward(x):
        return np.logaddexp(0, x)

    def vjp(g, y, x):  # d softplus / dx = logistic(x)
        return g * 0.5 * (1 + np.tanh(0.5 * x))


report = og.check("py_softplus")
print(report)

# In a model file, exactly like a built-in op.
text = """
input x [N, 2]
labels y [N]
param W1 [2, 16]
param b1 [16] zeros
param W2 [16, 2]
param b2 [2] zeros
h = py_softplus(bias_add(matmul(x, W1), b1))
logits = bias_add(matmul(h, W2), b2)
loss xent = softmax_cross_entropy(logits, y)
"""
data = og.load_data("moons:n=1000,noise=0.1,test=0.3,seed=1")
accuracy = {}
with tempfile.TemporaryDirectory() as folder:
    # The same network with the built-in softplus, for comparison.
    for op in ("py_softplus", "softplus"):
        path = os.path.join(folder, op + ".og")
        with open(path, "w") as f:
            f.write(text.replace("py_softplus", op))
        model = og.load(path, seed=1)
        model.fit(data.x, data.y, optimizer="adam:lr=0.03", epochs=100, batch=32)
        accuracy[op] = model.evaluate(data.x_test, data.y_test).accuracy
print(f"moons, test accuracy: {accuracy['py_softplus']:.4f} with the Python softplus, "
      f"{accuracy['softplus']:.4f} with the built-in one")
gradient = next(c["measure"] for c in report.ops[0]["checks"] if c["property"] == "gradient")
print(json.dumps({"example": "custom_op", "check_passed": report.passed, "gradient_error": gradient,
                  "test_accuracy": accuracy["py_softplus"], "builtin_test_accuracy": accuracy["softplus"]}))
