// Elementwise math with NumPy's broadcasting: maximum, minimum and where over two or
// three inputs; pow (a constant exponent), sqrt, rsqrt, abs and clamp over one;
// comparisons that give masks of 0 and 1 (no gradient: a step's derivative is 0).
#include <cmath>
#include <limits>
#include <numbers>

#include <opgraph/graph/op.hpp>

namespace opgraph::ops {

namespace {
/// ONNX's TensorProto type code of the exported float type (FLOAT 1, DOUBLE 11).
std::int64_t onnx_float_type(const LoweringContext& c) { return c.dtype() == DType::f64 ? 11 : 1; }
}  // namespace

namespace {

/// The forward of a comparison: a mask of 1 where rel(a, b) holds, 0 elsewhere, in the
/// inputs' dtype.
template <class R>
auto compare(R rel) {
  return [rel](auto& k) {
    using T = scalar_of<decltype(k)>;
    broadcast_map([rel](T a, T b) { return rel(a, b) ? T(1) : T(0); }, k.out(), k.in(0), k.in(1));
  };
}

/// Whether a is kept over b: by maximum (kLarger) or minimum. Ties keep a, so a tie's
/// whole gradient goes to a (PyTorch splits it in halves; either is a subgradient).
template <bool kLarger, class T>
bool keeps_a(T a, T b) {
  return kLarger ? a >= b : a <= b;
}

/// maximum and minimum: inputs, domains, kernels and checks, NaN if either side is NaN.
template <bool kLarger>
void extremum(OpBuilder& op) {
  op.input("a")
      .input("b")
      // b on whole numbers, a at least 0.1 away from them: no ties for the checker to step across.
      .domain("a", {.lo = -2.5, .hi = 2.5, .kinks = {-2, -1, 0, 1, 2}})
      .domain("b", {.kind = Domain::Kind::indices, .lo = -2, .hi = 3})
      .shape(broadcast_shape())
      .saves({"a", "b"})
      .scratch(broadcast_scratch())
      .forward([](auto& k) {
        broadcast_map([](auto a, auto b) { return a != a || b != b ? a + b : keeps_a<kLarger>(a, b) ? a : b; }, k.out(),
                      k.in(0), k.in(1));
      })
      .vjp([](auto& k) {
        using T = scalar_of<decltype(k)>;
        broadcast_vjp(k, 0, [](T g, T a, T b) { return keeps_a<kLarger>(a, b) ? g : T(0); });
        broadcast_vjp(k, 1, [](T g, T a, T b) { return keeps_a<kLarger>(a, b) ? T(0) : g; });
      })
      .check({"[a,b]", "[a,b]"})
      .check({"[a,b]", "[b]"})
      .check({"[a,1,c]", "[a,b,c]"});
}

}  // namespace

OPGRAPH_OP(maximum)
    .lower(lowering::same("Max"))
    .doc("the larger of a and b, elementwise, NumPy broadcasting (NaN if either is NaN)")
    .apply(extremum<true>);

OPGRAPH_OP(minimum)
    .lower(lowering::same("Min"))
    .doc("the smaller of a and b, elementwise, NumPy broadcasting (NaN if either is NaN)")
    .apply(extremum<false>);

OPGRAPH_OP(pow)
    .lower([](LoweringContext& c) { c.emit("Pow", {c.input(0), c.scalar(c.attr_float("exponent"), "exponent")}, {c.output()}); })
    .doc("x ** exponent, elementwise, for a constant exponent (x < 0 only with a whole exponent, as NumPy)")
    .input("x")
    .attr("exponent", AttrType::real, 2.0, "the constant power")
    .shape(same_shape_as(0))
    .saves({"x"})
    .forward([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const T e = static_cast<T>(k.attr_float("exponent"));
      if (e == T(2)) map(k.in(0), k.out(), [](T x) { return x * x; });
      else if (e == T(-1)) map(k.in(0), k.out(), [](T x) { return T(1) / x; });  // ONNX's Reciprocal, exactly
      else map(k.in(0), k.out(), [e](T x) { return std::pow(x, e); });
    })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const T e = static_cast<T>(k.attr_float("exponent"));
      zip(k.in(0), k.grad_out(), k.grad_in(0), [e](T x, T g) { return e == T(0) ? T(0) : g * e * std::pow(x, e - T(1)); });
    })
    .domain("x", {.lo = 0.2, .hi = 3.0})
    .check({"[a,b]"})
    .check({"[a,b]"}, {{"exponent", 3.0}})
    .check({"[a,b]"}, {{"exponent", -1.5}})
    .check({"[a,b]"}, {{"exponent", 0.5}});

OPGRAPH_OP(sqrt)
    .lower(lowering::same("Sqrt"))
    .doc("the square root, elementwise (NaN below 0, as NumPy)")
    .input("x")
    .shape(same_shape_as(0))
    .saves_output()
    .forward([](auto& k) { map(k.in(0), k.out(), [](auto x) { return std::sqrt(x); }); })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      zip(k.out(), k.grad_out(), k.grad_in(0), [](T y, T g) { return g / (T(2) * y); });
    })
    .domain("x", {.lo = 0.2, .hi = 4.0})
    .check({"[a,b]"});

OPGRAPH_OP(rsqrt)
    .lower([](LoweringContext& c) { c.emit("Reciprocal", {c.emit_fresh("Sqrt", {c.input(0)}, "sqrt")}, {c.output()}); })
    .doc("1 / sqrt(x), elementwise")
    .input("x")
    .shape(same_shape_as(0))
    .saves({"x"})
    .saves_output()
    .forward([](auto& k) {
      using T = scalar_of<decltype(k)>;
      map(k.in(0), k.out(), [](T x) { return T(1) / std::sqrt(x); });
    })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      zip(k.in(0), k.out(), k.grad_out(), k.grad_in(0), [](T x, T y, T g) { return T(-0.5) * g * y / x; });
    })
    .domain("x", {.lo = 0.2, .hi = 4.0})
    .check({"[a,b]"});

OPGRAPH_OP(erf)
    .lower(lowering::same("Erf"))
    .doc("the error function, elementwise (ONNX's Erf; PyTorch exports the exact GELU through it)")
    .input("x")
    .shape(same_shape_as(0))
    .saves({"x"})
    .forward([](auto& k) { map(k.in(0), k.out(), [](auto x) { return std::erf(x); }); })
    .vjp([](auto& k) {  // d erf / dx = 2 / sqrt(pi) exp(-x^2)
      using T = scalar_of<decltype(k)>;
      const T c = static_cast<T>(2.0 / std::sqrt(std::numbers::pi));
      zip(k.in(0), k.grad_out(), k.grad_in(0), [c](T x, T g) { return g * c * std::exp(-x * x); });
    })
    .check({"[a,b]"});

OPGRAPH_OP(abs)
    .lower(lowering::same("Abs"))
    .doc("|x|, elementwise (gradient 0 at 0)")
    .input("x")
    .shape(same_shape_as(0))
    .saves({"x"})
    .forward([](auto& k) { map(k.in(0), k.out(), [](auto x) { return std::abs(x); }); })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      zip(k.in(0), k.grad_out(), k.grad_in(0), [](T x, T g) { return x > T(0) ? g : x < T(0) ? -g : T(0); });
    })
    .domain("x", {.kinks = {0.0}})
    .check({"[a,b]"});

OPGRAPH_OP(clamp)
    .lower([](LoweringContext& c) {
      const std::string lo = c.attr("min").is_none() ? std::string() : c.scalar(c.attr_float("min"), "min");
      const std::string hi = c.attr("max").is_none() ? std::string() : c.scalar(c.attr_float("max"), "max");
      c.emit("Clip", {c.input(0), lo, hi}, {c.output()});
    })
    .doc("x limited to [min, max], elementwise; none leaves a side open (gradient 0 outside)")
    .input("x")
    .attr("min", AttrType::real, AttrValue(), "the lower bound; none: no bound")
    .attr("max", AttrType::real, AttrValue(), "the upper bound; none: no bound")
    .shape([](const ShapeContext& c) {
      if (!c.attr("min").is_none() && !c.attr("max").is_none() && c.attr_float("min") > c.attr_float("max"))
        c.fail("min={} is above max={}", c.attr_float("min"), c.attr_float("max"));
      return c.in(0);
    })
    .saves({"x"})
    .forward([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const T lo = k.attr("min").is_none() ? -std::numeric_limits<T>::infinity() : static_cast<T>(k.attr_float("min"));
      const T hi = k.attr("max").is_none() ? std::numeric_limits<T>::infinity() : static_cast<T>(k.attr_float("max"));
      map(k.in(0), k.out(), [lo, hi](T x) { return x < lo ? lo : x > hi ? hi : x; });  // NaN stays NaN
    })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const T lo = k.attr("min").is_none() ? -std::numeric_limits<T>::infinity() : static_cast<T>(k.attr_float("min"));
      const T hi = k.attr("max").is_none() ? std::numeric_limits<T>::infinity() : static_cast<T>(k.attr_float("max"));
      zip(k.in(0), k.grad_out(), k.grad_in(0), [lo, hi](T x, T g) { return x < lo || x > hi ? T(0) : g; });
    })
    .domain("x", {.kinks = {-0.5, 0.5}})
    .check({"[a,b]"}, {{"min", -0.5}, {"max", 0.5}})
    .check({"[a,b]"}, {{"min", -0.5}});

OPGRAPH_OP(where)
    .lower([](LoweringContext& c) {  // the condition is a 0/1 mask: nonzero selects a
      const std::string cond = c.emit_fresh("Cast", {c.input(0)}, "cond", {{"to", std::int64_t{9}}});  // BOOL
      c.emit("Where", {cond, c.input(1), c.input(2)}, {c.output()});
    })
    .doc("a where cond is nonzero, else b, elementwise, NumPy broadcasting (cond: a mask, e.g. from less)")
    .input("cond", false)
    .input("a")
    .input("b")
    .shape(broadcast_shape())
    .saves({"cond"})
    .scratch(broadcast_scratch())
    .forward([](auto& k) {
      using T = scalar_of<decltype(k)>;
      broadcast_map([](T c, T a, T b) { return c != T(0) ? a : b; }, k.out(), k.in(0), k.in(1), k.in(2));
    })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      for (int i = 1; i <= 2; ++i) {
        if (!k.needs_grad(i)) continue;
        const bool first = i == 1;
        const auto& g = k.grad_out();
        const auto& gi = k.grad_in(i);
        auto f = [first](T gv, T c) { return (c != T(0)) == first ? gv : T(0); };
        if (gi.size == g.size) {
          broadcast_map(f, gi, g, k.in(0));
        } else {
          const auto tmp = view_like(k.scratch().data, g);
          broadcast_map(f, tmp, g, k.in(0));
          sum_to(View<const T>(tmp), gi);
        }
      }
    })
    .domain("cond", {.kind = Domain::Kind::binary_labels})
    .check({"[a,b]", "[a,b]", "[a,b]"})
    .check({"[a,1]", "[a,b]", "[b]"})
    .check({"[a,b]", "[]", "[a,b]"});

OPGRAPH_OP(less)
    .lower([](LoweringContext& c) {  // ONNX compares into booleans; opgraph's masks are 0/1 reals
      const std::string b = c.emit_fresh("Less", {c.input(0), c.input(1)}, "bool");
      c.emit("Cast", {b}, {c.output()}, {{"to", onnx_float_type(c)}});
    })
    .doc("1 where a < b, else 0: a mask, NumPy broadcasting, no gradient")
    .input("a", false)
    .input("b", false)
    .shape(broadcast_shape())
    .forward(compare([](auto a, auto b) { return a < b; }))
    .check({"[a,b]", "[a,b]"})
    .check({"[a,b]", "[b]"});

OPGRAPH_OP(less_equal)
    .lower([](LoweringContext& c) {  // ONNX compares into booleans; opgraph's masks are 0/1 reals
      const std::string b = c.emit_fresh("LessOrEqual", {c.input(0), c.input(1)}, "bool");
      c.emit("Cast", {b}, {c.output()}, {{"to", onnx_float_type(c)}});
    })
    .doc("1 where a <= b, else 0: a mask, NumPy broadcasting, no gradient")
    .input("a", false)
    .input("b", false)
    .shape(broadcast_shape())
    .forward(compare([](auto a, auto b) { return a <= b; }))
    .check({"[a,b]", "[a,b]"})
    .check({"[a,b]", "[b]"});

OPGRAPH_OP(greater)
    .lower([](LoweringContext& c) {  // ONNX compares into booleans; opgraph's masks are 0/1 reals
      const std::string b = c.emit_fresh("Greater", {c.input(0), c.input(1)}, "bool");
      c.emit("Cast", {b}, {c.output()}, {{"to", onnx_float_type(c)}});
    })
    .doc("1 where a > b, else 0: a mask, NumPy broadcasting, no gradient")
    .input("a", false)
    .input("b", false)
    .shape(broadcast_shape())
    .forward(compare([](auto a, auto b) { return a > b; }))
    .check({"[a,b]", "[a,b]"})
    .check({"[a,b]", "[b]"});

OPGRAPH_OP(greater_equal)
    .lower([](LoweringContext& c) {  // ONNX compares into booleans; opgraph's masks are 0/1 reals
      const std::string b = c.emit_fresh("GreaterOrEqual", {c.input(0), c.input(1)}, "bool");
      c.emit("Cast", {b}, {c.output()}, {{"to", onnx_float_type(c)}});
    })
    .doc("1 where a >= b, else 0: a mask, NumPy broadcasting, no gradient")
    .input("a", false)
    .input("b", false)
    .shape(broadcast_shape())
    .forward(compare([](auto a, auto b) { return a >= b; }))
    .check({"[a,b]", "[a,b]"})
    .check({"[a,b]", "[b]"});

// to_float: what ONNX's Cast of an integer tensor to float becomes, and how an imported model
// compares or scales its integer inputs (BERT's padding mask, ids != 0).
OPGRAPH_OP(to_float)
    .lower([](LoweringContext& c) { c.emit("Cast", {c.input(0)}, {c.output()}, {{"to", onnx_float_type(c)}}); })
    .doc("the values of an i64 tensor as reals (token ids to compare with a padding id, positions to scale); no "
         "gradient")
    .index_input("x")
    .shape(same_shape_as(0))
    .forward([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const auto& x = k.index_in(0);
      T* y = k.out().data;
      parallel_for(x.size, kElementwiseGrain, [&](std::int64_t b, std::int64_t e) {
        for (std::int64_t i = b; i < e; ++i) y[i] = static_cast<T>(x.data[i]);
      });
    })
    .check({"[a,b]"});

OPGRAPH_OP(equal)
    .lower([](LoweringContext& c) {  // ONNX compares into booleans; opgraph's masks are 0/1 reals
      const std::string b = c.emit_fresh("Equal", {c.input(0), c.input(1)}, "bool");
      c.emit("Cast", {b}, {c.output()}, {{"to", onnx_float_type(c)}});
    })
    .doc("1 where a == b, else 0: a mask, NumPy broadcasting, no gradient")
    .input("a", false)
    .input("b", false)
    .shape(broadcast_shape())
    .forward(compare([](auto a, auto b) { return a == b; }))
    .check({"[a,b]", "[a,b]"})
    .check({"[a,b]", "[b]"});

OPGRAPH_OP(not_equal)
    .lower([](LoweringContext& c) {
      const std::string b = c.emit_fresh("Not", {c.emit_fresh("Equal", {c.input(0), c.input(1)}, "equal")}, "bool");
      c.emit("Cast", {b}, {c.output()}, {{"to", onnx_float_type(c)}});
    })
    .doc("1 where a != b, else 0: a mask, NumPy broadcasting, no gradient")
    .input("a", false)
    .input("b", false)
    .shape(broadcast_shape())
    .forward(compare([](auto a, auto b) { return a != b; }))
    .check({"[a,b]", "[a,b]"})
    .check({"[a,b]", "[b]"});

}  // namespace opgraph::ops
