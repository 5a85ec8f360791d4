// matmul: NumPy's matmul on inputs of rank >= 2: the last two axes multiply as matrices,
// the leading (batch) axes broadcast. trans_a / trans_b transpose an operand's last two
// axes in place (the GEMM reads them transposed: no copy). A [..., n, k] input times a
// [k, m] matrix is one GEMM over all the rows; other batches run one GEMM each, in
// parallel. The vjp's sums over broadcast batches run in a fixed order: deterministic.
#include <opgraph/graph/gemm.hpp>
#include <opgraph/graph/op.hpp>

namespace opgraph::ops {

namespace {

/// The batch axes of both operands against the output's, and the matrix sizes.
struct Batches {
  std::int64_t count = 1;                 // output batches
  std::int64_t n = 0, k = 0, m = 0;       // op(a) is [n, k], op(b) is [k, m]
  bool ta = false, tb = false;
  bool flat = false;                      // a's batches fold into its rows: b is one matrix
  int rank = 0;                           // output batch rank
  // Set for the first `rank` axes only (not flat): output batch dims, and matrix strides
  // per batch axis (0: broadcast).
  std::int64_t dims[kMaxRank], a_step[kMaxRank], b_step[kMaxRank];

  /// The index of the a (b) matrix used by output batch o.
  std::int64_t a_of(std::int64_t o) const { return of(o, a_step); }
  std::int64_t b_of(std::int64_t o) const { return of(o, b_step); }

 private:
  std::int64_t of(std::int64_t o, const std::int64_t* step) const {
    std::int64_t r = 0;
    for (int d = rank - 1; d >= 0; --d) {
      r += (o % dims[d]) * step[d];
      o /= dims[d];
    }
    return r;
  }
};

template <class A, class B>
[[gnu::always_inline]] inline Batches batches(const A& a, const B& b, bool ta, bool tb) {
  Batches s;
  s.ta = ta;
  s.tb = tb;
  s.n = a.dims[a.rank - (ta ? 1 : 2)];
  s.k = a.dims[a.rank - (ta ? 2 : 1)];
  s.m = b.dims[b.rank - (tb ? 2 : 1)];
  s.flat = b.rank == 2 && !ta;
  if (s.flat) {
    // Every axis of a but its last: a product of its sizes, not a.size / k, which counts no
    // rows when k is 0 (the output, [rows, m] of zeros, was then left unwritten).
    s.n = 1;
    for (int d = 0; d < a.rank - 1; ++d) s.n *= a.dims[d];
    return s;
  }
  const int ra = a.rank - 2, rb = b.rank - 2;
  s.rank = std::max(ra, rb);
  std::int64_t sa = 1, sb = 1;  // matrices per step along the axes to the right
  for (int d = s.rank - 1; d >= 0; --d) {
    const int ia = d - (s.rank - ra), ib = d - (s.rank - rb);
    const std::int64_t da = ia >= 0 ? a.dims[ia] : 1, db = ib >= 0 ? b.dims[ib] : 1;
    s.dims[d] = std::max(da, db);
    s.a_step[d] = da == 1 ? 0 : sa;
    s.b_step[d] = db == 1 ? 0 : sb;
    sa *= da;
    sb *= db;
    s.count *= s.dims[d];
  }
  return s;
}

/// For each matrix index j of an operand (`count_j` of them), calls f(j, o, first) for
/// the output batches o that use it, in increasing o; parallel over j. An operand with as
/// many matrices as the output is broadcast nowhere: matrix j serves batch j alone.
template <class Of, class F>
void for_each_source(std::int64_t count_j, std::int64_t batches, Of of, F f) {
  parallel_for(count_j, 1, [&](std::int64_t j0, std::int64_t j1) {
    for (std::int64_t j = j0; j < j1; ++j) {
      if (count_j == batches) {
        f(j, j, true);
        continue;
      }
      bool first = true;
      for (std::int64_t o = 0; o < batches; ++o)
        if (of(o) == j) {
          f(j, o, first);
          first = false;
        }
    }
  });
}

template <class K>
void matmul_forward(K& k) {
  using T = scalar_of<K>;
  const auto& a = k.in(0);
  const auto& b = k.in(1);
  const Batches s = batches(a, b, k.attr_bool("trans_a"), k.attr_bool("trans_b"));
  const std::int64_t lda = s.ta ? s.n : s.k, ldb = s.tb ? s.k : s.m;
  T* y = k.out().data;
  // A bias_add and activation the plan fused in (.epilogue()): on each tile of the product.
  const GemmEpilogue<T> epilogue{k.epilogue().bias_data(), k.epilogue().act};
  if (s.flat) {
    gemm<T>(false, s.tb, s.n, s.m, s.k, T(1), a.data, lda, b.data, ldb, T(0), y, s.m, epilogue);
    return;
  }
  const std::int64_t as = s.n * s.k, bs = s.k * s.m, ys = s.n * s.m;
  parallel_for(s.count, 1, [&](std::int64_t o0, std::int64_t o1) {
    for (std::int64_t o = o0; o < o1; ++o)
      gemm<T>(s.ta, s.tb, s.n, s.m, s.k, T(1), a.data + s.a_of(o) * as, lda, b.data + s.b_of(o) * bs, ldb, T(0),
              y + o * ys, s.m, epilogue);
  });
}

template <class K>
void matmul_vjp(K& k) {
  using T = scalar_of<K>;
  const auto& a = k.in(0);
  const auto& b = k.in(1);
  const T* g = k.grad_out().data;
  const Batches s = batches(a, b, k.attr_bool("trans_a"), k.attr_bool("trans_b"));
  const std::int64_t lda = s.ta ? s.n : s.k, ldb = s.tb ? s.k : s.m;
  const std::int64_t as = s.n * s.k, bs = s.k * s.m, gs = s.n * s.m;
  // An activation before input 0 whose vjp the plan left to this one
  // (absorbs_activation_vjp): da is taken through it, math::activation_vjp with input 0 as
  // the activation's output, laid out as da. One product (flat): in its epilogue, on each
  // tile as it is stored (W1's dh = dz·W2ᵀ and the logistic's vjp were two passes over
  // 10 MB). Batched: in a pass over da once its sums are complete.
  const math::Activation absorbed = k.absorbed_activation();
  GemmEpilogue<T> through;  // none when nothing was absorbed
  if (absorbed != math::Activation::none) {
    through.grad_y = a.data;
    through.grad_act = absorbed;
  }
  // da: G op(B)^T stored as [n, k], or op(B) G^T stored as [k, n] when trans_a.
  auto grad_a = [&](const T* gp, const T* bp, T* da, T beta, const GemmEpilogue<T>& e) {
    if (!s.ta) gemm<T>(false, !s.tb, s.n, s.k, s.m, T(1), gp, s.m, bp, ldb, beta, da, s.k, e);
    else gemm<T>(s.tb, true, s.k, s.n, s.m, T(1), bp, ldb, gp, s.m, beta, da, s.n, e);
  };
  // db: op(A)^T G stored as [k, m], or G^T op(A) stored as [m, k] when trans_b.
  auto grad_b = [&](const T* ap, const T* gp, T* db, T beta, std::int64_t rows, const GemmEpilogue<T>& e) {
    if (!s.tb) gemm<T>(!s.ta, false, s.k, s.m, rows, T(1), ap, lda, gp, s.m, beta, db, s.m, e);
    else gemm<T>(true, s.ta, s.m, s.k, rows, T(1), gp, s.m, ap, lda, beta, db, s.k);
  };
  // The gradient of a bias the plan fused into the forward pass and whose vjp it left to
  // this one (absorbs_bias_vjp): G's column sums. One product with G as its B (db =
  // op(A)ᵀ G): taken from G's rows as the product packs them (GemmEpilogue::b_sums, W1's
  // dW1 = xᵀ·dz and its bias's gradient were two passes over 10 MB); else a pass of its own.
  T* const bias_grad = k.epilogue().bias_grad_data();
  const bool sums_in_product = bias_grad && s.flat && !s.tb && k.needs_grad(1);
  if (bias_grad && !sums_in_product) column_sums(g, k.grad_out().size / std::max<std::int64_t>(s.m, 1), s.m, s.m, bias_grad);
  GemmEpilogue<T> summing;
  summing.b_sums = sums_in_product ? bias_grad : nullptr;
  if (s.flat) {
    if (k.needs_grad(0)) grad_a(g, b.data, k.grad_in(0).data, T(0), through);
    if (k.needs_grad(1)) grad_b(a.data, g, k.grad_in(1).data, T(0), s.n, summing);
    return;
  }
  if (k.needs_grad(0)) {
    T* da = k.grad_in(0).data;
    for_each_source(a.size / std::max<std::int64_t>(as, 1), s.count, [&](std::int64_t o) { return s.a_of(o); },
                    [&](std::int64_t j, std::int64_t o, bool first) {
                      grad_a(g + o * gs, b.data + s.b_of(o) * bs, da + j * as, first ? T(0) : T(1), {});
                    });
    if (absorbed != math::Activation::none)
      parallel_for(a.size, std::int64_t{1} << 14, [&](std::int64_t i0, std::int64_t i1) {
        math::activation_vjp(absorbed, a.data + i0, da + i0, i1 - i0);
      });
  }
  if (k.needs_grad(1)) {
    T* db = k.grad_in(1).data;
    for_each_source(b.size / std::max<std::int64_t>(bs, 1), s.count, [&](std::int64_t o) { return s.b_of(o); },
                    [&](std::int64_t j, std::int64_t o, bool first) {
                      grad_b(a.data + s.a_of(o) * as, g + o * gs, db + j * bs, first ? T(0) : T(1), s.n, {});
                    });
  }
}


}  // namespace

OPGRAPH_OP(matmul)
    .lower([](LoweringContext& c) {
      auto swapped = [&](int i, const char* hint) {
        const int r = c.in_shape(i).rank();
        if (r < 2) c.fail("trans_a/trans_b on a vector");
        IntList perm;
        for (int d = 0; d < r; ++d) perm.push_back(d);
        std::swap(perm[r - 1], perm[r - 2]);
        return c.emit_fresh("Transpose", {c.input(i)}, hint, {{"perm", perm}});
      };
      const std::string a = c.attr_bool("trans_a") ? swapped(0, "a_t") : c.input(0);
      const std::string b = c.attr_bool("trans_b") ? swapped(1, "b_t") : c.input(1);
      c.emit("MatMul", {a, b}, {c.output()});
    })
    .doc("matrix product over the last two axes, batch axes broadcast (NumPy's matmul): [B,T,d] x [d,k] -> [B,T,k]")
    .input("a")
    .input("b")
    .attr("trans_a", AttrType::boolean, false, "use a with its last two axes swapped")
    .attr("trans_b", AttrType::boolean, false, "use b with its last two axes swapped")
    .shape([](const ShapeContext& c) {
      const Shape &a = c.in(0), &b = c.in(1);
      for (int i = 0; i < 2; ++i)
        if (c.in(i).rank() < 2)
          c.fail("{} has rank {}: matmul needs matrices (rank 2 or more; reshape a vector to [1,k] or [k,1])", c.in(i),
                 c.in(i).rank());
      const bool ta = c.attr_bool("trans_a"), tb = c.attr_bool("trans_b");
      const std::int64_t n = a[a.rank() - (ta ? 1 : 2)], ka = a[a.rank() - (ta ? 2 : 1)];
      const std::int64_t kb = b[b.rank() - (tb ? 1 : 2)], m = b[b.rank() - (tb ? 2 : 1)];
      if (ka != kb)
        c.fail("inner dimensions differ: {}{} x {}{} ({} against {})", a, ta ? " transposed" : "", b,
               tb ? " transposed" : "", dim_text(ka), dim_text(kb));
      const Shape batch_a(std::vector<std::int64_t>(a.dims().begin(), a.dims().end() - 2));
      const Shape batch_b(std::vector<std::int64_t>(b.dims().begin(), b.dims().end() - 2));
      std::vector<std::int64_t> dims = broadcast_shapes(batch_a, batch_b, "batch axes").dims();
      dims.push_back(n);
      dims.push_back(m);
      return Shape(std::move(dims));
    })
    .saves({"a", "b"})
    .epilogue()
    .absorbs_activation_vjp()
    .absorbs_bias_vjp()
    .forward([](auto& k) { matmul_forward(k); })
    .vjp([](auto& k) { matmul_vjp(k); })
    .cost([](const ShapeContext& c, const Shape& y) {
      const Shape& a = c.in(0);
      const double inner = static_cast<double>(a[a.rank() - (c.attr_bool("trans_a") ? 2 : 1)]);
      double outs = 1;
      for (auto d : y.dims()) outs *= static_cast<double>(d);
      const double flops = 2.0 * outs * inner;
      return OpCost{flops, 2.0 * flops};
    })
    .check({"[a,b]", "[b,c]"})
    .check({"[1,b]", "[b,c]"})
    .check({"[a,b]", "[b,1]"})
    .check({"[a,b,c]", "[c,d]"})
    .check({"[a,b,c]", "[a,c,d]"})
    .check({"[a,c,b]", "[a,c,d]"}, {{"trans_a", true}})
    .check({"[a,b,c]", "[a,d,c]"}, {{"trans_b", true}})
    .check({"[a,c,b]", "[d,c]"}, {{"trans_a", true}, {"trans_b", true}})
    .check({"[2,1,b,c]", "[3,c,d]"})
    .check({"[b,c]", "[2,c,d]"});

}  // namespace opgraph::ops
