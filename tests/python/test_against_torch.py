"""Ops against PyTorch 1.13 (python3-torch): values and input gradients of the pools with
ceil_mode and of pad, in float64, on shapes where the stride leaves part of the plane; a
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
