"""Ops against PyTorch 1.13 (python3-torch): values and input gradients of the pools with
ceil_mode and of pad (constant, reflect, replicate), in float64, on shapes where the stride leaves part of the plane; a
max-pool window over padding alone."""
import os

import numpy as np
import pytest

import opgraph as og

torch = pytest.importorskip("torch") if os.environ.get("OPGRAPH_REQUIRE_TOOLS") != "1" else __import__("torch")
F = torch.nn.functional

# (opgraph op, its attributes, the PyTorch function, input shape)
CASES = [
    ("max_pool2d", {"kernel": 2, "ceil_mode": True}, lambda x: F.max_pool2d(x, 2, ceil_mode=True), (2, 3, 5, 7)),
    ("max_pool2d", {"kernel": 3, "stride": 2, "padding": 1, "dilation": [1, 2], "ceil_mode": True},
     lambda x: F.max_pool2d(x, 3, 2, 1, dilation=(1, 2), ceil_mode=True), (2, 3, 8, 7)),
    # 3x3 padded by 1, windows of 2 by 2: a third window would start in the bottom padding,
    # and PyTorch drops it (2x2 out, not 3x3)
    ("max_pool2d", {"kernel": 2, "stride": 2, "padding": 1, "ceil_mode": True},
     lambda x: F.max_pool2d(x, 2, 2, 1, ceil_mode=True), (2, 3, 3, 3)),
    ("avg_pool2d", {"kernel": 2, "ceil_mode": True}, lambda x: F.avg_pool2d(x, 2, ceil_mode=True), (2, 3, 7, 5)),
    ("avg_pool2d", {"kernel": 3, "stride": 2, "padding": 1, "ceil_mode": True},
     lambda x: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True), (2, 3, 8, 7)),
    ("avg_pool2d", {"kernel": 3, "stride": 2, "padding": 1, "ceil_mode": True, "count_include_pad": False},
     lambda x: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False), (2, 3, 8, 7)),
    ("avg_pool2d", {"kernel": 2, "stride": 2, "padding": 1, "ceil_mode": True},
     lambda x: F.avg_pool2d(x, 2, 2, 1, ceil_mode=True), (2, 3, 3, 3)),
    # F.pad lists the last axis first: (left, right, top, bottom)
    ("pad", {"before": [1, 2], "after": [2, 0], "value": -1.5}, lambda x: F.pad(x, (2, 0, 1, 2), value=-1.5), (2, 3, 5, 4)),
    ("pad", {"before": [3], "axes": [1]}, lambda x: F.pad(x, (0, 0, 0, 0, 3, 3)), (2, 3, 5, 4)),  # after: as before
    ("pad", {"before": [1, 3], "after": [4, 2], "mode": "reflect"}, lambda x: F.pad(x, (3, 2, 1, 4), mode="reflect"),
     (2, 3, 5, 4)),
    ("pad", {"before": [2, 0], "after": [3, 5], "mode": "replicate"},
     lambda x: F.pad(x, (0, 5, 2, 3), mode="replicate"), (2, 3, 5, 4)),
    ("pad", {"before": [2], "after": [1], "mode": "reflect"}, lambda x: F.pad(x, (2, 1), mode="reflect"), (2, 3, 5)),
]


@pytest.mark.parametrize("op,attrs,reference,shape", CASES, ids=[f"{c[0]}{i}" for i, c in enumerate(CASES)])
def test_values_and_input_gradients_match_pytorch(op, attrs, reference, shape):
    rng = np.random.default_rng(7)
    x = rng.standard_normal(shape)
    xt = torch.tensor(x, requires_grad=True)
    yt = reference(xt)
    r = rng.standard_normal(tuple(yt.shape))  # the output's gradient: d(sum(y * r))/dy
    (yt * torch.tensor(r)).sum().backward()

    g = og.Graph()
    xn = g.input("x", ("N",) + shape[1:], "float64")
    y = og.op(op, xn, **attrs).named("y")
    assert tuple(y.shape[1:]) == tuple(yt.shape[1:]), f"{op} {attrs}: shape {y.shape} against PyTorch's {tuple(yt.shape)}"
    rn = g.input("r", ("N",) + tuple(yt.shape[1:]), "float64")
    g.set_loss(og.nn.sum(og.nn.mul(y, rn)).named("loss"))
    plan = og.Model(g, dtype="float64").compile(batch=shape[0], keep=["y"], input_grads=["x"])
    plan.forward({"x": x, "r": r})
    plan.backward()
    np.testing.assert_allclose(plan.value("y"), yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(plan.grad("x"), xt.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_a_max_pool_window_over_padding_alone_is_minus_infinity_without_a_gradient():
    # A window dilated by 5 down a 4x4 plane padded by 1 reads rows -1 and 4: padding alone.
    # PyTorch gives -inf; opgraph had given 0 and sent the gradient to tap -1, out of bounds.
    # (PyTorch's own backward writes out of bounds here, corrupting its heap: it is not run.)
    x = np.random.default_rng(7).standard_normal((2, 3, 4, 4))
    want = F.max_pool2d(torch.tensor(x), 2, stride=1, padding=1, dilation=(5, 1)).numpy()
    assert want.shape == (2, 3, 1, 5) and np.isneginf(want).all()
    g = og.Graph()
    y = og.nn.max_pool2d(g.input("x", ("N", 3, 4, 4), "float64"), kernel=2, stride=1, padding=1, dilation=[5, 1])
    g.set_loss(og.nn.sum(y.named("y")).named("loss"))
    plan = og.Model(g, dtype="float64").compile(batch=2, keep=["y"], input_grads=["x"])
    plan.forward({"x": x})
    plan.backward()
    np.testing.assert_array_equal(plan.value("y"), want)
    assert plan.grad("x").shape == x.shape and not plan.grad("x").any()


# ---- The ops' values and gradients against PyTorch's, input by input ------------------------
# (op, attributes, inputs as (name, shape or integer array), PyTorch's function of the
# tensors in that order, mode). Float inputs are drawn from a normal distribution (shifted
# where the op needs positive values); every float input's gradient is compared.
def normal(*shape, lo=None):
    return ("normal", shape, lo)


LABELS = np.array([2, 0, 3, 1, 3], np.int64)
IGNORING = np.array([2, -1, 3, 1, -1], np.int64)
IDS = np.array([[1, 6, 6, 0], [3, 2, 1, 5], [0, 0, 4, 2]], np.int64)
OPS = [
    ("gelu", {}, [("x", normal(4, 5))], lambda x: F.gelu(x)),
    ("gelu", {"approximate": "tanh"}, [("x", normal(4, 5))], lambda x: F.gelu(x, approximate="tanh")),
    ("silu", {}, [("x", normal(4, 5))], F.silu),
    ("elu", {"alpha": 0.7}, [("x", normal(4, 5))], lambda x: F.elu(x, 0.7)),
    ("softplus", {"beta": 2.0, "threshold": 3.0}, [("x", normal(4, 5))], lambda x: F.softplus(x, 2.0, 3.0)),
    ("leaky_relu", {"negative_slope": 0.2}, [("x", normal(4, 5))], lambda x: F.leaky_relu(x, 0.2)),
    ("logistic", {}, [("x", normal(4, 5))], torch.sigmoid),
    ("tanh", {}, [("x", normal(4, 5))], torch.tanh),
    ("softmax", {"axis": 1}, [("x", normal(3, 4, 5))], lambda x: torch.softmax(x, 1)),
    ("log_softmax", {}, [("x", normal(3, 4, 5))], lambda x: torch.log_softmax(x, -1)),
    ("logsumexp", {"axis": [1, 2], "keepdims": True}, [("x", normal(3, 4, 5))],
     lambda x: torch.logsumexp(x, (1, 2), keepdim=True)),
    ("var", {"axis": [1], "ddof": 1}, [("x", normal(3, 4, 5))], lambda x: torch.var(x, 1, unbiased=True)),
    ("max", {"axis": [1]}, [("x", normal(3, 4, 5))], lambda x: torch.amax(x, 1)),
    ("layer_norm", {}, [("x", normal(3, 4, 5)), ("gain", normal(4, 5)), ("bias", normal(4, 5))],
     lambda x, g, b: F.layer_norm(x, (4, 5), g, b, 1e-5)),
    ("batch_norm", {}, [("x", normal(4, 3, 5, 5)), ("gamma", normal(3)), ("beta", normal(3))],
     lambda x, g, b: F.batch_norm(x, None, None, g, b, training=True, eps=1e-5)),
    ("conv2d", {"stride": 2, "padding": [1, 2], "dilation": [1, 2], "groups": 2},
     [("x", normal(2, 4, 9, 8)), ("w", normal(6, 2, 3, 3))],
     lambda x, w: F.conv2d(x, w, stride=2, padding=(1, 2), dilation=(1, 2), groups=2)),
    ("conv2d", {"padding": "same"}, [("x", normal(2, 3, 6, 7)), ("w", normal(4, 3, 4, 2))],
     lambda x, w: F.conv2d(x, w, padding="same")),
    ("avg_pool2d", {"kernel": 3, "stride": 2, "padding": 1, "count_include_pad": False}, [("x", normal(2, 3, 7, 6))],
     lambda x: F.avg_pool2d(x, 3, 2, 1, count_include_pad=False)),
    ("attention", {"causal": True, "heads": 2},
     [("q", normal(2, 5, 6)), ("k", normal(2, 5, 6)), ("v", normal(2, 5, 8))],
     lambda q, k, v: causal_attention(q, k, v, 2)),
    ("softmax_cross_entropy", {"ignore_index": -1}, [("logits", normal(5, 4)), ("labels", IGNORING)],
     lambda z: F.cross_entropy(z, torch.tensor(IGNORING), ignore_index=-1)),
    ("softmax_cross_entropy", {"reduction": "sum"}, [("logits", normal(5, 4)), ("labels", LABELS)],
     lambda z: F.cross_entropy(z, torch.tensor(LABELS), reduction="sum")),
    ("cross_entropy", {}, [("p", normal(5, 4, lo=0.05)), ("labels", LABELS)],
     lambda p: F.nll_loss(torch.log(p), torch.tensor(LABELS))),
    ("binary_cross_entropy", {}, [("p", normal(4, 3, lo=0.05)), ("y", normal(4, 3, lo=0.0))],
     lambda p, y: F.binary_cross_entropy(p, y)),
    ("binary_cross_entropy_with_logits", {"reduction": "sum"}, [("z", normal(4, 3)), ("y", normal(4, 3, lo=0.0))],
     lambda z, y: F.binary_cross_entropy_with_logits(z, y, reduction="sum")),
    ("mse", {}, [("pred", normal(4, 3)), ("target", normal(4, 3))], F.mse_loss),
    ("matmul", {"trans_b": True}, [("a", normal(2, 1, 3, 4)), ("b", normal(3, 5, 4))],
     lambda a, b: torch.matmul(a, b.transpose(-1, -2))),
    ("embedding", {}, [("ids", IDS), ("table", normal(7, 5))], lambda t: F.embedding(torch.tensor(IDS), t)),
    ("clamp", {"min": -0.5, "max": 0.5}, [("x", normal(4, 5))], lambda x: torch.clamp(x, -0.5, 0.5)),
    ("pow", {"exponent": -1.5}, [("x", normal(4, 5, lo=0.2))], lambda x: x ** -1.5),
    ("rsqrt", {}, [("x", normal(4, 5, lo=0.2))], torch.rsqrt),
    ("where", {}, [("cond", normal(4, 1)), ("a", normal(4, 5)), ("b", normal(5))],
     lambda c, a, b: torch.where(c != 0, a, b)),
    ("maximum", {}, [("a", normal(4, 5)), ("b", normal(5))], torch.maximum),
    ("slice", {"begin": [1, 0], "end": [5, 5], "step": [2, 2], "axes": [1, 2]}, [("x", normal(2, 6, 5))],
     lambda x: x[:, 1:5:2, 0:5:2]),
    ("expand", {"shape": [3, -1, 5]}, [("x", normal(4, 1))], lambda x: x.expand(3, 4, 5)),
    ("upsample2d", {}, [("x", normal(2, 3, 4, 5))], lambda x: F.interpolate(x, scale_factor=2, mode="nearest")),
    ("upsample2d", {"scale": [3, 2]}, [("x", normal(2, 3, 2, 3))],
     lambda x: F.interpolate(x, scale_factor=(3, 2), mode="nearest")),
    ("upsample2d", {"mode": "bilinear"}, [("x", normal(2, 3, 4, 5))],
     lambda x: F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)),
    ("upsample2d", {"scale": [3, 2], "mode": "bilinear"}, [("x", normal(2, 3, 2, 3))],
     lambda x: F.interpolate(x, scale_factor=(3, 2), mode="bilinear", align_corners=False)),
    ("upsample2d", {"scale": [2, 3], "mode": "bilinear", "align_corners": True}, [("x", normal(2, 3, 3, 1))],
     lambda x: F.interpolate(x, scale_factor=(2, 3), mode="bilinear", align_corners=True)),
]


def causal_attention(q, k, v, heads):
    """softmax(q k^T / sqrt(d)) v per head, key j hidden from query i for j > i."""
    n, t, f = q.shape
    split = lambda a: a.reshape(n, t, heads, -1).transpose(1, 2)  # noqa: E731
    qh, kh, vh = split(q), split(k), split(v)
    scores = qh @ kh.transpose(-1, -2) / (f // heads) ** 0.5
    hidden = torch.triu(torch.ones(t, t, dtype=torch.bool), 1)
    y = torch.softmax(scores.masked_fill(hidden, float("-inf")), -1) @ vh
    return y.transpose(1, 2).reshape(n, t, -1)


@pytest.mark.parametrize("op,attrs,inputs,reference", OPS, ids=[f"{c[0]}{i}" for i, c in enumerate(OPS)])
def test_op_values_and_gradients_match_pytorch(op, attrs, inputs, reference):
    rng = np.random.default_rng(11)
    values, tensors = {}, []
    for name, spec in inputs:
        if isinstance(spec, np.ndarray):
            values[name] = spec
            continue
        _, shape, lo = spec
        v = rng.standard_normal(shape)
        if lo is not None:  # positive: in (lo, 1 - lo) for probabilities, (lo, lo + 2) for powers
            v = lo + (1 - 2 * lo) / (1 + np.exp(-v)) if lo < 0.1 else lo + np.abs(v)
        values[name] = v
        tensors.append((name, torch.tensor(v, requires_grad=True)))
    want = reference(*[t for _, t in tensors])
    r = rng.standard_normal(tuple(want.shape))
    (want * torch.tensor(r)).sum().backward()

    g = og.Graph()
    nodes = [g.input(name, v.shape, "int64" if v.dtype == np.int64 else "float64") for name, v in values.items()]
    out = og.op(op, *nodes, **attrs).named("out")
    rn = g.input("r", r.shape, "float64")
    g.set_loss(og.nn.sum(og.nn.mul(out, rn)).named("loss"))
    floats = [name for name, _ in tensors]
    plan = og.Model(g, dtype="float64").compile(batch=1, mode="train", keep=["out"], input_grads=floats)
    plan.forward({**values, "r": r})
    plan.backward()
    np.testing.assert_allclose(plan.value("out"), want.detach().numpy(), rtol=1e-10, atol=1e-12, err_msg=f"{op} value")
    for name, t in tensors:
        expected = t.grad.numpy() if t.grad is not None else np.zeros_like(values[name])  # where's condition
        np.testing.assert_allclose(plan.grad(name), expected, rtol=1e-9, atol=1e-11, err_msg=f"{op} d/d{name}")
