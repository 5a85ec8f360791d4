"""Reference notebook 6 in Python: MNIST, 10 classes, a 784-256-10 network.

The first 1000 training images of each digit, the whole test set; a sigmoid hidden layer,
softmax cross-entropy, weights normal(0, 0.01), full-batch gradient descent with lr 0.1
for 150 epochs on raw pixel values (0..255), as examples/mnist_multiclass.cpp and the
original notebook (train 0.961, test 0.9245). Needs $OPGRAPH_DATA/mnist.

    PYTHONPATH=build/python python3 examples/python/mnist_multiclass.py
"""
import argparse
import json
import os
import sys
import time

import opgraph as og

ap = argparse.ArgumentParser()
ap.add_argument("--epochs", type=int, default=150)
ap.add_argument("--seed", type=int, default=1)
args = ap.parse_args()
if not os.environ.get("OPGRAPH_DATA"):
    print("skipped: set OPGRAPH_DATA to the folder holding mnist/")
    sys.exit(77)

start = time.time()
data = og.load_data("mnist:per_class=1000")
print(f"train: {len(data.x)} images, test: {len(data.x_test)} images")

g = og.Graph()
x = g.input("x", ("N", 784))
y = g.input("y", ("N",))
h = og.nn.logistic(og.nn.dense(x, 256, "hidden", w=og.Init.normal(0, 0.01)))
logits = og.nn.dense(h, 10, "out", w=og.Init.normal(0, 0.01)).named("logits")
g.set_loss(og.nn.softmax_cross_entropy(logits, y).named("loss"))
model = og.Model(g, seed=args.seed)


def report(e):
    if e["epoch"] == 1 or e["epoch"] % 15 == 0:
        print(f"epoch {e['epoch']:3d}  loss {e['train_loss']:.4f}  accuracy {e['train_accuracy']:.4f}  "
              f"({1e3 * e['seconds']:.0f} ms)")


history = model.fit(data.x, data.y, optimizer="sgd:lr=0.1", epochs=args.epochs, shuffle=False, callback=report)
train = model.evaluate(data.x, data.y)
test = model.evaluate(data.x_test, data.y_test)
ms = 1e3 * sum(history.seconds) / args.epochs
print(f"train accuracy {train.accuracy:.4f}, test accuracy {test.accuracy:.4f}; {ms:.1f} ms per full-batch step")
print("confusion (rows: true digit, columns: predicted):")
print(test.confusion)
print(json.dumps({"example": "mnist_multiclass", "train_accuracy": train.accuracy, "test_accuracy": test.accuracy,
                  "ms_per_step": ms, "epochs": args.epochs, "seconds": time.time() - start}))
