"""Reference notebook 1 in Python: the logistic function and its derivative.

sigma(x) = 1 / (1 + exp(-x)) and sigma'(x) = sigma(x) (1 - sigma(x)), evaluated by an
opgraph plan over 2001 points in [-100, 100] (the derivative is the gradient of
sum(sigma(x)) with respect to the input), against NumPy's closed forms and against f64
central differences of the plan's own forward pass, as the JAX notebook compares
jax.grad with finite differences.

    PYTHONPATH=build/python python3 examples/python/logistic.py
"""
import json

import numpy as np

import opgraph as og

xs = np.linspace(-100.0, 100.0, 2001)

g = og.Graph()
x = g.input("x", ("N",))
s = og.nn.logistic(x).named("s")
g.set_loss(og.nn.sum(s).named("total"))
model = og.Model(g, dtype="float64")
plan = model.compile(batch=len(xs), keep=["s"], input_grads=["x"])

plan.forward({"x": xs})
plan.backward()
values = np.array(plan.value("s"))
slopes = np.array(plan.grad("x"))  # d(sum sigma)/dx_i = sigma'(x_i)

exact = 0.5 * (1.0 + np.tanh(0.5 * xs))  # sigma without overflow
value_error = np.max(np.abs(values - exact))
slope_error = np.max(np.abs(slopes - exact * (1.0 - exact)))

# Central differences of the plan's forward pass, one point at a time (h = 1e-5).
h = 1e-5
one = model.compile(batch=1, keep=["s"], backward=False)
fd = np.empty_like(xs)
for i, xi in enumerate(xs):
    one.forward({"x": np.array([xi + h])})
    up = float(one.value("s")[0])
    one.forward({"x": np.array([xi - h])})
    fd[i] = (up - float(one.value("s")[0])) / (2 * h)
fd_error = np.max(np.abs(slopes - fd))

print(f"sigma(0) = {values[1000]:.4f}, sigma'(0) = {slopes[1000]:.4f}")
print(f"sigma(-100) = {values[0]:.3e}, sigma(100) = {values[-1]:.6f}")
print(f"largest error over [-100, 100]: value {value_error:.1e}, derivative {slope_error:.1e} (closed forms), "
      f"{fd_error:.1e} (central differences)")
print(json.dumps({"example": "logistic", "points": len(xs), "value_error": value_error,
                  "derivative_error": slope_error, "finite_difference_error": fd_error,
                  "slope_at_0": float(slopes[1000])}))
