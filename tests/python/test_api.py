"""The module's API: building graphs, errors with their messages, dtypes and shapes."""
import numpy as np
import pytest

import opgraph as og
from conftest import xor_graph


def test_ops_are_listed_with_their_contract():
    names = og.ops()
    assert {"matmul", "relu", "conv2d", "layer_norm", "split", "concat"} <= set(names)
    assert names == sorted(names)
    info = og.op_info("split")
    assert info["signature"] == "split(x, sizes=none, parts=none, axis=-1)"
    assert info["outputs"] == ["y..."] and info["attrs"]["axis"] == -1
    assert og.op_info("embedding")["inputs"] == ["ids", "table"]
    assert "layer_norm" in dir(og.nn)


def test_graph_building_and_shapes():
    g = xor_graph()
    assert g["x"].shape == ("N", 2) and g["hidden.W"].shape == (2, 2)
    assert g["p"].op == "logistic" and g["x"].op == "input" and g["out.b"].op == "param"
    assert g.loss.name == "loss" and len(g) == 13
    text = str(g)
    assert "param hidden.W [2, 2] xavier" in text and "p = logistic(out)" in text


def test_numpy_numbers_are_sizes_and_attributes_and_a_fraction_is_no_size():
    # What y.max() + 1 or an array's element gives is a NumPy scalar: a size and an
    # attribute like the Python number it holds (np.int64(3) had been refused as a
    # dimension, "got 3"), in a list and as a 1-D array too.
    g = og.Graph()
    x = g.input("x", ("N", np.int64(4)))
    assert g.param("w", (4, np.int32(3))).shape == (4, 3)
    assert og.nn.dense(x, np.int64(3), "d").shape == ("N", 3)
    a, b = og.op("split", x, sizes=np.array([1, 3]), axis=np.int64(1))
    assert a.shape == ("N", 1) and b.shape == ("N", 3)
    assert og.op("concat", [a, b], axis=np.int64(-1)).shape == ("N", 4)
    # A width of 3.5 is refused, not cut to 3.
    with pytest.raises(TypeError, match=r"^param 'e\.W': a dimension is an int or a name such as 'N', got 3\.5$"):
        og.nn.dense(x, 3.5, "e")


def test_arithmetic_operators_add_nodes():
    g = og.Graph()
    x = g.input("x", ("N", 2))
    v = g.param("V", (2, 5))
    assert (x * 2).op == "scale" and (2 * x).op == "scale" and (x + 1).op == "scale" and (-x).op == "scale"
    assert (x + x).op == "add" and (x - x).op == "sub" and (x * x).op == "mul" and (x / x).op == "div"
    assert (x @ v).op == "matmul" and (x @ v).shape == ("N", 5)
    model = og.Model(g)
    g.set_loss(og.nn.mean(((3 - x) / 2 + x * x) @ v))
    model = og.Model(g, dtype="float64")
    plan = model.compile(batch=3, keep_all=True)
    X = np.arange(6, dtype=np.float64).reshape(3, 2)
    plan.forward({"x": X})
    expected = np.mean(((3 - X) / 2 + X * X) @ model.params["V"])
    assert plan.loss == pytest.approx(expected, rel=1e-14)


def test_several_outputs_and_variadic_inputs():
    g = og.Graph()
    x = g.input("x", ("N", 5))
    a, b = og.op("split", x, sizes=[2, 3], axis=1)
    assert a.shape == ("N", 2) and b.shape == ("N", 3) and a.op == "split"
    c = og.op("concat", [b, a, b], axis=1)
    assert c.shape == ("N", 8)
    g.add_output(c)
    plan = og.Model(g).compile(batch=2, backward=False)
    X = np.arange(10, dtype=np.float32).reshape(2, 5)
    plan.forward({"x": X})
    np.testing.assert_array_equal(plan.value(c.name), np.concatenate([X[:, 2:], X[:, :2], X[:, 2:]], axis=1))


def test_errors_carry_the_cli_messages_and_builtin_bases():
    g = og.Graph()
    x = g.input("x", ("N", 2))
    w = g.param("W", (3, 4))
    with pytest.raises(og.ShapeError) as e:
        og.op("matmul", x, w)
    assert str(e.value).endswith("matmul: inner dimensions differ: [N,2] x [3,4] (2 against 3)")
    assert e.value.detail == "matmul: inner dimensions differ: [N,2] x [3,4] (2 against 3)"
    assert e.value.where.startswith("test_api.py:")
    assert isinstance(e.value, ValueError) and isinstance(e.value, og.Error)
    with pytest.raises(og.GraphError, match=r"^unknown op 'relux' \(did you mean 'relu'\?\)$"):
        og.op("relux", x)
    with pytest.raises(og.GraphError, match=r"leaky_relu: unknown attribute 'alpha' \(known: negative_slope\)$"):
        og.op("leaky_relu", x, alpha=0.1)
    with pytest.raises(og.GraphError, match=r"duplicate node name 'x' \(first declared at test_api.py:\d+\)$"):
        g.input("x", ("N", 3))
    with pytest.raises(og.ShapeError, match=r"shape \[N,3\] holds the batch dimension N; parameters need fixed sizes"):
        g.param("b", ("N", 3))
    with pytest.raises(TypeError, match=r"^relu: inputs are graph values \(og.Value\), got float"):
        og.op("relu", 3.0)
    with pytest.raises(og.ShapeError, match=r"^dense 'd': input must be \[batch, features\], got \[N\]$"):
        og.nn.dense(g.input("ids", ("N",), dtype="int64"), 3, "d")
    with pytest.raises(AttributeError, match="opgraph.nn has no 'reluu'"):
        og.nn.reluu
    with pytest.raises(og.ParseError, match=r"unknown key 'classes' for blobs \(it takes n, centers, spread, dims"):
        og.load_data("blobs:n=30,classes=3")


def test_plan_inputs_check_dtype_and_shape():
    model = og.Model(xor_graph(), seed=0)
    plan = model.compile(batch=4)
    X = np.zeros((4, 2), np.float32)
    with pytest.raises(og.ShapeError) as e:
        plan.forward({"x": X[:2]})
    assert str(e.value) == "input 'x': expected shape [4,2] (declared [N,2]), got [2,2]"
    with pytest.raises(TypeError, match=r"^input 'x': expected real numbers, got an array of complex128$"):
        plan.forward({"x": X.astype(np.complex128)})
    with pytest.raises(TypeError, match=r"^input 'x': expected an array of numbers, got dict$"):
        plan.forward({"x": {}})
    with pytest.raises(og.GraphError, match=r"^no input 'z'"):
        plan.forward({"z": X})
    with pytest.raises(og.GraphError, match=r"value of 'hidden' is not kept after forward"):
        plan.forward({"x": X, "y": np.zeros((4, 1), np.float32)})
        plan.value("hidden")
    g = og.Graph()
    ids = g.input("ids", ("N",), dtype="int64")
    table = g.param("E", (10, 3))
    g.add_output(og.op("embedding", ids, table))
    p = og.Model(g).compile(batch=2, backward=False)
    with pytest.raises(TypeError, match=r"^input 'ids': expected integer indices \(int64\), got float32 values"):
        p.forward({"ids": np.array([1, 2], np.float32)})
    p.forward({"ids": np.array([1, 2], np.int32)})  # any integer array converts
    with pytest.raises(og.DataError, match=r"^node 'embedding_1': embedding: id 10 at position 1 is outside the "
                                           r"table's 10 rows$"):
        p.forward({"ids": np.array([1, 10])})


def test_fit_argument_errors():
    model = og.Model(xor_graph(), seed=0)
    X = np.zeros((4, 2), np.float32)
    with pytest.raises(og.GraphError, match=r"^fit: the loss reads labels from input 'y': pass them as y$"):
        model.fit(X)
    with pytest.raises(og.ShapeError, match=r"y has shape \[3\], x has 4 rows"):
        model.fit(X, np.zeros(3))
    with pytest.raises(og.DataError, match=r"^fit: x: each sample has shape \[3\], the model's input 'x' takes \[2\]"):
        model.fit(np.zeros((4, 3), np.float32), np.zeros(4))
    with pytest.raises(og.ParseError, match=r"^optimizer 'adamm:lr=0.1': unknown optimizer 'adamm' \(did you mean 'adam'\?\)$"):
        model.fit(X, np.zeros(4), optimizer="adamm:lr=0.1")
    with pytest.raises(og.GraphError, match=r"^fit: no input 'xx' in the model \(did you mean 'x'\?\)$"):
        model.fit({"xx": X}, np.zeros(4))


def test_threads():
    before = og.threads()
    og.set_threads(1)
    assert og.threads() == 1
    og.set_threads(before)
    assert og.threads() == before
