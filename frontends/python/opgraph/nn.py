"""Layers and ops by name, like the C++ nn:: helpers.

og.nn.dense(x, 256, "h1") adds a dense layer (parameters h1.W, h1.b); og.nn.relu(x),
og.nn.layer_norm(x, g, b, eps=1e-5) and every other registered op, plugins' and
Python-defined ones included, are og.op(name, ...) under their own name.
"""
from . import _opgraph


def input(graph, name, shape, dtype=None):
    """graph.input(name, shape, dtype)."""
    return graph.input(name, shape, dtype)


def param(graph, name, shape, init="xavier"):
    """graph.param(name, shape, init)."""
    return graph.param(name, shape, init)


def dense(x, out, name, w="xavier", b="zeros"):
    """x @ W + b with W [in, out] named `<name>.W` (init `w`) and b [out] `<name>.b`; the
    result node is called `name`. `x` is [batch, features]."""
    shape = x.shape
    if len(shape) != 2:
        text = ",".join(str(d) for d in shape)
        raise _opgraph.ShapeError(f"dense '{name}': input must be [batch, features], got [{text}]")
    g = x.graph
    # `out` as given: an int or a NumPy integer; 3.5 is refused, not cut to 3.
    weight = g.param(name + ".W", (shape[1], out), w)
    bias = g.param(name + ".b", (out,), b)
    return _opgraph.op("bias_add", _opgraph.op("matmul", x, weight), bias).named(name)


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    if name in _opgraph.ops():
        def call(*inputs, **attrs):
            return _opgraph.op(name, *inputs, **attrs)
        call.__name__ = name
        call.__doc__ = _opgraph.op_info(name)["doc"]
        return call
    raise AttributeError(f"opgraph.nn has no '{name}': no registered op has that name (og.ops() lists them)")


def __dir__():
    return sorted(set(globals()) | set(_opgraph.ops()))
