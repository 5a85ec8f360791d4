"""Reference notebook 4a in Python: a softmax perceptron on blobs, gradients checked.

500 points around 3 centres in 2-D, 40 % held out; a single layer (2 -> 3, softmax
cross-entropy) trained one sample at a time (SGD, lr 0.01), in f64. Every 50 steps the
analytic gradient of the live parameters is compared with central differences on a
training sample (model.gradcheck); the worst relative error over the run is reported.

    PYTHONPATH=build/python python3 examples/python/blobs.py
"""
import argparse
import json

import numpy as np

import opgraph as og

ap = argparse.ArgumentParser()
ap.add_argument("--epochs", type=int, default=10)
ap.add_argument("--seed", type=int, default=1)
args = ap.parse_args()

data = og.load_data(f"blobs:n=500,centers=3,dims=2,test=0.4,stratify=false,seed={args.seed}")
g = og.Graph()
x = g.input("x", ("N", 2))
y = g.input("y", ("N",))
logits = og.nn.dense(x, 3, "perceptron").named("logits")
g.set_loss(og.nn.softmax_cross_entropy(logits, y).named("loss"))
model = og.Model(g, seed=args.seed, dtype="float64")

X, Y = data.x.astype(np.float64), data.y.astype(np.float64)
worst, checks = 0.0, 0
opt = og.Optimizer("sgd:lr=0.01")
for epoch in range(args.epochs):
    # One epoch at a time, so that the check runs between steps on the live parameters.
    order = np.random.default_rng(args.seed + epoch).permutation(len(X))
    for start in range(0, len(X), 50):
        rows = order[start:start + 50]
        model.fit(X[rows], Y[rows], optimizer=opt, epochs=1, batch=1, shuffle=False)
        r = rows[-1]  # the sample of the last step
        check = model.gradcheck({"x": X[r:r + 1], "y": Y[r:r + 1]})
        err = check.max_error if check.failure == "" else float("inf")
        worst = err if not err <= worst else worst  # NaN wins
        checks += 1
    e = model.evaluate(X, Y)
    print(f"epoch {epoch + 1:2d}  loss {e.loss:.4f}  accuracy {e.accuracy:.4f}")

train = model.evaluate(X, Y)
test = model.evaluate(data.x_test.astype(np.float64), data.y_test.astype(np.float64))
print(f"train accuracy {train.accuracy:.4f}, test accuracy {test.accuracy:.4f} ({test.samples} points)")
print(f"{checks} gradient checks during training, worst relative error {worst:.2e}")
print(json.dumps({"example": "blobs", "train_accuracy": train.accuracy, "test_accuracy": test.accuracy,
                  "gradient_checks": checks, "worst_gradient_error": worst, "epochs": args.epochs}))
