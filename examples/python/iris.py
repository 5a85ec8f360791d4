"""Reference notebook 3 in Python: iris with a 4-8-3 network.

Sigmoid hidden layer, softmax cross-entropy, full-batch gradient descent (lr 0.5, 500
epochs) on standardised features, as examples/iris.cpp: first on all 150 flowers, then on
a stratified 70/30 split (standardised with the training part's statistics).

    PYTHONPATH=build/python python3 examples/python/iris.py
"""
import argparse
import json

import opgraph as og

ap = argparse.ArgumentParser()
ap.add_argument("--epochs", type=int, default=500)
ap.add_argument("--seed", type=int, default=1)
args = ap.parse_args()


def iris_net(seed):
    g = og.Graph()
    x = g.input("x", ("N", 4))
    y = g.input("y", ("N",))
    h = og.nn.logistic(og.nn.dense(x, 8, "hidden"))
    logits = og.nn.dense(h, 3, "out").named("logits")
    g.set_loss(og.nn.softmax_cross_entropy(logits, y).named("loss"))
    return og.Model(g, seed=seed)


iris = og.load_data("iris:standardize=true")
print(f"iris: {len(iris.x)} flowers, {iris.x.shape[1]} features, classes {', '.join(iris.class_names)}")
model = iris_net(args.seed)
model.fit(iris.x, iris.y, optimizer="sgd:lr=0.5", epochs=args.epochs)
everything = model.evaluate(iris.x, iris.y)
print(f"all 150 flowers, {args.epochs} epochs of gradient descent (lr 0.5): loss {everything.loss:.4f}, "
      f"accuracy {everything.accuracy:.4f}")

split = og.load_data(f"iris:test=0.3,standardize=true,seed={args.seed}")
model = iris_net(args.seed)
history = model.fit(split.x, split.y, optimizer="sgd:lr=0.5", epochs=args.epochs,
                    validation=(split.x_test, split.y_test))
train = model.evaluate(split.x, split.y)
test = model.evaluate(split.x_test, split.y_test)
print(f"70/30 split: train accuracy {train.accuracy:.4f}, test accuracy {test.accuracy:.4f} "
      f"({test.samples} flowers); validation loss {history.val_loss[0]:.3f} -> {history.val_loss[-1]:.3f}")
print(json.dumps({"example": "iris", "train_accuracy_all": everything.accuracy, "train_accuracy": train.accuracy,
                  "test_accuracy": test.accuracy, "epochs": args.epochs}))
