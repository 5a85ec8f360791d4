// Deliberately broken ops: opgraph check must fail each and say why.
#include <algorithm>
#include <cmath>
#include <limits>

#include <opgraph/graph/op.hpp>

using namespace opgraph;

// mean over all elements whose vjp forgets the 1/N.
OPGRAPH_OP(bad_mean)
    .doc("mean whose vjp misses 1/N (broken on purpose)")
    .input("x")
    .shape(scalar_shape())
    .forward([](auto& k) {
      using T = scalar_of<decltype(k)>;
      k.out().data[0] = static_cast<T>(sum_over(k.in(0).size, [&](std::int64_t i) { return k.in(0).data[i]; }) /
                                       static_cast<double>(k.in(0).size));
    })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const T g = k.grad_out().data[0];
      map(k.grad_in(0), k.grad_in(0), [g](T) { return g; });
    })
    .check({"[a,b]"});

// leaky relu whose vjp forgets the slope on the negative side.
OPGRAPH_OP(bad_leaky)
    .doc("leaky relu whose vjp passes the full gradient for x < 0 (broken on purpose)")
    .input("x")
    .shape(same_shape_as(0))
    .saves({"x"})
    .forward([](auto& k) {
      using T = scalar_of<decltype(k)>;
      map(k.in(0), k.out(), [](T x) { return x > T(0) ? x : T(0.1) * x; });
    })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      zip(k.in(0), k.grad_out(), k.grad_in(0), [](T, T g) { return g; });
    })
    .domain("x", {.kinks = {0.0}})
    .check({"[a,b]"});

// x^2 whose vjp reads x but does not declare it saved: right in isolation, wrong in a
// plan that reuses x's buffer.
OPGRAPH_OP(sneaky_square)
    .doc("x * x whose vjp reads x without saving it (broken on purpose)")
    .input("x")
    .shape(same_shape_as(0))
    .forward([](auto& k) {
      using T = scalar_of<decltype(k)>;
      map(k.in(0), k.out(), [](T x) { return x * x; });
    })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      zip(k.in(0), k.grad_out(), k.grad_in(0), [](T x, T g) { return T(2) * x * g; });
    })
    .check({"[a,b]"});

// tanh whose forward and vjp return NaN everywhere: every check must see it (a fold with
// std::max once let it pass all of them).
OPGRAPH_OP(nan_tanh)
    .doc("tanh that returns NaN everywhere (broken on purpose)")
    .input("x")
    .shape(same_shape_as(0))
    .saves_output()
    .forward([](auto& k) {
      using T = scalar_of<decltype(k)>;
      map(k.in(0), k.out(), [](T) { return std::numeric_limits<T>::quiet_NaN(); });
    })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      map(k.grad_out(), k.grad_in(0), [](T) { return std::numeric_limits<T>::quiet_NaN(); });
    })
    .check({"[a,b]"});

// x * 2 whose vjp writes 4096 elements past the end of its gradient buffer.
OPGRAPH_OP(overrun_double)
    .doc("2 x whose vjp writes 4096 elements past its gradient (broken on purpose)")
    .input("x")
    .shape(same_shape_as(0))
    .forward([](auto& k) {
      using T = scalar_of<decltype(k)>;
      map(k.in(0), k.out(), [](T x) { return T(2) * x; });
    })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const auto& g = k.grad_out();
      T* d = k.grad_in(0).data;
      for (std::int64_t i = 0; i < g.size + 4096; ++i) d[i] = T(2) * g.data[i < g.size ? i : 0];
    })
    .check({"[a,b]"});

// x[i] + x[i+1] (flat, wrapping), declared in place although each kernel reads an element
// that another index's write has already replaced when they share a buffer.
OPGRAPH_OP(unsafe_in_place)
    .doc("x[i] + x[i+1], wrapping, declared in place wrongly (broken on purpose)")
    .input("x")
    .shape(same_shape_as(0))
    .in_place("x")
    .forward([](auto& k) {
      const auto& x = k.in(0);
      for (std::int64_t i = 0; i < x.size; ++i) k.out().data[i] = x.data[i] + x.data[(i + 1) % x.size];
    })
    .vjp([](auto& k) {
      const auto& g = k.grad_out();
      for (std::int64_t j = 0; j < g.size; ++j) k.grad_in(0).data[j] = g.data[j] + g.data[(j + g.size - 1) % g.size];
    })
    .check({"[a,b]"});

// A product a x b that declares an epilogue (.epilogue()) and never applies it: a plan
// that skipped the bias_add and relu after it would lose them.
OPGRAPH_OP(ignored_epilogue)
    .doc("a x b declaring an epilogue it never applies (broken on purpose)")
    .input("a")
    .input("b")
    .shape([](const ShapeContext& c) { return Shape{c.in(0)[0], c.in(1)[1]}; })
    .saves({"a", "b"})
    .epilogue()
    .forward([](auto& k) {
      const auto &a = k.in(0), &b = k.in(1);
      const std::int64_t n = a.dims[0], d = a.dims[1], m = b.dims[1];
      for (std::int64_t i = 0; i < n; ++i)
        for (std::int64_t j = 0; j < m; ++j) {
          scalar_of<decltype(k)> s = 0;
          for (std::int64_t p = 0; p < d; ++p) s += a.data[i * d + p] * b.data[p * m + j];
          k.out().data[i * m + j] = s;
        }
    })
    .vjp([](auto& k) {
      const auto &a = k.in(0), &b = k.in(1);
      const auto& g = k.grad_out();
      const std::int64_t n = a.dims[0], d = a.dims[1], m = b.dims[1];
      for (std::int64_t i = 0; i < n; ++i)
        for (std::int64_t p = 0; p < d; ++p) {
          scalar_of<decltype(k)> s = 0;
          for (std::int64_t j = 0; j < m; ++j) s += g.data[i * m + j] * b.data[p * m + j];
          k.grad_in(0).data[i * d + p] = s;
        }
      for (std::int64_t p = 0; p < d; ++p)
        for (std::int64_t j = 0; j < m; ++j) {
          scalar_of<decltype(k)> s = 0;
          for (std::int64_t i = 0; i < n; ++i) s += a.data[i * d + p] * g.data[i * m + j];
          k.grad_in(1).data[p * m + j] = s;
        }
    })
    .check({"[a,b]", "[b,c]"});

// 2x declaring that its vjp takes over a relu's before it (OpBuilder::absorbs_relu_vjp),
// whose vjp never zeroes the gradient where x is not positive.
OPGRAPH_OP(ignored_relu_vjp)
    .doc("2x declaring it takes over a relu's vjp, which it never does (broken on purpose)")
    .input("x")
    .shape(same_shape_as(0))
    .absorbs_relu_vjp()
    .forward([](auto& k) { map(k.in(0), k.out(), [](auto v) { return v + v; }); })
    .vjp([](auto& k) { map(k.grad_out(), k.grad_in(0), [](auto g) { return g + g; }); })
    .check({"[a,b]"});

// 2x declaring that its vjp takes over any activation's before it
// (OpBuilder::absorbs_activation_vjp), whose vjp knows only the relu's: told it took over
// a logistic's or a tanh's, it leaves the gradient as it was.
OPGRAPH_OP(relu_only_activation_vjp)
    .doc("2x declaring it takes over any activation's vjp, which it does for a relu only (broken on purpose)")
    .input("x")
    .shape(same_shape_as(0))
    .absorbs_activation_vjp()
    .forward([](auto& k) { map(k.in(0), k.out(), [](auto v) { return v + v; }); })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const bool relu = k.absorbed_activation() == math::Activation::relu;
      zip(k.in(0), k.grad_out(), k.grad_in(0), [relu](T x, T g) { return relu ? math::relu_vjp(x, g + g) : g + g; });
    })
    .check({"[a,b]"});

// 2x with its epilogue (a bias along the last axis and an activation, applied as they
// must be), declaring that its vjp writes the fused bias's gradient
// (OpBuilder::absorbs_bias_vjp), which it never does: a plan skipping the bias_add's vjp
// would leave the bias's gradient as it found it.
OPGRAPH_OP(ignored_bias_vjp)
    .doc("2x with an epilogue, declaring it writes the fused bias's gradient, which it never does (broken on purpose)")
    .input("x")
    .shape(same_shape_as(0))
    .epilogue()
    .absorbs_bias_vjp()
    .forward([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const T* bias = k.epilogue().bias_data();
      const std::int64_t cols = k.out().cols();
      for (std::int64_t i = 0; i < k.out().size; ++i) {
        T v = k.in(0).data[i] + k.in(0).data[i];
        if (bias) v = v + bias[i % cols];
        math::activate(k.epilogue().act, &v, 1);
        k.out().data[i] = v;
      }
    })
    .vjp([](auto& k) { map(k.grad_out(), k.grad_in(0), [](auto g) { return g + g; }); })
    .check({"[a,b]"});

// The sigmoid as 0.5 (1 + tanh(x / 2)), declared the logistic activation
// (OpBuilder::activation): the same function, other bits. A plan that fused it into the
// product before it would run math::logistic instead, and its results would depend on
// whether the plan fused.
OPGRAPH_OP(tanh_form_sigmoid)
    .doc("the sigmoid through tanh, declared the logistic activation (broken on purpose)")
    .input("x")
    .shape(same_shape_as(0))
    .saves_output()
    .in_place("x")
    .activation(math::Activation::logistic)
    .forward([](auto& k) {
      using T = scalar_of<decltype(k)>;
      map(k.in(0), k.out(), [](T x) { return T(0.5) * (T(1) + std::tanh(x / T(2))); });
    })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      zip(k.out(), k.grad_out(), k.grad_in(0), [](T y, T g) { return g * y * (T(1) - y); });
    })
    .check({"[a,b]"});

// The logistic activation with its vjp written g (y - y^2): the same derivative, other
// bits. A product that took the vjp over (OpBuilder::absorbs_activation_vjp) computes
// math::logistic_vjp, g y (1 - y), and a plan's gradients would depend on whether it did.
OPGRAPH_OP(expanded_logistic_vjp)
    .doc("the logistic activation whose vjp is written g (y - y^2) (broken on purpose)")
    .input("x")
    .shape(same_shape_as(0))
    .saves_output()
    .in_place("x")
    .activation(math::Activation::logistic)
    .forward([](auto& k) {
      using T = scalar_of<decltype(k)>;
      map(k.in(0), k.out(), [](T x) { return math::logistic(x); });
    })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      zip(k.out(), k.grad_out(), k.grad_in(0), [](T y, T g) { return g * (y - y * y); });
    })
    .check({"[a,b]"});

// 2x declaring that it runs item by item (OpBuilder::per_item), whose per-item kernels
// forget where their range starts: every range of items lands on the first ones.
OPGRAPH_OP(unshifted_items)
    .doc("2x whose per-item kernels write each range of items over the first ones (broken on purpose)")
    .input("x")
    .shape(same_shape_as(0))
    .forward([](auto& k) { map(k.in(0), k.out(), [](auto v) { return v + v; }); })
    .vjp([](auto& k) { map(k.grad_out(), k.grad_in(0), [](auto g) { return g + g; }); })
    .per_item(
        [](const auto& k, std::int64_t b0, std::int64_t b1) {
          const std::int64_t per = k.in(0).dims[0] ? k.in(0).size / k.in(0).dims[0] : 0;
          for (std::int64_t i = 0; i < (b1 - b0) * per; ++i) k.out().data[i] = k.in(0).data[b0 * per + i] * 2;
        },
        [](const auto& k, std::int64_t b0, std::int64_t b1) {
          const std::int64_t per = k.grad_out().dims[0] ? k.grad_out().size / k.grad_out().dims[0] : 0;
          for (std::int64_t i = 0; i < (b1 - b0) * per; ++i) k.grad_in(0).data[i] = k.grad_out().data[b0 * per + i] * 2;
        })
    .check({"[a,b]"});

// relu written as std::max(0, x): right on every number, but std::max(0, NaN) is 0, so a
// NaN from an earlier node vanishes here and no NaN check downstream ever sees it.
OPGRAPH_OP(nan_dropping_relu)
    .doc("relu as std::max(0, x), which turns NaN into 0 (broken on purpose)")
    .input("x")
    .shape(same_shape_as(0))
    .saves({"x"})
    .forward([](auto& k) {
      using T = scalar_of<decltype(k)>;
      map(k.in(0), k.out(), [](T x) { return std::max(T(0), x); });
    })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      zip(k.in(0), k.grad_out(), k.grad_in(0), [](T x, T g) { return x > T(0) ? g : T(0); });
    })
    .domain("x", {.kinks = {0.0}})
    .check({"[a,b]"});

// tanh whose vjp skips a NaN cotangent (g == g ? ... : 0): right on every number, but a
// NaN loss then leaves finite gradients behind, and the update goes on.
OPGRAPH_OP(nan_dropping_vjp_tanh)
    .doc("tanh whose vjp turns a NaN cotangent into 0 (broken on purpose)")
    .input("x")
    .shape(same_shape_as(0))
    .saves_output()
    .forward([](auto& k) {
      using T = scalar_of<decltype(k)>;
      map(k.in(0), k.out(), [](T x) { return std::tanh(x); });
    })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      zip(k.out(), k.grad_out(), k.grad_in(0), [](T y, T g) { return g == g ? g * (T(1) - y * y) : T(0); });
    })
    .check({"[a,b]"});
