"""Plans driven from Python: zero-copy views, bound inputs, gradients, the XOR loop."""
import os

import numpy as np
import pytest

import opgraph as og
from conftest import EXAMPLES, run_json, xor_graph


def xor_model(dtype=None):
    return og.Model(xor_graph(), seed=0, dtype=dtype)


X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
Y = np.array([[0], [1], [1], [0]], np.float32)


def address(a):
    return a.__array_interface__["data"][0]


def test_parameter_views_are_the_plans_memory():
    model = xor_model()
    plan = model.compile(batch=4, keep=["p"])
    w = model.params["out.W"]
    assert np.shares_memory(w, plan.params["out.W"]) and address(w) == address(plan.params["out.W"])
    assert w.flags.writeable and w.dtype == np.float32
    plan.forward({"x": X, "y": Y})
    before = np.array(plan.value("p"))
    w[...] = 0.0  # writing into the view changes the model, and so what the plan computes
    model.params["out.b"][...] = 2.0
    plan.forward()
    np.testing.assert_allclose(plan.value("p"), np.full((4, 1), 1 / (1 + np.exp(-2.0))), rtol=1e-6)
    assert not np.array_equal(before, plan.value("p"))
    model.set_params({"out.b": [0.0]})
    assert model.params["out.b"][0] == 0.0
    with pytest.raises(og.ShapeError, match=r"^set_params: 'out.b' has shape \(1,\), got \(2,\)$"):
        model.set_params({"out.b": [0.0, 1.0]})


def test_inputs_are_bound_not_copied_when_dtype_and_layout_match():
    model = xor_model()
    plan = model.compile(batch=4, keep=["p"])
    x = X.copy()
    plan.forward({"x": x, "y": Y})
    first = np.array(plan.value("p"))
    x[:] = x[::-1]  # the plan reads this array's memory: the next forward sees the change
    plan.forward()
    np.testing.assert_array_equal(plan.value("p"), first[::-1])
    x64 = X.astype(np.float64)  # another dtype is converted: a copy, the array is not read again
    plan.forward({"x": x64})
    x64[:] = 0
    plan.forward()
    np.testing.assert_array_equal(plan.value("p"), first)
    plan.forward({"x": np.asfortranarray(X)})  # another layout: copied in row-major order
    np.testing.assert_array_equal(plan.value("p"), first)


def test_values_and_gradients_are_read_only_views():
    model = xor_model()
    plan = model.compile(batch=4, keep=["p"])
    plan.forward({"x": X, "y": Y})
    plan.backward()
    p = plan.value("p")
    assert not p.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        p[0] = 1
    g = plan.grad("out.W")
    assert not g.flags.writeable and g.shape == (2, 1)
    assert np.shares_memory(g, plan.grads["out.W"])
    with pytest.raises(og.GraphError, match=r"^no gradient for 'hidden'"):
        plan.grad("hidden")
    del plan  # views keep the plan's buffers alive
    assert np.isfinite(g).all() and np.isfinite(p).all()


def test_gradients_match_central_differences():
    model = xor_model(dtype="float64")
    plan = model.compile(batch=4, input_grads=["x"])
    inputs = {"x": X.astype(np.float64) * 0.7 + 0.1, "y": Y.astype(np.float64)}
    plan.forward(inputs)
    plan.backward()
    h = 1e-6
    for name, w in model.params.items():
        analytic = np.array(plan.grad(name))
        numeric = np.empty_like(w)
        for i in range(w.size):
            keep = w.flat[i]
            w.flat[i] = keep + h
            plan.forward()
            up = plan.loss
            w.flat[i] = keep - h
            plan.forward()
            numeric.flat[i] = (up - plan.loss) / (2 * h)
            w.flat[i] = keep
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-9, err_msg=name)
    assert plan.grad("x").shape == (4, 2)


def test_the_python_loop_equals_the_cpp_loop():
    # examples/python/xor.py against examples/xor_plan.cpp: same net, seed, lr, stopping rule.
    from conftest import SOURCE, python
    cpp, _ = run_json([os.path.join(EXAMPLES, "xor_plan")])
    py, _ = run_json([python(), os.path.join(SOURCE, "examples", "python", "xor.py")])
    assert py["epochs"] == cpp["epochs"] == 4714
    assert py["loss"] == pytest.approx(cpp["loss"], rel=1e-5) and py["loss"] <= 0.01


def test_optimizer_step_on_a_plan():
    model = xor_model()
    plan = model.compile(batch=4)
    opt = og.Optimizer("sgd:lr=0.3")
    plan.forward({"x": X, "y": Y})
    plan.backward()
    expected = model.params["out.W"] - np.float32(0.3) * plan.grad("out.W")
    opt.step(plan)
    np.testing.assert_array_equal(model.params["out.W"], expected)
    assert opt.steps == 1


def test_modes_steps_and_profiles():
    g = og.Graph()
    x = g.input("x", ("N", 1000))
    d = og.op("dropout", x, p=0.5)
    g.set_loss(og.nn.sum(d))
    model = og.Model(g, seed=5)
    train = model.compile(batch=1, mode="train", keep=[d.name], profile=True)
    ones = np.ones((1, 1000), np.float32)
    train.forward({"x": ones})
    kept = np.count_nonzero(train.value(d.name))
    assert 400 < kept < 600 and train.training
    first = np.array(train.value(d.name))
    train.step = 1
    train.forward()
    assert not np.array_equal(first, train.value(d.name))  # another step, another mask
    train.step = 0
    train.forward()
    np.testing.assert_array_equal(first, train.value(d.name))  # the same step, the same mask
    ev = model.compile(batch=1, mode="eval", keep=[d.name], backward=False)
    ev.forward({"x": ones})
    np.testing.assert_array_equal(ev.value(d.name), ones)
    names = [p["node"] for p in train.profile()]
    assert d.name in names and all(p["forward_calls"] >= 3 for p in train.profile() if p["node"] == d.name)
    with pytest.raises(ValueError, match=r"^compile: mode is 'train', 'eval' or 'auto', got 'test'$"):
        model.compile(batch=1, mode="test")


def _fused_and_unfused(model, xs, node):
    """The profile row of `node` with fuse on and off, after one step of each; asserts that
    every gradient has the same bits both ways."""
    grads, rows = {}, {}
    for fuse in (True, False):
        plan = model.compile(batch=xs.shape[0], profile=True, fuse=fuse)
        plan.forward({"x": xs})
        plan.backward()
        grads[fuse] = {k: np.array(v) for k, v in plan.grads.items()}
        rows[fuse] = {r["node"]: r for r in plan.profile()}[node]
    for k in grads[True]:
        assert grads[True][k].tobytes() == grads[False][k].tobytes()  # the same bits
    return rows


def test_fused_bias_and_relu_profiles_and_bits():
    g = og.Graph()
    x = g.input("x", ("N", 20))
    w = g.param("W", (20, 30))
    b = g.param("b", (30,))
    h = og.nn.relu(og.op("bias_add", og.nn.matmul(x, w), b))
    g.set_loss(og.nn.sum(h))
    xs = np.random.default_rng(1).uniform(-1, 1, (7, 20)).astype(np.float32)
    relu = _fused_and_unfused(og.Model(g, seed=3), xs, h.name)
    for fuse in (True, False):
        assert relu[fuse]["fused_into"] == ("matmul_1" if fuse else None)
        assert relu[fuse]["forward_calls"] == (0 if fuse else 1) and relu[fuse]["backward_calls"] == 1


def test_relu_vjp_left_to_max_pool_profiles_and_bits():
    g = og.Graph()
    x = g.input("x", ("N", 2, 8, 8))
    k = g.param("K", (3, 2, 3, 3))
    h = og.nn.relu(og.op("conv2d", x, k, padding=1))
    p = og.op("max_pool2d", h, kernel=2)
    g.set_loss(og.nn.sum(p))
    xs = np.random.default_rng(1).uniform(-1, 1, (5, 2, 8, 8)).astype(np.float32)
    relu = _fused_and_unfused(og.Model(g, seed=3), xs, h.name)
    for fuse in (True, False):
        assert relu[fuse]["vjp_absorbed_by"] == (p.name if fuse else None)
        assert relu[fuse]["backward_calls"] == (0 if fuse else 1)
    # The pool itself runs image by image inside the convolution, both passes.
    pool = _fused_and_unfused(og.Model(g, seed=3), xs, p.name)
    for fuse in (True, False):
        assert (pool[fuse]["fused_into"] is not None) == fuse
        assert pool[fuse]["vjp_absorbed_by"] == pool[fuse]["fused_into"]
        assert pool[fuse]["forward_calls"] == (0 if fuse else 1)
        assert pool[fuse]["backward_calls"] == (0 if fuse else 1)
    assert pool[True]["fused_into"].startswith("conv2d")
