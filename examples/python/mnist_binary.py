"""Reference notebook 5 in Python: MNIST 5 versus 8 with a 784-256-1 network.

The first 1000 training images of each digit, every 5 and 8 of the test set; sigmoid
hidden and output units, binary cross-entropy, weights normal(0, 0.01), zero biases,
full-batch gradient descent with lr 0.01 for 100 epochs on raw pixel values (0..255), as
examples/mnist_binary.cpp and the original notebook (train 0.972, test 0.947). Needs the
MNIST files in $OPGRAPH_DATA/mnist.

    PYTHONPATH=build/python python3 examples/python/mnist_binary.py
"""
import argparse
import json
import os
import sys
import time

import opgraph as og

ap = argparse.ArgumentParser()
ap.add_argument("--epochs", type=int, default=100)
ap.add_argument("--seed", type=int, default=1)
args = ap.parse_args()
if not os.environ.get("OPGRAPH_DATA"):
    print("skipped: set OPGRAPH_DATA to the folder holding mnist/")
    sys.exit(77)

start = time.time()
data = og.load_data("mnist:classes=5/8,per_class=1000")
print(f"train: {len(data.x)} images of {data.class_names}; test: {len(data.x_test)} images")

g = og.Graph()
x = g.input("x", ("N", 784))
y = g.input("y", ("N", 1))
h = og.nn.logistic(og.nn.dense(x, 256, "hidden", w=og.Init.normal(0, 0.01)))
p = og.nn.logistic(og.nn.dense(h, 1, "out", w=og.Init.normal(0, 0.01))).named("p")
g.set_loss(og.nn.binary_cross_entropy(p, y).named("loss"))
model = og.Model(g, seed=args.seed)

history = model.fit(data.x, data.y, optimizer="sgd:lr=0.01", epochs=args.epochs, shuffle=False,
                    callback=lambda e: print(f"epoch {e['epoch']:3d}  loss {e['train_loss']:.4f}  "
                                             f"accuracy {e['train_accuracy']:.4f}")
                    if e["epoch"] % 20 == 0 else None)
train = model.evaluate(data.x, data.y)
test = model.evaluate(data.x_test, data.y_test)
seconds = sum(history.seconds)
print(f"train accuracy {train.accuracy:.4f}, test accuracy {test.accuracy:.4f} ({test.samples} images); "
      f"{1e3 * seconds / args.epochs:.1f} ms per full-batch step")
print(json.dumps({"example": "mnist_binary", "train_accuracy": train.accuracy, "test_accuracy": test.accuracy,
                  "epochs": args.epochs, "seconds": time.time() - start}))
