#include "reference.hpp"

#include <algorithm>
#include <cmath>

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>

#include <opgraph/graph/gemm.hpp>

namespace bench {

namespace {

/// f(begin, end) over row ranges; in parallel when there is enough work.
template <class F>
void for_rows(std::int64_t rows, std::int64_t cols, F&& f) {
  if (rows * cols < 32768) {
    f(std::int64_t{0}, rows);
    return;
  }
  const std::int64_t grain = std::max<std::int64_t>(1, 16384 / cols);
  tbb::parallel_for(
      tbb::blocked_range<std::int64_t>(0, rows, grain),
      [&](const tbb::blocked_range<std::int64_t>& r) { f(r.begin(), r.end()); }, tbb::static_partitioner());
}

constexpr std::int64_t kSumChunks = 8;

}  // namespace

Reference::Reference(const Workload& w, std::int64_t max_batch) : w_(w), max_batch_(max_batch) {
  const auto specs = param_specs(w);
  std::int64_t widest = 1;
  for (const auto& s : specs) {
    params_.emplace_back(static_cast<std::size_t>(s.numel()));
    grads_.emplace_back(static_cast<std::size_t>(s.numel()));
    fill_param(s, params_.back().data());
    widest = std::max(widest, s.cols);  // gradients flow back through layer outputs only
  }
  const std::size_t count = specs.size() / 2;
  for (std::size_t i = 0; i < count; ++i) {
    Layer l;
    l.in = specs[2 * i].rows;
    l.out = specs[2 * i].cols;
    l.w = params_[2 * i].data();
    l.dw = grads_[2 * i].data();
    l.b = params_[2 * i + 1].data();
    l.db = grads_[2 * i + 1].data();
    const bool last = i + 1 == count;
    if (!last) {
      const std::string act = w.kind == Workload::Kind::mlp ? hidden_activation(w, i) : "relu";
      l.act = act == "relu" ? Act::relu : Act::logistic;
    }
    l.a.resize(static_cast<std::size_t>(max_batch * l.out));
    layers_.push_back(std::move(l));
  }
  const auto scratch = static_cast<std::size_t>(max_batch * widest);
  d1_.resize(scratch);
  d2_.resize(scratch);
  if (w.kind == Workload::Kind::towers) {
    sum_.resize(scratch);
    d3_.resize(scratch);
  }
  row_loss_.resize(static_cast<std::size_t>(max_batch));
  hit_.resize(static_cast<std::size_t>(max_batch));
  partials_.resize(static_cast<std::size_t>(kSumChunks * widest));
}

std::size_t Reference::bytes() const {
  std::size_t n = d1_.size() + d2_.size() + d3_.size() + sum_.size() + row_loss_.size() + partials_.size();
  for (const auto& p : params_) n += 2 * p.size();
  for (const auto& l : layers_) n += l.a.size();
  return n * sizeof(float) + hit_.size();
}

// a = act(x·W + b): the GEMM, then bias and activation in one pass.
void Reference::dense(Layer& l, const float* x, std::int64_t rows) {
  float* a = l.a.data();
  opgraph::gemm<float>(false, false, rows, l.out, l.in, 1.0f, x, l.in, l.w, l.out, 0.0f, a, l.out);
  const std::int64_t n = l.out;
  const float* b = l.b;
  const Act act = l.act;
  for_rows(rows, n, [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r) {
      float* z = a + r * n;
      if (act == Act::relu)
        for (std::int64_t j = 0; j < n; ++j) z[j] = std::max(z[j] + b[j], 0.0f);
      else if (act == Act::logistic)
        for (std::int64_t j = 0; j < n; ++j) z[j] = 1.0f / (1.0f + std::exp(-(z[j] + b[j])));
      else
        for (std::int64_t j = 0; j < n; ++j) z[j] += b[j];
    }
  });
}

namespace {
// dx *= act'(a), where a = act(z) is the layer's output.
void times_derivative(float* dx, const float* a, std::int64_t rows, std::int64_t n, bool relu) {
  for_rows(rows, n, [&](std::int64_t r0, std::int64_t r1) {
    if (relu)
      for (std::int64_t i = r0 * n; i < r1 * n; ++i) dx[i] = a[i] > 0.0f ? dx[i] : 0.0f;
    else
      for (std::int64_t i = r0 * n; i < r1 * n; ++i) dx[i] *= a[i] * (1.0f - a[i]);
  });
}
}  // namespace

// The loss from the last layer's logits, which it overwrites with the loss gradient.
double Reference::loss(Layer& last, const std::int64_t* labels, std::int64_t rows, std::int64_t* correct) {
  const std::int64_t c = last.out;
  float* z = last.a.data();
  float* losses = row_loss_.data();
  unsigned char* hit = hit_.data();
  const float inv = 1.0f / static_cast<float>(rows);
  if (c == 1) {  // sigmoid and binary cross-entropy
    for_rows(rows, 64, [&](std::int64_t r0, std::int64_t r1) {
      for (std::int64_t r = r0; r < r1; ++r) {
        const float p = 1.0f / (1.0f + std::exp(-z[r]));
        const float y = static_cast<float>(labels[r]);
        constexpr float eps = 1e-7f;
        losses[r] = -(y * std::log(std::max(p, eps)) + (1.0f - y) * std::log(std::max(1.0f - p, eps)));
        hit[r] = (p >= 0.5f) == (labels[r] == 1);
        z[r] = (p - y) * inv;
      }
    });
  } else {  // softmax and cross-entropy in one pass
    const bool probabilities = w_.output == "softmax_then_ce";
    for_rows(rows, c * 8, [&](std::int64_t r0, std::int64_t r1) {
      for (std::int64_t r = r0; r < r1; ++r) {
        float* zr = z + r * c;
        const std::int64_t y = labels[r];
        float m = zr[0];
        std::int64_t arg = 0;
        for (std::int64_t j = 1; j < c; ++j)
          if (zr[j] > m) m = zr[j], arg = j;
        const float zy = zr[y] - m;
        float s = 0.0f;
        for (std::int64_t j = 0; j < c; ++j) s += (zr[j] = std::exp(zr[j] - m));
        const float inv_s = 1.0f / s;
        losses[r] = probabilities ? -std::log(std::max(zr[y] * inv_s, 1e-7f)) : std::log(s) - zy;
        hit[r] = arg == y;
        for (std::int64_t j = 0; j < c; ++j) zr[j] *= inv_s * inv;
        zr[y] -= inv;
      }
    });
  }
  double total = 0.0;
  std::int64_t hits = 0;
  for (std::int64_t r = 0; r < rows; ++r) total += losses[r], hits += hit[r];
  if (correct) *correct += hits;
  return total / static_cast<double>(rows);
}

void Reference::column_sums(const float* dz, std::int64_t rows, std::int64_t cols, float* out) {
  if (rows * cols < 65536) {
    std::fill(out, out + cols, 0.0f);
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t j = 0; j < cols; ++j) out[j] += dz[r * cols + j];
    return;
  }
  const std::int64_t per = (rows + kSumChunks - 1) / kSumChunks;
  float* partial = partials_.data();
  tbb::parallel_for(std::int64_t{0}, kSumChunks, [&](std::int64_t c) {
    float* p = partial + c * cols;
    std::fill(p, p + cols, 0.0f);
    for (std::int64_t r = c * per; r < std::min(rows, (c + 1) * per); ++r)
      for (std::int64_t j = 0; j < cols; ++j) p[j] += dz[r * cols + j];
  });
  std::copy(partial, partial + cols, out);
  for (std::int64_t c = 1; c < kSumChunks; ++c)
    for (std::int64_t j = 0; j < cols; ++j) out[j] += partial[c * cols + j];
}

// dW = xᵀ·dz, db = column sums of dz, dx = dz·Wᵀ (when asked).
void Reference::dense_backward(Layer& l, const float* x, const float* dz, std::int64_t rows, float* dx) {
  opgraph::gemm<float>(true, false, l.in, l.out, rows, 1.0f, x, l.in, dz, l.out, 0.0f, l.dw, l.out);
  column_sums(dz, rows, l.out, l.db);
  if (dx) opgraph::gemm<float>(false, true, rows, l.in, l.out, 1.0f, dz, l.out, l.w, l.out, 0.0f, dx, l.in);
}

void Reference::sgd() {
  const auto lr = static_cast<float>(w_.lr);
  for (std::size_t i = 0; i < params_.size(); ++i) {
    float* p = params_[i].data();
    const float* g = grads_[i].data();
    const auto n = static_cast<std::int64_t>(params_[i].size());
    for_rows(n, 1, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t k = b; k < e; ++k) p[k] -= lr * g[k];
    });
  }
}

double Reference::run_forward(const float* x, const std::int64_t* labels, std::int64_t rows, std::int64_t* correct) {
  if (w_.kind == Workload::Kind::mlp) {
    const float* in = x;
    for (auto& l : layers_) {
      dense(l, in, rows);
      in = l.a.data();
    }
  } else {
    const std::int64_t width = layers_[1].out;
    for (int t = 0; t < kTowers; ++t) {
      dense(layers_[2 * t], x, rows);
      dense(layers_[2 * t + 1], layers_[2 * t].a.data(), rows);
    }
    float* s = sum_.data();
    for_rows(rows, width, [&](std::int64_t r0, std::int64_t r1) {
      for (std::int64_t i = r0 * width; i < r1 * width; ++i) {
        float v = layers_[1].a[i];
        for (int t = 1; t < kTowers; ++t) v += layers_[2 * t + 1].a[i];
        s[i] = v;
      }
    });
    dense(layers_.back(), s, rows);
  }
  return loss(layers_.back(), labels, rows, correct);
}

double Reference::forward(const float* x, const std::int64_t* labels, std::int64_t rows, std::int64_t* correct) {
  return run_forward(x, labels, rows, correct);
}

double Reference::train_step(const float* x, const std::int64_t* labels, std::int64_t rows, std::int64_t* correct) {
  const double value = run_forward(x, labels, rows, correct);
  if (w_.kind == Workload::Kind::mlp) {
    float* dz = layers_.back().a.data();
    for (std::size_t l = layers_.size(); l-- > 0;) {
      Layer& layer = layers_[l];
      if (l == 0) {
        dense_backward(layer, x, dz, rows, nullptr);
        break;
      }
      Layer& prev = layers_[l - 1];
      float* dx = dz == d1_.data() ? d2_.data() : d1_.data();
      dense_backward(layer, prev.a.data(), dz, rows, dx);
      times_derivative(dx, prev.a.data(), rows, prev.out, prev.act == Act::relu);
      dz = dx;
    }
  } else {
    // d(sum) is the same for every tower: d1. Per tower: d2 = d(second layer), d3 = d(first).
    dense_backward(layers_.back(), sum_.data(), layers_.back().a.data(), rows, d1_.data());
    for (int t = 0; t < kTowers; ++t) {
      Layer& a = layers_[2 * t];
      Layer& b = layers_[2 * t + 1];
      const std::int64_t n = b.out;
      for_rows(rows, n, [&](std::int64_t r0, std::int64_t r1) {
        for (std::int64_t i = r0 * n; i < r1 * n; ++i) d2_[i] = b.a[i] > 0.0f ? d1_[i] : 0.0f;
      });
      dense_backward(b, a.a.data(), d2_.data(), rows, d3_.data());
      times_derivative(d3_.data(), a.a.data(), rows, a.out, true);
      dense_backward(a, x, d3_.data(), rows, nullptr);
    }
  }
  sgd();
  return value;
}

}  // namespace bench
