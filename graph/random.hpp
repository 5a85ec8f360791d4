// A small seeded random generator whose streams are the same on every platform.
#pragma once

#include <cmath>
#include <cstdint>
#include <string_view>

namespace opgraph {

/// xoshiro256** seeded through splitmix64. Unlike std:: distributions, uniform()
/// and normal() give bit-identical sequences with every compiler and library.
class Rng {
 public:
  explicit Rng(std::uint64_t seed = 0) {
    for (auto& s : state_) s = splitmix(seed);
  }

  std::uint64_t next() {
    const std::uint64_t result = rotl(state_[1] * 5, 7) * 9;
    const std::uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = rotl(state_[3], 45);
    return result;
  }

  /// Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  /// Uniform integer in [0, n) (n > 0), without modulo bias worth mentioning for n < 2^32.
  std::uint64_t below(std::uint64_t n) { return static_cast<std::uint64_t>(uniform() * static_cast<double>(n)) % n; }
  /// Standard normal by Box-Muller (one value per call; the pair's twin is discarded for simplicity).
  double normal() {
    double u1 = uniform();
    while (u1 <= 0.0) u1 = uniform();
    const double u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
  double normal(double mean, double stddev) { return mean + stddev * normal(); }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  static std::uint64_t splitmix(std::uint64_t& x) {
    std::uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  std::uint64_t state_[4];
};

/// FNV-1a hash of a name, for deriving per-parameter seeds that do not depend on declaration order.
constexpr std::uint64_t stable_hash(std::string_view text) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (char c : text) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ULL;
  }
  return h;
}

/// Counter-based random numbers (Philox4x32-10, Salmon et al., SC 2011): the value for
/// element i of a node's stream at a step is a pure function of (key, step, i), so a
/// dropout mask is the same whatever the thread count, the wave schedule or the batch
/// split, and after a resume (the step is the trainer's global step).
class RandomStream {
 public:
  RandomStream(std::uint64_t key, std::int64_t step) : key_(key), step_(static_cast<std::uint64_t>(step)) {}

  /// Four 32-bit words for counter block b (elements 4b .. 4b+3).
  void block(std::uint64_t b, std::uint32_t out[4]) const {
    std::uint32_t c0 = static_cast<std::uint32_t>(b), c1 = static_cast<std::uint32_t>(b >> 32);
    std::uint32_t c2 = static_cast<std::uint32_t>(step_), c3 = static_cast<std::uint32_t>(step_ >> 32);
    std::uint32_t k0 = static_cast<std::uint32_t>(key_), k1 = static_cast<std::uint32_t>(key_ >> 32);
    for (int round = 0; round < 10; ++round) {
      const std::uint64_t p0 = std::uint64_t{0xD2511F53} * c0, p1 = std::uint64_t{0xCD9E8D57} * c2;
      const std::uint32_t n0 = static_cast<std::uint32_t>(p1 >> 32) ^ c1 ^ k0;
      const std::uint32_t n2 = static_cast<std::uint32_t>(p0 >> 32) ^ c3 ^ k1;
      c0 = n0;
      c1 = static_cast<std::uint32_t>(p1);
      c2 = n2;
      c3 = static_cast<std::uint32_t>(p0);
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
  }
  /// The 32 random bits of element i.
  std::uint32_t bits(std::uint64_t i) const {
    std::uint32_t w[4];
    block(i >> 2, w);
    return w[i & 3];
  }
  /// Uniform in [0, 1) for element i (24 random bits: exact in f32).
  double uniform(std::uint64_t i) const { return static_cast<double>(bits(i) >> 8) * 0x1.0p-24; }
  /// Fills out[0, n) with uniform values of elements first .. first+n-1.
  template <class T>
  void fill_uniform(T* out, std::uint64_t first, std::uint64_t n) const {
    std::uint32_t w[4];
    std::uint64_t cached = ~std::uint64_t{0};
    for (std::uint64_t j = 0; j < n; ++j) {
      const std::uint64_t i = first + j;
      if ((i >> 2) != cached) {
        cached = i >> 2;
        block(cached, w);
      }
      out[j] = static_cast<T>(static_cast<double>(w[i & 3] >> 8) * 0x1.0p-24);
    }
  }
  std::uint64_t key() const { return key_; }
  std::int64_t step() const { return static_cast<std::int64_t>(step_); }

 private:
  std::uint64_t key_, step_;
};

/// The key of a node's random stream: the plan's seed mixed with the node's name, so
/// streams do not depend on node ids or declaration order.
inline std::uint64_t stream_key(std::uint64_t seed, std::string_view node) {
  std::uint64_t z = seed ^ stable_hash(node);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace opgraph
