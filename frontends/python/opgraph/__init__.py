"""opgraph: build, train and debug computation graphs with NumPy arrays in and out.

Every step runs in opgraph's compiled C++ plans; this package is a thin, Pythonic face on
the same concepts as the C++ API (docs/python.md):

    import numpy as np
    import opgraph as og

    g = og.Graph()
    x = g.input("x", ("N", 2))
    y = g.input("y", ("N", 1))
    h = og.nn.logistic(og.nn.dense(x, 2, "hidden"))
    p = og.nn.logistic(og.nn.dense(h, 1, "out")).named("p")
    g.set_loss(og.nn.binary_cross_entropy(p, y))
    model = og.Model(g, seed=0)
    history = model.fit(X, Y, optimizer="sgd:lr=0.3", epochs=1000)
"""
import os as _os

from . import _opgraph
from ._opgraph import (  # noqa: F401  (the public names)
    DataError,
    Error,
    Graph,
    GraphError,
    Init,
    NumericError,
    Optimizer,
    ParseError,
    Plan,
    ShapeError,
    Value,
    load_plugin,
    op,
    op_info,
    ops,
    set_threads,
    threads,
)

_opgraph._set_package_dir(_os.path.dirname(_os.path.abspath(__file__)) + _os.sep)

#: The batch dimension in shapes: ("N", 784) or (og.N, 784).
N = "N"

__version__ = "0.1.0"


class History:
    """What fit() reports: one entry per epoch, as lists by metric (Keras-like).

    history.train_loss[-1], history.val_accuracy, history.to_dict(), len(history),
    history.reached_target (a target_loss was met), history.stopped (the callback said
    stop)."""

    _metrics = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "learning_rate", "seconds", "samples")

    def __init__(self, raw):
        self.epochs = raw["epochs"]
        self.reached_target = raw["reached_target"]
        self.stopped = raw["stopped"]
        self.optimizer = raw["optimizer"]

    def __getattr__(self, name):
        if name in History._metrics:
            return [e[name] for e in self.epochs]
        raise AttributeError(f"History has no '{name}' (it has {', '.join(History._metrics)})")

    def __len__(self):
        return len(self.epochs)

    def to_dict(self):
        """{metric: [one value per epoch]}."""
        return {m: getattr(self, m) for m in History._metrics}

    def __repr__(self):
        if not self.epochs:
            return "<og.History: no epochs>"
        last = self.epochs[-1]
        return f"<og.History: {len(self.epochs)} epochs, last train loss {last['train_loss']:.6g}>"


class Evaluation(dict):
    """evaluate()'s figures: loss, accuracy (NaN without classes), samples, confusion
    (a [classes, classes] int64 array, rows true and columns predicted); as a dict or as
    attributes."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class Data(Evaluation):
    """load_data()'s result: x, y, x_test, y_test (None when the source has no test part),
    class_names, sample_shape, description, notes."""


class Model:
    """A graph with parameter values, ready to train, evaluate, predict, compile into plans
    and save.

    Model(graph, seed=0, dtype="float32", input=None, labels=None): parameters drawn from
    `seed`; `input` is the input fed with the samples when fit() gets one array (the first
    input that is not the labels), `labels` the input fed with y (the one the loss reads
    its targets from). og.load(path) reads a .og model file or a checkpoint."""

    def __init__(self, graph, seed=0, dtype=None, input=None, labels=None, _impl=None):
        if _impl is not None:
            self._m = _impl
            return
        if not isinstance(graph, Graph):
            raise TypeError("Model(graph): a og.Graph (for a .og file or a checkpoint, use og.load(path))")
        self._m = _opgraph._Model._from_graph(graph, int(seed), dtype, input or "", labels)

    # ---- training --------------------------------------------------------------------
    def fit(self, x, y=None, optimizer="adam:lr=1e-3", epochs=10, batch=0, shuffle=True, seed=None,
            validation=None, callback=None, target_loss=0.0, verbose=False, frozen=(), shards=0, distributed=None,
            overlap=True, allreduce=False):
        """Trains on samples `x` (an array [n, ...], or a dict {input name: array} for
        several inputs) with labels `y` ([n] class indices, or [n, k] targets; None for a
        label-free loss). `optimizer` is a spec ("adam:lr=1e-3") or an og.Optimizer (whose
        state carries over). batch 0 is full-batch gradient descent. `validation` is a
        tuple (x, y). `callback(epoch)` gets each epoch's figures as a dict and stops
        training by returning False. `frozen` names parameters the optimizer leaves as they
        are (a name ending in '*' is a prefix: "conv1.*"). Ctrl-C stops between two steps (KeyboardInterrupt),
        the model keeping the parameters of the last step. The same seed gives the same
        parameters, bit for bit, as `opgraph train` and the C++ fit().

        Data-parallel (docs/distributed.md): under mpirun/mpiexec (or with
        distributed=True) every process runs this same script and fit; each computes its
        block of `shards` shards per batch (default 4), and every process ends with the same
        parameters, bit for bit for any process count. shards > 0 without MPI runs the
        shards in this process (the same bits). `overlap` exchanges gradients while the
        backward pass runs; `allreduce` uses MPI_Allreduce (faster; the bits then depend on
        the process count). Returns a History."""
        raw = self._m.fit(x, y, optimizer, int(epochs), int(batch), bool(shuffle), seed, validation, callback,
                          float(target_loss), int(bool(verbose)), [str(f) for f in frozen], int(shards),
                          distributed, bool(overlap), bool(allreduce))
        return History(raw)

    def evaluate(self, x, y=None, batch=0):
        """Mean loss, accuracy and confusion matrix over (x, y): an og.Evaluation."""
        return Evaluation(self._m.evaluate(x, y, int(batch)))

    def predict(self, x, batch=0):
        """The head's output for each sample: probabilities for a classifier ([n, C], or
        [n, 1] for one sigmoid output, [n, T, C] for a class per position), the values
        otherwise, in the head's shape ([n, 8, 8, 8] for feature maps)."""
        return self._m.predict(x, int(batch))[0]

    def predict_classes(self, x, batch=0):
        """The predicted class of each sample (int64, [n]; [n, T] for a class per position),
        for a model that predicts classes."""
        labels = self._m.predict(x, int(batch))[1]
        if labels is None:
            raise GraphError("predict_classes: the model predicts values, not classes (use predict)")
        if labels.size and labels.min() < 0:  # -1: a NaN output, which has no class
            first = [int(axis[0]) for axis in (labels < 0).nonzero()]  # sample (and position)
            at = f"sample {first[0]}" + (f", position {first[1]}" if len(first) > 1 else "")
            raise NumericError(f"predict_classes: the output for {at} is NaN (its input or the parameters hold "
                               f"NaN): it has no class")
        return labels

    # ---- lower level -----------------------------------------------------------------
    def compile(self, batch, mode="auto", keep=(), input_grads=(), dims=None, backward=True, seed=None,
                keep_all=False, keep_grads=False, detect_anomaly=False, profile=False, fuse=True):
        """A Plan for `batch` rows: mode "train" (dropout drops, batch norm uses batch
        statistics), "eval", or "auto" (train when it can run backward). `keep` lists nodes
        whose values stay readable, `input_grads` inputs whose gradients backward()
        computes, `dims` sizes of named dimensions ({"T": 16}). `fuse=False` runs every
        bias and ReLU after a matmul or conv2d as its own pass (the same bits; see profile())."""
        return self._m.compile(int(batch), mode, list(keep), list(input_grads), dict(dims or {}), bool(backward), seed,
                               bool(keep_all), bool(keep_grads), bool(detect_anomaly), bool(profile), bool(fuse))

    @property
    def params(self):
        """{name: array}: zero-copy views of the parameter values (and state, such as batch
        norm's running statistics). Writing into one changes the model."""
        return self._m.params()

    @property
    def trainable(self):
        """Names of the trainable parameters (not state)."""
        return self._m.trainable()

    def set_params(self, values):
        """Copies {name: array} into the parameters (shapes must match)."""
        own = self.params
        for name, v in values.items():
            if name not in own:
                raise GraphError(f"set_params: no parameter '{name}' (the model has {', '.join(own)})")
            target = own[name]
            import numpy as _np
            v = _np.asarray(v)
            if v.shape != target.shape:
                raise ShapeError(f"set_params: '{name}' has shape {target.shape}, got {v.shape}")
            target[...] = v

    @property
    def graph(self):
        """A copy of the model's graph."""
        return self._m.graph()

    input = property(lambda self: self._m.input, doc="The input fed with the samples.")
    labels = property(lambda self: self._m.labels, doc="The input fed with y ('' when the loss needs none).")
    seed = property(lambda self: self._m.seed)
    dtype = property(lambda self: self._m.dtype)
    epochs_done = property(lambda self: self._m.epochs_done, doc="Epochs trained (fit calls and a checkpoint's).")
    meta = property(lambda self: self._m.meta, doc="A checkpoint's facts (data spec, batch, ...).")
    extra = property(lambda self: self._m.extra, doc="A checkpoint's other tensors (e.g. data.mean, data.std).")

    # ---- files and pictures ------------------------------------------------------------
    def save(self, path, optimizer=None):
        """Writes a checkpoint (atomically): the model's text, parameters, seed, epochs and,
        given an og.Optimizer, its state. og.load(path) reads it back; so do `opgraph eval`
        and `opgraph predict`."""
        self._m.save(_os.fspath(path), optimizer)

    def export_onnx(self, path, opset=17, outputs=()):
        """Writes the model's eval-mode inference graph as ONNX (opset 13-17, default 17):
        a symbolic batch dimension "N", the parameters as initializers, node names from the
        model; the outputs are the prediction head and the graph's outputs, or `outputs`.
        `opgraph export --onnx` writes the same file (docs/onnx.md)."""
        self._m.export_onnx(_os.fspath(path), int(opset), list(outputs))

    def dump(self, format="dot", backward=False, batch=0, collapse=False, hide_identity=False):
        """The graph as text: "dot" (Graphviz), "svg" (needs Graphviz's dot), "json" or "og"."""
        return self._m.dump(format, bool(backward), int(batch), bool(collapse), bool(hide_identity))

    def _repr_svg_(self):  # Jupyter shows the graph
        return self.dump("svg")

    def gradcheck(self, inputs, batch=None, seed=1, tolerance=1e-6):
        """d(loss)/d(parameters) against central differences, in f64 on a copy of the
        parameters, at the given inputs ({name: array}); returns {max_error, passed, ...}."""
        if batch is None:
            batch = len(next(iter(inputs.values())))
        return Evaluation(self._m.gradcheck(dict(inputs), int(batch), int(seed), float(tolerance)))

    def __str__(self):
        return self._m.text()

    def __repr__(self):
        n = sum(a.size for a in self.params.values())
        return f"<og.Model {self._m.name}: {len(self.params)} parameters ({n} values), {self.dtype}>"


def distributed(mpi=None):
    """This process's place in a data-parallel run, {"rank", "size", "name"}: under
    mpirun/mpiexec (or mpi=True) it starts MPI, once per process; otherwise rank 0 of 1.
    Every process runs the same script; print and save on rank 0 (docs/distributed.md)."""
    return _opgraph._distributed(mpi)


def load(path, seed=0, dtype=None):
    """A Model from a .og model file (parameters drawn from `seed`), an ONNX file (.onnx:
    its weights; docs/onnx.md), or a checkpoint written by Model.save or `opgraph train
    --save` (its parameters and seed)."""
    return Model(None, _impl=_opgraph._Model._load(_os.fspath(path), int(seed), dtype))


def load_onnx(path):
    """A Model from an ONNX file made elsewhere (torch.onnx.export, ...): its weights, a
    labels input and a loss on its output, ready to evaluate or fine-tune (og.load does
    the same for a path ending in .onnx)."""
    path = _os.fspath(path)
    if not path.endswith(".onnx"):
        raise ValueError(f"load_onnx: '{path}' does not end in .onnx")
    return load(path)


def load_data(spec, data_dir=""):
    """A dataset by the spec `opgraph train --data` takes ("iris", "blobs:n=300,seed=2",
    "mnist:classes=5/8"; `opgraph data` lists them): an og.Data with x, y, x_test,
    y_test. Files are read from `data_dir` or $OPGRAPH_DATA."""
    return Data(_opgraph.load_data(spec, data_dir))


def optimizer(spec):
    """An og.Optimizer from a spec ("momentum:lr=0.05,gamma=0.9")."""
    return Optimizer(spec)


class CheckReport:
    """og.check's result: .passed, .ops (one dict per op: op, passed, checks), and the
    table `opgraph check` prints (str)."""

    def __init__(self, results):
        self.ops = results
        self.passed = all(r["passed"] for r in results)

    def __bool__(self):
        return self.passed

    def failures(self):
        return [r for r in self.ops if not r["passed"]]

    def __str__(self):
        lines = [f"{'op':<34} {'result':<6} {'gradient':<10} {'f32':<10} first failure or note"]
        for r in self.ops:
            items = {c["property"]: c for c in r["checks"]}
            bad = next((c for c in r["checks"] if not c["passed"]), None)
            note = f"{bad['property']}: {bad['detail']}" if bad else (r["checks"][0]["detail"] if r["checks"] else "")
            grad = f"{items['gradient']['measure']:.1e}" if "gradient" in items else "-"
            f32 = f"{items['f32']['measure']:.1e}" if "f32" in items else "-"
            lines.append(f"{r['op']:<34} {'PASS' if r['passed'] else 'FAIL':<6} {grad:<10} {f32:<10} {note}".rstrip())
        failed = len(self.failures())
        lines.append(f"{len(self.ops)} ops: {len(self.ops) - failed} passed, {failed} failed")
        return "\n".join(lines)

    __repr__ = __str__


def check(op=None, plugin=None, seed=1):
    """Checks ops against their contract, as `opgraph check` does: the shape rule against
    the kernel, the vjp against f64 central differences, f32 against f64, 1 against 2
    threads, linearity, reads of unsaved values, NaN in giving NaN out. `op` is a name or a
    list of names; `plugin` a .so whose ops to load and check; neither: every registered op.
    The NaN property feeds NaN to ops written in Python too: NumPy's invalid-value
    warnings are silenced while the check runs (a NaN the op should not make fails
    "finite" instead)."""
    if plugin is not None:
        names = load_plugin(_os.fspath(plugin))
    elif op is None:
        names = ops()
    elif isinstance(op, str):
        names = [op]
    else:
        names = list(op)
    import numpy as _np

    with _np.errstate(invalid="ignore"):
        return CheckReport(_opgraph._check(names, int(seed)))


def gradcheck(target, inputs=None, batch=None, seed=1, tolerance=1e-6, sizes=()):
    """Gradients against f64 central differences.

    og.gradcheck("relu"): the op's vjp on every check case it declares (random small
    sizes, or `sizes` for its letters: sizes=(300, 257)); a list with one result per
    configuration (config, max_error, passed, failure).
    og.gradcheck(model, {"x": x, "y": y}): the model's parameter gradients at those inputs
    (Model.gradcheck)."""
    if isinstance(target, Model):
        if inputs is None:
            raise TypeError("gradcheck(model, inputs): give the inputs as {name: array}")
        return target.gradcheck(inputs, batch=batch, seed=seed, tolerance=tolerance)
    return [Evaluation(r) for r in _opgraph._gradcheck_op(target, int(seed), float(tolerance), [int(s) for s in sizes])]


def register_op(name, forward, vjp=None, shape=None, inputs=("x",), attrs=None, doc="", domains=None, checks=None,
                replaces_nan=False):
    """Registers an op written in Python (the prototyping path: each call holds the GIL).

    forward(*inputs, **attrs) -> array        the output, from NumPy arrays of the inputs
    vjp(g, y, *inputs, **attrs) -> grads      one gradient per input (a tuple; None: zero),
                                              from the output's cotangent g and output y
    shape(*shapes, **attrs) -> shape          input shapes are tuples with 'N' for the
                                              batch; default: the first input's shape
    attrs: {name: default}                    their types come from the defaults
    domains: [(lo, hi)] per input             where og.check samples (default (-2, 2))
    checks: [[shape pattern per input]]       default [["[a,b]", ...]]
    replaces_nan: True for an op that turns NaN into numbers on purpose (a nan_to_num):
                                              og.check then does not require NaN in to
                                              give NaN out

    Once registered the op is usable in graphs (og.op(name, x), og.nn.NAME(x)) and model
    files, and og.check(name) checks it. Names are process-wide and cannot be reused."""
    return _opgraph.register_op(name, forward, vjp, shape, list(inputs), dict(attrs or {}), doc or (forward.__doc__ or ""),
                                domains, checks, bool(replaces_nan))


def custom_op(name, inputs=("x",), attrs=None, doc="", domains=None, checks=None, replaces_nan=False):
    """Decorator form of register_op over a class with static forward, vjp and (optional)
    shape methods, like jax.custom_vjp or torch.autograd.Function:

        @og.custom_op("my_softplus")
        class Softplus:
            def forward(x): return np.logaddexp(0, x)
            def vjp(g, y, x): return g / (1 + np.exp(-x))
    """
    def wrap(cls):
        register_op(name, cls.forward, getattr(cls, "vjp", None), getattr(cls, "shape", None), inputs, attrs,
                    doc or (cls.__doc__ or ""), domains, checks, replaces_nan)
        return cls
    return wrap


from . import nn  # noqa: E402,F401  (after the names it uses)
