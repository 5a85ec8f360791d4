"""Ops defined in Python: registered at run time, checked like any op, usable in graphs
and model files; their mistakes are reported with the op, the node and the reason."""
import os

import numpy as np
import pytest

import opgraph as og


@og.custom_op("test_softplus", doc="softplus in NumPy")
class Softplus:
    def forward(x):
        return np.logaddexp(0, x)

    def vjp(g, y, x):
        return g / (1 + np.exp(-x))


def gradient_error(report):
    return next(c["measure"] for c in report.ops[0]["checks"] if c["property"] == "gradient")


def test_a_python_op_passes_the_contract_checks():
    info = og.op_info("test_softplus")
    assert info["source"] == "python" and info["doc"] == "softplus in NumPy" and info["has_vjp"]
    assert "test_softplus" in og.ops(source="python")
    report = og.check("test_softplus")
    assert report.passed, str(report)
    assert 0 < gradient_error(report) < 1e-8
    properties = {c["property"] for c in report.ops[0]["checks"]}
    assert {"gradient", "f32", "threads", "finite"} <= properties


def test_gradcheck_of_ops_at_any_size():
    results = og.gradcheck("test_softplus")
    assert len(results) == 1 and results[0].passed and results[0].max_error < 1e-8
    big = og.gradcheck("test_softplus", sizes=(300, 257))
    assert big[0].config == "[300,257]" and big[0].passed
    relu = og.gradcheck("relu", sizes=(300, 17))
    assert relu and all(r.passed and r.max_error <= 1e-6 for r in relu)


def test_checks_fail_a_python_op_that_is_wrong():
    og.register_op("test_nan", forward=lambda x: x * np.nan, vjp=lambda g, y, x: g * np.nan)
    report = og.check("test_nan")
    assert not report.passed
    bad = report.failures()[0]
    first = next(c for c in bad["checks"] if not c["passed"])
    assert first["property"] == "finite" and "nan" in first["detail"]
    assert "test_nan" in str(report) and str(report).endswith("1 ops: 0 passed, 1 failed")
    og.register_op("test_wrong_vjp", forward=np.tanh, vjp=lambda g, y, x: g * (1 - y))  # should be 1 - y^2
    report = og.check("test_wrong_vjp")
    assert not report.passed and gradient_error(report) > 0.1
    detail = next(c["detail"] for c in report.ops[0]["checks"] if c["property"] == "gradient")
    assert "vjp against f64 central differences: relative error" in detail


def test_the_nan_check_catches_a_python_op_that_turns_nan_into_zero_unless_declared():
    # np.maximum keeps NaN; np.fmax, like std::max(0, x), drops it.
    og.register_op("test_fmax_relu", forward=lambda x: np.fmax(x, 0), vjp=lambda g, y, x: g * (x > 0))
    report = og.check("test_fmax_relu")
    assert not report.passed
    nan = next(c for c in report.ops[0]["checks"] if c["property"] == "nan")
    assert not nan["passed"]
    assert "(f64): NaN at element " in nan["detail"] and "gives no NaN in the output" in nan["detail"]
    assert all(c["passed"] for c in report.ops[0]["checks"] if c["property"] != "nan")
    og.register_op("test_maximum_relu", forward=lambda x: np.maximum(x, 0), vjp=lambda g, y, x: g * (x > 0))
    assert og.check("test_maximum_relu").passed
    og.register_op("test_nan_to_num", forward=lambda x: np.nan_to_num(np.fmax(x, 0)), vjp=lambda g, y, x: g * (x > 0),
                   replaces_nan=True)
    declared = og.check("test_nan_to_num")
    assert declared.passed, str(declared)
    nan = next(c for c in declared.ops[0]["checks"] if c["property"] == "nan")
    assert nan["detail"] == "not asked: the op replaces NaN on purpose (.replaces_nan())"


def test_shape_rules_and_attributes():
    og.register_op("test_tile", forward=lambda x, k: np.tile(x, (1, k)),
                   vjp=lambda g, y, x, k: g.reshape(g.shape[0], k, -1).sum(axis=1),
                   shape=lambda s, k: (s[0], s[1] * k if isinstance(s[1], int) else s[1]),
                   attrs={"k": 2}, checks=[["[a,b]"]])
    g = og.Graph()
    x = g.input("x", ("N", 3))
    t = og.op("test_tile", x, k=3)
    assert t.shape == ("N", 9) and og.nn.test_tile(x).shape == ("N", 6)
    assert og.op_info("test_tile")["attrs"] == {"k": 2}
    assert og.check("test_tile").passed
    g.set_loss(og.nn.sum(t))
    plan = og.Model(g).compile(batch=2, keep=[t.name], input_grads=["x"])
    X = np.arange(6, dtype=np.float32).reshape(2, 3)
    plan.forward({"x": X})
    plan.backward()
    np.testing.assert_array_equal(plan.value(t.name), np.tile(X, (1, 3)))
    np.testing.assert_array_equal(plan.grad("x"), np.full((2, 3), 3.0))
    with pytest.raises(og.GraphError, match=r"test_tile: attribute 'k' expects int, got the string 'three'$"):
        og.op("test_tile", x, k="three")


def test_mistakes_in_a_python_op_name_the_op_and_node():
    def boom(x):
        raise ValueError("boom")

    og.register_op("test_raises", forward=boom)
    og.register_op("test_bad_shape", forward=lambda x: x[:1])
    og.register_op("test_bad_rule", forward=lambda x: x, shape=lambda s: "N")
    line = boom.__code__.co_firstlineno + 1  # the raise
    expected = {"test_raises": f"node 'r': test_raises: forward raised ValueError: boom (at test_python_op.py:{line})",
                "test_bad_shape": "node 'r': test_bad_shape: forward returned shape [1,2], expected [4,2]"}
    for op, message in expected.items():
        g = og.Graph()
        x = g.input("x", ("N", 2))
        g.add_output(og.op(op, x, name="r"))
        plan = og.Model(g).compile(batch=4, backward=False)
        with pytest.raises(og.DataError) as e:
            plan.forward({"x": np.zeros((4, 2), np.float32)})
        assert str(e.value) == message
    with pytest.raises(og.ShapeError, match=r"test_bad_rule: the shape rule's result: a shape is a list or tuple"):
        og.op("test_bad_rule", x)
    with pytest.raises(og.GraphError, match=r"^test_softplus: op 'test_softplus' is already registered \(by python\)$"):
        og.register_op("test_softplus", forward=np.exp)
    og.register_op("test_rule_raises", forward=lambda x: x, shape=lambda s: 1 / 0)
    with pytest.raises(og.ShapeError, match=r"test_rule_raises: the shape rule raised ZeroDivisionError: division by zero "
                                            r"\(at test_python_op.py:\d+\)$"):
        og.op("test_rule_raises", x)
    with pytest.raises(ValueError, match=r"^register_op\('test_no_default'\): attribute 'k' needs a default value"):
        og.register_op("test_no_default", forward=np.exp, attrs={"k": None})


def test_a_python_op_in_a_model_file_trains(tmp_path):
    path = tmp_path / "model.og"
    path.write_text("input x [N, 2]\nlabels y [N]\nparam W [2, 16]\nparam b [16] zeros\nparam V [16, 2]\n"
                    "h = test_softplus(bias_add(matmul(x, W), b))\noutput logits = matmul(h, V)\n"
                    "loss xent = softmax_cross_entropy(logits, y)\n")
    data = og.load_data("moons:n=600,noise=0.1,test=0.3,seed=1")
    results = {}
    for op in ("test_softplus", "softplus"):
        p = tmp_path / f"{op}.og"
        p.write_text(path.read_text().replace("test_softplus", op))
        model = og.load(p, seed=1)
        model.fit(data.x, data.y, optimizer="adam:lr=0.03", epochs=100, batch=32)
        results[op] = model.evaluate(data.x_test, data.y_test).accuracy
    assert results["test_softplus"] >= 0.95
    assert abs(results["test_softplus"] - results["softplus"]) <= 0.02
