// The XOR training loop of examples/xor_plan.cpp, timed: forward(), backward() and a
// plain gradient-descent update per step, on a compiled Plan. bench/python_bench.py runs
// this and the same loop written in Python, to measure what the Python module adds.
//   xor_loop STEPS REPEATS   -> prints the median microseconds per step of forward() and
//                               backward() alone, then of the whole step with the update
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include <opgraph/datasets/synthetic.hpp>
#include <opgraph/frontends/nn.hpp>
#include <opgraph/graph/plan.hpp>

int main(int argc, char** argv) {
  using namespace opgraph;
  const long steps = argc > 1 ? std::atol(argv[1]) : 20000;
  const int repeats = argc > 2 ? std::atoi(argv[2]) : 7;
  Graph g;
  auto x = nn::input(g, "x", {N, 2});
  auto y = nn::input(g, "y", {N, 1});
  auto h = nn::logistic(nn::dense(x, 2, "hidden"));
  auto p = nn::logistic(nn::dense(h, 1, "out")).named("p");
  g.set_loss(nn::binary_cross_entropy(p, y).named("loss"));
  Params params = g.init_params(0);
  const Dataset data = make_xor();
  const Tensor labels = data.labels.reshape({4, 1});
  Plan plan(g, params, {.batch = 4});
  plan.set_input("x", data.features);
  plan.set_input("y", labels);
  const std::vector<ParamSlot> slots = plan.parameters();
  auto time_loop = [&](bool update) {
    std::vector<double> us;
    for (int r = 0; r < repeats; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      for (long s = 0; s < steps; ++s) {
        plan.forward();
        plan.backward();
        if (!update) continue;
        for (const ParamSlot& slot : slots) {
          float* w = static_cast<float*>(const_cast<void*>(slot.value.raw()));
          const float* grad = slot.grad.data<float>();
          for (std::int64_t i = 0; i < slot.value.numel(); ++i) w[i] -= 0.3f * grad[i];
        }
      }
      us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() /
                   static_cast<double>(steps));
    }
    std::sort(us.begin(), us.end());
    return us[us.size() / 2];
  };
  const double passes = time_loop(false);
  const double whole = time_loop(true);
  std::printf("%.4f %.4f\n", passes, whole);
  return 0;
}
