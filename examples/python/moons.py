"""Reference notebook 4b in Python: moons and circles, decision boundaries drawn.

1000 points each, 30 % held out; 2-16-2 networks with relu or tanh hidden units, softmax
cross-entropy, Adam (lr 0.01) on minibatches of 32 for 100 epochs, as
examples/moons_circles.cpp. With matplotlib installed (python3-matplotlib), the four
decision boundaries are drawn into --plot (default moons.png); without it the figure is
skipped and said so.

    PYTHONPATH=build/python python3 examples/python/moons.py --plot moons.png
"""
import argparse
import json

import numpy as np

import opgraph as og

ap = argparse.ArgumentParser()
ap.add_argument("--epochs", type=int, default=100)
ap.add_argument("--seed", type=int, default=1)
ap.add_argument("--plot", default="moons.png")
args = ap.parse_args()


def run(spec, hidden):
    data = og.load_data(f"{spec},test=0.3,stratify=false,seed={args.seed}")
    g = og.Graph()
    x = g.input("x", ("N", 2))
    y = g.input("y", ("N",))
    h = og.op(hidden, og.nn.dense(x, 16, "hidden"))
    g.set_loss(og.nn.softmax_cross_entropy(og.nn.dense(h, 2, "out").named("logits"), y).named("loss"))
    model = og.Model(g, seed=args.seed)
    model.fit(data.x, data.y, optimizer="adam:lr=0.01", epochs=args.epochs, batch=32, seed=args.seed)
    return model, data, model.evaluate(data.x, data.y).accuracy, model.evaluate(data.x_test, data.y_test).accuracy


results, panels = {}, []
for name, spec in (("moons", "moons:n=1000,noise=0.1"), ("circles", "circles:n=1000,noise=0.05,factor=0.5")):
    for hidden in ("relu", "tanh"):
        model, data, train, test = run(spec, hidden)
        print(f"{name:8s} {hidden}: train accuracy {train:.4f}, test accuracy {test:.4f}")
        results[f"{name}_{hidden}_test_accuracy"] = test
        panels.append((f"{name}, {hidden}: test {test:.3f}", model, data))

try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    print("matplotlib is not installed (apt-get install python3-matplotlib): no figure drawn")
    plotted = False
else:
    fig, axes = plt.subplots(1, 4, figsize=(16, 4))
    for ax, (title, model, data) in zip(axes, panels):
        lo, hi = data.x.min(axis=0) - 0.5, data.x.max(axis=0) + 0.5
        gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 200), np.linspace(lo[1], hi[1], 200))
        grid = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)
        p1 = model.predict(grid)[:, 1].reshape(gx.shape)  # the probability of class 1
        ax.contourf(gx, gy, p1, levels=20, cmap="RdBu_r", alpha=0.6)
        ax.contour(gx, gy, p1, levels=[0.5], colors="k", linewidths=1)
        ax.scatter(data.x_test[:, 0], data.x_test[:, 1], c=data.y_test, cmap="RdBu_r", s=8, edgecolors="k",
                   linewidths=0.3)
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(args.plot, dpi=80)
    print(f"decision boundaries drawn in {args.plot}")
    plotted = True
print(json.dumps({"example": "moons", **results, "plotted": plotted, "epochs": args.epochs}))
