// Built-in ops by hand: known values, kinks, stability on huge logits, label errors.
#include <doctest/doctest.h>

#include <cmath>

#include <opgraph/graph/op.hpp>
#include <opgraph/graph/plan.hpp>

#include "op_run.hpp"

using namespace opgraph;
using namespace opgraph::test;

TEST_CASE("ops: softmax and log_softmax known values") {
  const auto s = run_op("softmax", {f64({1, 3}, {1, 2, 3})}).out;
  CHECK(s.at(0) == doctest::Approx(0.09003057317038046));
  CHECK(s.at(1) == doctest::Approx(0.24472847105479764));
  CHECK(s.at(2) == doctest::Approx(0.6652409557748219));
  const auto l = run_op("log_softmax", {f64({1, 3}, {1, 2, 3})}).out;
  CHECK(l.at(2) == doctest::Approx(std::log(0.6652409557748219)));
}

TEST_CASE("ops: softmax, log_softmax and cross-entropies are stable on logits of +-1e4 in f32") {
  const Tensor z = f32({2, 3}, {1e4, -1e4, 0, 1e4, 1e4, -1e4});
  const auto s = run_op("softmax", {z}).out;
  CHECK(all_finite(s));
  CHECK(s.at(0) == 1.0);
  CHECK(s.at(1) == 0.0);
  CHECK(s.at(3) == 0.5);
  const auto l = run_op("log_softmax", {z}).out;
  CHECK(l.at(0) == 0.0);
  CHECK(l.at(1) == -2e4);
  const auto ce = run_op("softmax_cross_entropy", {z, f32({2}, {1, 0})}, {}, &kOne32);
  CHECK(ce.out.item() == doctest::Approx((2e4 + std::log(2.0)) / 2));
  CHECK(all_finite(ce.grads[0]));
  CHECK(ce.grads[0].at(0) == doctest::Approx(0.5));   // (p - y) / rows = (1 - 0) / 2
  CHECK(ce.grads[0].at(1) == doctest::Approx(-0.5));  // (0 - 1) / 2
  const auto bce = run_op("binary_cross_entropy_with_logits", {f32({2, 1}, {1e4, -1e4}), f32({2, 1}, {0, 0})}, {}, &kOne32);
  CHECK(bce.out.item() == doctest::Approx(5e3));
  CHECK(all_finite(bce.grads[0]));
}

TEST_CASE("ops: binary losses on probabilities of exactly 0 and 1 stay finite") {
  const Tensor p = f32({4, 1}, {0, 1, 0, 1}), y = f32({4, 1}, {1, 0, 0, 1});
  const auto r = run_op("binary_cross_entropy", {p, y}, {}, &kOne32);
  // Two wrong certain answers cost -log(1e-7) each; two right ones cost about 0.
  CHECK(r.out.item() == doctest::Approx(2 * -std::log(1e-7) / 4).epsilon(1e-4));
  CHECK(all_finite(r.grads[0]));
  CHECK(r.grads[0].at(0) < 0);  // raising p towards the label 1 lowers the loss
  const auto ce = run_op("cross_entropy", {f32({1, 3}, {0, 1, 0}), f32({1}, {0})}, {}, &kOne32);
  CHECK(ce.out.item() == doctest::Approx(-std::log(1e-7)).epsilon(1e-4));
  CHECK(all_finite(ce.grads[0]));
}

TEST_CASE("ops: losses reduce by mean by default and by sum on request") {
  const Tensor p = f64({2, 2}, {1, 2, 3, 4}), t = f64({2, 2}, {1, 1, 1, 1});
  CHECK(run_op("mse", {p, t}).out.item() == doctest::Approx((0 + 1 + 4 + 9) / 4.0));
  CHECK(run_op("mse", {p, t}, {{"reduction", "sum"}}).out.item() == doctest::Approx(14.0));
  const Tensor probs = f64({2, 3}, {0.2, 0.7, 0.1, 0.5, 0.25, 0.25});
  const double expected = -(std::log(0.7) + std::log(0.25)) / 2;
  CHECK(run_op("cross_entropy", {probs, f64({2}, {1, 2})}).out.item() == doctest::Approx(expected));
  CHECK(run_op("cross_entropy", {probs, f64({2, 3}, {0, 1, 0, 0, 0, 1})}).out.item() == doctest::Approx(expected));
  CHECK(run_op("cross_entropy", {probs, f64({2}, {1, 2})}, {{"reduction", "sum"}}).out.item() ==
        doctest::Approx(2 * expected));
  const Tensor logits = f64({1, 3}, {1, 2, 3});
  CHECK(run_op("softmax_cross_entropy", {logits, f64({1}, {2})}).out.item() ==
        doctest::Approx(-std::log(0.6652409557748219)));
  const double bce = -(std::log(0.8) + std::log(0.6)) / 2;
  CHECK(run_op("binary_cross_entropy", {f64({2, 1}, {0.8, 0.4}), f64({2, 1}, {1, 0})}).out.item() ==
        doctest::Approx(bce));
  // Soft labels weight both logs (hard ones take one: the same value).
  const double soft = -(0.3 * std::log(0.8) + 0.7 * std::log(0.2) + 0.9 * std::log(0.4) + 0.1 * std::log(0.6)) / 2;
  CHECK(run_op("binary_cross_entropy", {f64({2, 1}, {0.8, 0.4}), f64({2, 1}, {0.3, 0.9})}).out.item() ==
        doctest::Approx(soft));
}

TEST_CASE("ops: elementwise activations, their kinks and saturation") {
  const auto lg = run_op("logistic", {f32({1, 4}, {0, 100, -100, 2})}, {}, nullptr).out;
  CHECK(lg.at(0) == 0.5);
  CHECK(lg.at(1) == 1.0);
  CHECK(lg.at(2) == doctest::Approx(0.0));
  CHECK(lg.at(3) == doctest::Approx(1 / (1 + std::exp(-2.0))));
  const Tensor seed = f64({1, 3}, {1, 1, 1});
  const auto r = run_op("relu", {f64({1, 3}, {-1, 0, 2})}, {}, &seed);
  CHECK(r.out.to_vector() == std::vector<double>{0, 0, 2});
  CHECK(r.grads[0].to_vector() == std::vector<double>{0, 0, 1});  // the kink at 0 takes no gradient
  CHECK(run_op("tanh", {f64({1}, {0.5})}).out.at(0) == doctest::Approx(std::tanh(0.5)));
  CHECK(run_op("scale", {f64({2}, {1, -2})}, {{"factor", 3}}).out.to_vector() == std::vector<double>{3, -6});
  CHECK(std::isinf(run_op("log", {f64({1}, {0})}).out.at(0)));
}

TEST_CASE("ops: reductions over everything and over one axis") {
  const Tensor x = f64({2, 3}, {1, 2, 3, 4, 5, 6});
  CHECK(run_op("sum", {x}).out.item() == 21.0);
  CHECK(run_op("mean", {x}).out.item() == 3.5);
  CHECK(run_op("sum", {x}, {{"axis", 0}}).out.to_vector() == std::vector<double>{5, 7, 9});
  CHECK(run_op("sum", {x}, {{"axis", -1}}).out.to_vector() == std::vector<double>{6, 15});
  CHECK(run_op("mean", {x}, {{"axis", 1}}).out.to_vector() == std::vector<double>{2, 5});
  const Tensor seed = f64({3}, {1, 2, 3});
  const auto r = run_op("mean", {x}, {{"axis", 0}}, &seed);
  CHECK(r.grads[0].to_vector() == std::vector<double>{0.5, 1, 1.5, 0.5, 1, 1.5});
}

TEST_CASE("ops: bias_add broadcasts over rows and sums its gradient over them") {
  const Tensor seed = f64({2, 3}, {1, 2, 3, 4, 5, 6});
  const auto r = run_op("bias_add", {f64({2, 3}, {0, 0, 0, 1, 1, 1}), f64({3}, {10, 20, 30})}, {}, &seed);
  CHECK(r.out.to_vector() == std::vector<double>{10, 20, 30, 11, 21, 31});
  CHECK(r.grads[0].to_vector() == seed.to_vector());
  CHECK(r.grads[1].to_vector() == std::vector<double>{5, 7, 9});
}

TEST_CASE("ops: bias_add along axis 1 of [N, C, 1, 1] adds each channel its own bias") {
  // The axes after the bias's are all 1 (a 1x1 feature map): each of x's last-axis rows
  // is one channel, not one row of C values. Both precisions (their kernels are one body,
  // but the f32 plan is the one models run).
  for (DType dtype : {DType::f64, DType::f32}) {
    CAPTURE(dtype);
    const Tensor seed = f64({2, 3, 1, 1}, {1, 2, 3, 4, 5, 6}).to(dtype);
    const auto r = run_op("bias_add", {f64({2, 3, 1, 1}, {0, 0, 0, 1, 1, 1}).to(dtype), f64({3}, {10, 20, 30}).to(dtype)},
                          {{"axis", 1}}, &seed);
    CHECK(r.out.to_vector() == std::vector<double>{10, 20, 30, 11, 21, 31});
    CHECK(r.grads[0].to_vector() == seed.to_vector());
    CHECK(r.grads[1].to_vector() == std::vector<double>{5, 7, 9});
  }
}

TEST_CASE("ops: a class label out of range is reported with its row") {
  CHECK_THROWS_WITH_AS(run_op("softmax_cross_entropy", {Tensor({3, 10}), f32({3}, {1, 12, 0})}),
                       "node 'out': softmax_cross_entropy: label 12 in row 1 is not a class index in [0, 10)",
                       DataError);
  CHECK_THROWS_WITH_AS(run_op("cross_entropy", {Tensor({2, 4}), f32({2}, {0.5, 1})}),
                       "node 'out': cross_entropy: label 0.5 in row 0 is not a class index in [0, 4)", DataError);
  CHECK_THROWS_WITH_AS(run_op("softmax_cross_entropy", {Tensor({2, 4}), Tensor({2, 3})}),
                       "node 'out': softmax_cross_entropy: labels of shape [2,3] fit neither one-hot labels [2,4] "
                       "nor class indices [2]",
                       ShapeError);
}

TEST_CASE("ops: a batch of one works") {
  const auto r = run_op("softmax_cross_entropy", {f64({1, 4}, {0.1, 0.2, 0.3, 0.4}), f64({1}, {3})}, {}, &kOne64);
  CHECK(r.out.item() > 0);
  double total = 0;
  for (double v : r.grads[0].to_vector()) total += v;
  CHECK(total == doctest::Approx(0.0).epsilon(1e-12));  // softmax gradients sum to zero
}

TEST_CASE("ops: softmax_cross_entropy over [N,T,C] averages over positions, leaving out ignore_index") {
  // Two sequences of two positions; position (1, 1) is padding (-100, as PyTorch's default).
  const Tensor z = f64({2, 2, 3}, {1, 2, 3, 0, 0, 0, 3, 1, 2, 5, 5, 5});
  const Tensor y = f64({2, 2}, {2, 0, 0, -100});
  const auto r = run_op("softmax_cross_entropy", {z, y}, {{"ignore_index", -100}}, &kOne64);
  const double l0 = std::log(std::exp(1) + std::exp(2) + std::exp(3)) - 3, l1 = std::log(3.0);
  const double l2 = std::log(std::exp(3) + std::exp(1) + std::exp(2)) - 3;
  CHECK(r.out.item() == doctest::Approx((l0 + l1 + l2) / 3));  // 3 counted positions
  for (int j = 9; j < 12; ++j) CHECK(r.grads[0].at(j) == 0.0);  // padding gets no gradient
  CHECK(r.grads[0].at(5) == doctest::Approx(1.0 / 3 / 3));      // p = 1/3, not the label, / 3 terms
  // Without ignore_index, -100 is a bad label.
  CHECK_THROWS_WITH(run_op("softmax_cross_entropy", {z, y}),
                    "node 'out': softmax_cross_entropy: label -100 in row 3 is not a class index in [0, 3)");
}

TEST_CASE("ops: softmax and log_softmax along a middle axis equal the last-axis result transposed") {
  // x [2, 3, 2]; along axis 1 each lane (i, :, k) is normalised on its own.
  const Tensor x = f64({2, 3, 2}, {1, 6, 2, 5, 3, 4, -1, 0, 0, 0, 1, 9});
  const auto s = run_op("softmax", {x}, {{"axis", 1}}).out;
  const auto ls = run_op("log_softmax", {x}, {{"axis", -2}}).out;
  for (int i = 0; i < 2; ++i)
    for (int k = 0; k < 2; ++k) {
      const Tensor lane = f64({1, 3}, {x.at({i, 0, k}), x.at({i, 1, k}), x.at({i, 2, k})});
      const auto want = run_op("softmax", {lane}).out;
      for (int j = 0; j < 3; ++j) {
        CHECK(s.at({i, j, k}) == doctest::Approx(want.at(j)).epsilon(1e-14));
        CHECK(ls.at({i, j, k}) == doctest::Approx(std::log(want.at(j))).epsilon(1e-14));
      }
    }
}
