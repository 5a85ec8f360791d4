// Scaled dot-product attention, fused, and causal_mask, the piece a composed attention
// needs. attention(q, k, v) = softmax(q k^T * scale [masked]) v over the last two axes,
// one GEMM pair per batch (all leading axes), in parallel. The forward keeps the
// probabilities for the vjp; masked positions get probability 0 exactly, as in the
// composition with causal_mask's finite fill, so the two agree to rounding.
//
// The scores are computed transposed, keys by queries (k q^T), so that each query's
// softmax runs down a column: its max, exponentials, sum and scaling are vertical
// operations across the queries side by side, a whole row of the matrix at a time, with
// no reduction across the lanes of a vector; causal masking is then, for each key, a
// range of queries to skip. Along rows (q k^T), each row of 64 ended in two trees of
// shuffles, and the transformer W8's softmax took 0.35 ms of the head's forward pass.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include <opgraph/graph/gemm.hpp>
#include <opgraph/graph/op.hpp>

#include "detail/lane_runs.hpp"

namespace opgraph::ops {

namespace {

/// Query row i sees key j when j <= i + (keys - queries): the last query sees every key.
inline bool visible(std::int64_t i, std::int64_t j, std::int64_t queries, std::int64_t keys) {
  return j <= i + (keys - queries);
}

/// One head's problem: `items` products (the leading axes times the heads) of t queries
/// and s keys, d features (dv for values); ldq the row stride of q and k, ldv that of v
/// and of the output (heads x d: the heads side by side).
struct Sizes {
  std::int64_t items, heads, t, s, d, dv;
  std::int64_t ldq, ldv;
  /// Where item i's first query, key, value and output row start.
  std::int64_t q_at(std::int64_t i) const { return (i / heads) * t * ldq + (i % heads) * d; }
  std::int64_t k_at(std::int64_t i) const { return (i / heads) * s * ldq + (i % heads) * d; }
  std::int64_t v_at(std::int64_t i) const { return (i / heads) * s * ldv + (i % heads) * dv; }
  std::int64_t y_at(std::int64_t i) const { return (i / heads) * t * ldv + (i % heads) * dv; }
};

template <class K>
Sizes sizes_of(const K& k) {
  const auto &q = k.in(0), &v = k.in(2);
  const std::int64_t heads = k.attr_int("heads");
  const std::int64_t t = q.dims[q.rank - 2], ldq = q.dims[q.rank - 1], s = v.dims[v.rank - 2], ldv = v.dims[v.rank - 1];
  const std::int64_t batches = t != 0 && ldq != 0 ? q.size / (t * ldq) : 0;
  return {batches * heads, heads, t, s, ldq / heads, ldv / heads, ldq, ldv};
}

/// The vjp's lanes: each takes a contiguous run of the items (for_each_lane) and one [S, T]
/// block of scratch for their probabilities' gradient, which its items take in turn. A
/// block per item had made the scratch as large as the probabilities ([..., heads, S, T]),
/// and the vjp's wave held both: 8 sequences of 1024 positions, 8 heads of 32, planned
/// 579 MB, now 378 (T = 512: 155 -> 105 MB); W8's step as fast, its peak (set by the
/// activations) the same. The lanes change where a gradient is kept, never its bits; 16
/// of them keep 16 threads busy.
constexpr std::int64_t kVjpLanes = 16;
/// Items (the leading axes times the heads) of q's shape, or kVjpLanes when symbolic.
std::int64_t vjp_lanes(const ShapeContext& c) {
  const Shape& q = c.in(0);
  std::int64_t items = c.attr_int("heads");
  for (int i = 0; i + 2 < q.rank(); ++i) {
    if (is_symbolic(q[i])) return kVjpLanes;
    items *= q[i];
  }
  return std::clamp<std::int64_t>(items, 1, kVjpLanes);
}
/// [lanes, S, T]: a block of the probabilities' gradient per lane.
Shape gradient_blocks_shape(const ShapeContext& c) {
  return Shape{vjp_lanes(c), c.in(1)[c.in(1).rank() - 2], c.in(0)[c.in(0).rank() - 2]};
}

/// [..., heads, S, T]: the probabilities of every head, transposed (keys by queries).
Shape probabilities_shape(const ShapeContext& c) {
  std::vector<std::int64_t> dims(c.in(0).dims().begin(), c.in(0).dims().end() - 2);
  dims.push_back(c.attr_int("heads"));
  dims.push_back(c.in(1)[c.in(1).rank() - 2]);
  dims.push_back(c.in(0)[c.in(0).rank() - 2]);
  return Shape(std::move(dims));
}

/// The queries key j is visible to: [first_query(j), t). All of them unless causal; causal,
/// query i sees key j when j <= i + (s - t).
inline std::int64_t first_query(bool causal, std::int64_t j, std::int64_t t, std::int64_t s) {
  return causal ? std::clamp<std::int64_t>(j - (s - t), 0, t) : 0;
}

/// Per-query values of one head (a column's max and sum, or a dot product): on the stack
/// for up to kStackQueries queries.
constexpr std::int64_t kStackQueries = 512;
template <class T>
struct QueryStats {
  T local[2 * kStackQueries];
  std::vector<T> heap;
  T* data;
  explicit QueryStats(std::int64_t t) : data(local) {
    if (t > kStackQueries) {
      heap.resize(static_cast<std::size_t>(2 * t));
      data = heap.data();
    }
  }
};

/// Softmax down each column of pt [s, t] (keys by queries) in place: query i over the keys
/// that see it, the others 0. Each column's max, then the exponentials and their sum (in
/// key order), then the scaling: the same operations for a query whatever its position,
/// vector or scalar. m and sum hold t values each.
template <class T>
void softmax_columns(T* __restrict pt, std::int64_t s, std::int64_t t, bool causal, T* __restrict m,
                     T* __restrict sum) {
  if (s == 0) return;  // no keys: nothing to weigh (the output's product over 0 keys is 0)
  // Key 0 is visible to every query (causal attention has s >= t).
  for (std::int64_t i = 0; i < t; ++i) m[i] = pt[i];
  for (std::int64_t j = 1; j < s; ++j) {
    const T* row = pt + j * t;
    for (std::int64_t i = first_query(causal, j, t, s); i < t; ++i) m[i] = row[i] > m[i] ? row[i] : m[i];
  }
  for (std::int64_t i = 0; i < t; ++i) sum[i] = T(0);
  for (std::int64_t j = 0; j < s; ++j) {
    T* row = pt + j * t;
    const std::int64_t i0 = first_query(causal, j, t, s);
    for (std::int64_t i = 0; i < i0; ++i) row[i] = T(0);
    for (std::int64_t i = i0; i < t; ++i) {
      const T e = math::exp_nonpositive(row[i] - m[i]);
      row[i] = e;
      sum[i] += e;
    }
  }
  for (std::int64_t i = 0; i < t; ++i) sum[i] = T(1) / sum[i];
  for (std::int64_t j = 0; j < s; ++j) {
    T* row = pt + j * t;
    for (std::int64_t i = first_query(causal, j, t, s); i < t; ++i) row[i] *= sum[i];
  }
}

/// Through the softmax, down each column: dp <- p (dp - <dp, p>), the dot product over the
/// keys in order (masked keys have p = 0). dot holds t values.
template <class T>
void softmax_columns_vjp(T* __restrict dpt, const T* __restrict pt, std::int64_t s, std::int64_t t,
                         T* __restrict dot) {
  for (std::int64_t i = 0; i < t; ++i) dot[i] = T(0);
  for (std::int64_t j = 0; j < s; ++j)
    for (std::int64_t i = 0; i < t; ++i) dot[i] += dpt[j * t + i] * pt[j * t + i];
  for (std::int64_t j = 0; j < s; ++j)
    for (std::int64_t i = 0; i < t; ++i) dpt[j * t + i] = pt[j * t + i] * (dpt[j * t + i] - dot[i]);
}

template <class K>
double scale_of(const K& k, std::int64_t d) {
  return k.attr("scale").is_none() ? 1.0 / std::sqrt(static_cast<double>(d)) : k.attr_float("scale");
}


}  // namespace

namespace {

/// The 0/1 keep mask [T, S] of causal attention, as a constant cast to booleans.
std::string causal_keep(LoweringContext& c, std::int64_t t, std::int64_t s) {
  if (is_symbolic(t) || is_symbolic(s)) c.fail("a causal mask over symbolic lengths ({} queries, {} keys)", dim_text(t), dim_text(s));
  Tensor keep(Shape{t, s}, DType::f32);
  for (std::int64_t i = 0; i < t; ++i)
    for (std::int64_t j = 0; j < s; ++j) keep.set(i * s + j, visible(i, j, t, s) ? 1.0 : 0.0);
  return c.emit_fresh("Cast", {c.constant(std::move(keep), "keep")}, "visible", {{"to", std::int64_t{9}}});  // BOOL
}

}  // namespace

OPGRAPH_OP(causal_mask)
    .lower([](LoweringContext& c) {
      const Shape& x = c.in_shape(0);
      const std::string keep = causal_keep(c, x[x.rank() - 2], x[x.rank() - 1]);
      c.emit("Where", {keep, c.input(0), c.scalar(c.attr_float("fill"), "fill")}, {c.output()});
    })
    .doc("x [..., T, S] with entries above the causal diagonal (key j > query i + S - T) set to fill")
    .input("x")
    .attr("fill", AttrType::real, -1e9, "the value of masked entries: finite, so softmax gives them 0 without NaN")
    .shape([](const ShapeContext& c) {
      if (c.in(0).rank() < 2) c.fail("{} needs two axes (queries, keys)", c.in(0));
      return c.in(0);
    })
    .forward([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const auto& x = k.in(0);
      const std::int64_t t = x.dims[x.rank - 2], s = x.dims[x.rank - 1];
      const T fill = static_cast<T>(k.attr_float("fill"));
      for_each_row(x.rows(), s, [&](std::int64_t r) {
        const std::int64_t i = r % t;
        for (std::int64_t j = 0; j < s; ++j) k.out().data[r * s + j] = visible(i, j, t, s) ? x.data[r * s + j] : fill;
      });
    })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const auto& g = k.grad_out();
      const std::int64_t t = g.dims[g.rank - 2], s = g.dims[g.rank - 1];
      for_each_row(g.rows(), s, [&](std::int64_t r) {
        const std::int64_t i = r % t;
        for (std::int64_t j = 0; j < s; ++j) k.grad_in(0).data[r * s + j] = visible(i, j, t, s) ? g.data[r * s + j] : T(0);
      });
    })
    // A small fill: with -1e9 in the output, finite differences of the check's loss lose
    // every digit to cancellation (the masked entries' gradient is 0 either way).
    .check({"[a,b]"}, {{"fill", -3.0}})
    .check({"[a,b,b]"}, {{"fill", -3.0}})
    .check({"[2,b,c]"}, {{"fill", 0.0}});

OPGRAPH_OP(attention)
    .lower([](LoweringContext& c) {  // softmax(q k^T scale [masked]) v, as its decomposition
      const std::int64_t heads = c.attr_int("heads");
      const Shape &q = c.in_shape(0), &k = c.in_shape(1), &v = c.in_shape(2);
      // heads > 1: [..., T, heads * d] reshaped to [..., T, heads, d] and transposed to
      // [..., heads, T, d]; the output back the same way.
      const int r = heads > 1 ? q.rank() + 1 : q.rank();
      IntList swap_th;  // the permutation exchanging the T and heads axes
      for (int d = 0; d < r; ++d) swap_th.push_back(d);
      std::swap(swap_th[r - 3 >= 0 ? r - 3 : 0], swap_th[r - 2]);
      auto split = [&](const std::string& x, const Shape& shape, std::string_view hint) {
        if (heads == 1) return x;
        std::vector<std::int64_t> dims(shape.dims().begin(), shape.dims().end() - 1);
        dims.push_back(heads);
        dims.push_back(shape[shape.rank() - 1] / heads);
        const std::string split = lowering::reshape(c, x, shape, Shape(dims));
        return c.emit_fresh("Transpose", {split}, hint, {{"perm", swap_th}});
      };
      const std::string qh = split(c.input(0), q, "q_heads"), kh = split(c.input(1), k, "k_heads"),
                        vh = split(c.input(2), v, "v_heads");
      IntList perm;
      for (int d = 0; d < r; ++d) perm.push_back(d);
      std::swap(perm[r - 1], perm[r - 2]);
      const std::int64_t d = q[q.rank() - 1] / heads;
      const double scale = c.attr("scale").is_none() ? 1.0 / std::sqrt(static_cast<double>(d)) : c.attr_float("scale");
      const std::string kt = c.emit_fresh("Transpose", {kh}, "k_t", {{"perm", perm}});
      std::string scores = c.emit_fresh("Mul", {c.emit_fresh("MatMul", {qh, kt}, "qk"), c.scalar(scale, "scale")},
                                        "scores");
      if (c.attr_bool("causal")) {
        const std::string keep = causal_keep(c, q[q.rank() - 2], k[k.rank() - 2]);
        scores = c.emit_fresh("Where", {keep, scores, c.scalar(-std::numeric_limits<double>::infinity(), "masked")},
                              "masked_scores");
      }
      const std::string p = c.emit_fresh("Softmax", {scores}, "probs", {{"axis", std::int64_t{-1}}});
      if (heads == 1) {
        c.emit("MatMul", {p, vh}, {c.output()});
        return;
      }
      const std::string yh = c.emit_fresh("MatMul", {p, vh}, "y_heads");  // [..., heads, T, dv]
      const std::string yt = c.emit_fresh("Transpose", {yh}, "y_split", {{"perm", swap_th}});
      std::vector<std::int64_t> split_dims(c.out_shape().dims().begin(), c.out_shape().dims().end() - 1);
      split_dims.push_back(heads);
      split_dims.push_back(v[v.rank() - 1] / heads);
      lowering::reshape(c, yt, Shape(split_dims), c.out_shape(), c.output());
    })
    .doc("softmax(q k^T * scale) v over the last two axes, optionally causal: q [...,T,d], k [...,S,d], v [...,S,dv]")
    .input("q")
    .input("k")
    .input("v")
    .attr("causal", AttrType::boolean, false, "query i sees keys up to i + S - T only")
    .attr("scale", AttrType::real, AttrValue(), "multiplies the scores; none: 1/sqrt(d), d the features of a head")
    .attr("heads", AttrType::integer, std::int64_t{1},
          "the last axis holds this many heads side by side ([..., T, heads * d], as x W_q gives them); each "
          "attends on its own, and the output holds theirs side by side: no transposes around the op")
    .shape([](const ShapeContext& c) {
      const Shape &q = c.in(0), &k = c.in(1), &v = c.in(2);
      for (int i = 0; i < 3; ++i)
        if (c.in(i).rank() < 2) c.fail("{} needs two axes (positions, features)", c.in(i));
      if (q.rank() != k.rank() || q.rank() != v.rank() ||
          !std::equal(q.dims().begin(), q.dims().end() - 2, k.dims().begin()) ||
          !std::equal(q.dims().begin(), q.dims().end() - 2, v.dims().begin()))
        c.fail("q {}, k {} and v {} must have the same leading (batch, head) axes", q, k, v);
      if (q[q.rank() - 1] != k[k.rank() - 1])
        c.fail("q {} and k {} differ in the feature axis ({} against {})", q, k, dim_text(q[q.rank() - 1]),
               dim_text(k[k.rank() - 1]));
      if (k[k.rank() - 2] != v[v.rank() - 2])
        c.fail("k {} and v {} differ in the number of keys ({} against {})", k, v, dim_text(k[k.rank() - 2]),
               dim_text(v[v.rank() - 2]));
      const std::int64_t heads = c.attr_int("heads");
      if (heads < 1) c.fail("heads={} must be at least 1", heads);
      for (int i : {0, 2}) {
        const std::int64_t f = c.in(i)[c.in(i).rank() - 1];
        if (heads > 1 && is_symbolic(f))
          c.fail("{} {} has {} features: heads={} splits a known number of them", c.op().input(i).name, c.in(i),
                 dim_text(f), heads);
        if (heads > 1 && f % heads != 0)
          c.fail("{} {} has {} features, not a multiple of heads={}", c.op().input(i).name, c.in(i), dim_text(f), heads);
      }
      const std::int64_t keys = k[k.rank() - 2], queries = q[q.rank() - 2];
      if (c.attr_bool("causal") && keys != queries && (is_symbolic(keys) || is_symbolic(queries) || keys < queries))
        c.fail("causal attention needs at least as many keys as queries: {} keys for {}", dim_text(keys),
               dim_text(queries));
      std::vector<std::int64_t> dims(q.dims().begin(), q.dims().end() - 1);
      dims.push_back(v[v.rank() - 1]);
      return Shape(std::move(dims));
    })
    .saves({"q", "k", "v"})
    .workspace(probabilities_shape)  // the probabilities [..., heads, T, S]
    .scratch(gradient_blocks_shape)  // their gradient, a block per lane
    .forward([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const Sizes z = sizes_of(k);
      const T scale = static_cast<T>(scale_of(k, z.d));
      const bool causal = k.attr_bool("causal");
      const T *q = k.in(0).data, *kk = k.in(1).data, *v = k.in(2).data;
      T* probs = k.workspace().data;
      T* y = k.out().data;
      parallel_for(z.items, 1, [&](std::int64_t b0, std::int64_t b1) {
        QueryStats<T> stats(z.t);
        for (std::int64_t b = b0; b < b1; ++b) {
          T* pt = probs + b * z.s * z.t;  // [s, t]
          gemm<T>(false, true, z.s, z.t, z.d, scale, kk + z.k_at(b), z.ldq, q + z.q_at(b), z.ldq, T(0), pt, z.t);
          softmax_columns(pt, z.s, z.t, causal, stats.data, stats.data + z.t);
          gemm<T>(true, false, z.t, z.dv, z.s, T(1), pt, z.t, v + z.v_at(b), z.ldv, T(0), y + z.y_at(b), z.ldv);
        }
      });
    })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const Sizes z = sizes_of(k);
      const T scale = static_cast<T>(scale_of(k, z.d));
      const T *q = k.in(0).data, *kk = k.in(1).data, *v = k.in(2).data, *g = k.grad_out().data;
      const T* probs = k.workspace().data;
      T* dprobs = k.scratch().data;
      // The lanes gradient_blocks_shape made room for (the scratch comes as one run); with
      // no keys or no queries the blocks are empty, and the GEMMs still write zeros.
      std::int64_t lanes = kVjpLanes;
      if (z.s * z.t > 0) lanes = std::min(lanes, k.scratch().size / (z.s * z.t));
      detail::for_each_lane(lanes, z.items, [&](std::int64_t lane, std::int64_t first, std::int64_t last) {
        QueryStats<T> stats(z.t);
        T* dpt = dprobs + lane * z.s * z.t;  // this lane's block
        for (std::int64_t b = first; b < last; ++b) {
          const T* pt = probs + b * z.s * z.t;  // [s, t]
          const T* gb = g + z.y_at(b);
          if (k.needs_grad(2))  // dv = p^T g = pt g
            gemm<T>(false, false, z.s, z.dv, z.t, T(1), pt, z.t, gb, z.ldv, T(0), k.grad_in(2).data + z.v_at(b), z.ldv);
          if (!k.needs_grad(0) && !k.needs_grad(1)) continue;
          // dp^T = v g^T, then through the softmax: the scores' gradient, transposed.
          gemm<T>(false, true, z.s, z.t, z.dv, T(1), v + z.v_at(b), z.ldv, gb, z.ldv, T(0), dpt, z.t);
          softmax_columns_vjp(dpt, pt, z.s, z.t, stats.data);
          if (k.needs_grad(0))  // dq = scale ds k = scale dst^T k
            gemm<T>(true, false, z.t, z.d, z.s, scale, dpt, z.t, kk + z.k_at(b), z.ldq, T(0),
                    k.grad_in(0).data + z.q_at(b), z.ldq);
          if (k.needs_grad(1))  // dk = scale ds^T q = scale dst q
            gemm<T>(false, false, z.s, z.d, z.t, scale, dpt, z.t, q + z.q_at(b), z.ldq, T(0),
                    k.grad_in(1).data + z.k_at(b), z.ldq);
        }
      });
    })
    .cost([](const ShapeContext& c, const Shape& y) {
      const Shape& k = c.in(1);
      double rows = 1;
      for (int i = 0; i < y.rank() - 1; ++i) rows *= static_cast<double>(y[i]);
      const double flops = 2.0 * rows * static_cast<double>(k[k.rank() - 2]) *
                           (static_cast<double>(k[k.rank() - 1]) + static_cast<double>(y[y.rank() - 1]));
      return OpCost{flops, 2.0 * flops};
    })
    .check({"[a,b]", "[c,b]", "[c,d]"})
    .check({"[2,a,b]", "[2,c,b]", "[2,c,d]"})
    .check({"[2,3,a,b]", "[2,3,a,b]", "[2,3,a,d]"}, {{"causal", true}})
    .check({"[a,b]", "[c,b]", "[c,b]"}, {{"scale", 0.3}})
    .check({"[2,a,6]", "[2,c,6]", "[2,c,4]"}, {{"heads", 2}})
    .check({"[2,a,6]", "[2,a,6]", "[2,a,9]"}, {{"heads", 3}, {"causal", true}});

}  // namespace opgraph::ops
