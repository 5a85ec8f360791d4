// The gradient exchange in one process: the fixed summation tree, buckets and overlap, the
// errors; and data-parallel fit through it (the same bits as plain training for one shard,
// the same numbers for several). Several processes: tests/mpi/.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>

#include <opgraph/datasets/synthetic.hpp>
#include <opgraph/frontends/model_format.hpp>
#include <opgraph/frontends/train.hpp>
#include <opgraph/optim/exchange.hpp>

using namespace opgraph;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

/// Runs one step of 5 shards whose values are chosen so that the order of the additions
/// shows in the result; returns both outputs.
std::vector<Tensor> five_shards(const ExchangeOptions& options) {
  auto comm = make_local_communicator();
  ExchangeOptions o = options;
  o.shards = 5;
  GradientExchange ex(*comm, o);
  ex.begin({3, 2}, DType::f32);
  const float big = 1e8f;
  // Weighted, the first column is 1e8, 0, 0, 3, 3.
  const std::vector<std::vector<float>> a = {{4 * big, 1, 3}, {0, -big, 5}, {0, 1, 7}, {1.5f, big, 11}, {24, 1, 13}};
  const std::vector<std::vector<float>> b = {{0.1f, 0.2f}, {0.3f, 0.4f}, {0.5f, 0.6f}, {0.7f, 0.8f}, {0.9f, 1.0f}};
  const std::vector<double> weight = {0.25, 0.5, 1.0, 2.0, 0.125};
  for (int s = 0; s < 5; ++s) {  // the second value first: buckets complete in any order
    ex.put(s, 1, Tensor::from({2}, {b[s][0], b[s][1]}, DType::f32), weight[static_cast<std::size_t>(s)]);
    ex.put(s, 0, Tensor::from({3}, {a[s][0], a[s][1], a[s][2]}, DType::f32), weight[static_cast<std::size_t>(s)]);
  }
  std::vector<Tensor> out = {Tensor({3}, DType::f32), Tensor({2}, DType::f32)};
  ex.finish({&out[0], &out[1]});
  return out;
}

/// A model with every kind of per-shard behaviour: dropout (random per sample) and batch
/// norm (batch statistics, running statistics as state).
Model model_with_state(std::uint64_t seed, bool dropout, bool batch_norm) {
  std::string text = "input x [N, 2]\nlabels y [N]\nparam W [2, 16] xavier\nparam c [16] zeros\n";
  std::string h = "bias_add(matmul(x, W), c)";
  if (batch_norm) {
    text += "param g [16] constant(1)\nparam b [16] zeros\n";
    h = "batch_norm(" + h + ", g, b)";
  }
  h = "relu(" + h + ")";
  if (dropout) h = "dropout(" + h + ", p=0.25)";
  text += "h = " + h + "\nparam V [16, 2] xavier\nparam d [2] zeros\n"
          "loss l = softmax_cross_entropy(bias_add(matmul(h, V), d), y)\n";
  const ModelFile f = parse_model(text);
  return Model{f.graph, f.graph.init_params(seed), f.input, f.labels};
}

History train(Model& m, Communicator* comm, int shards) {
  auto opt = make_optimizer("adam", {.lr = 0.01});
  TrainOptions o;
  o.epochs = 3;
  o.batch = 30;
  o.seed = 4;
  o.communicator = comm;
  o.exchange.shards = shards;
  o.exchange.bucket_bytes = 64;  // several buckets, so that overlap has something to do
  return fit(m, make_moons(200, 0.1, 2), *opt, o);
}

}  // namespace

TEST_CASE("exchange: shard values are summed along the fixed tree, whatever the buckets and overlap") {
  // The tree over 5 shards: ((s0 + s1) + s2) + (s3 + s4), each value times its weight.
  const std::vector<Tensor> out = five_shards({});
  const float big = 1e8f;
  const float e0 = ((4 * big * 0.25f + 0.0f * 0.5f) + 0.0f * 1.0f) + (1.5f * 2.0f + 24.0f * 0.125f);
  const float e1 = ((1.0f * 0.25f + -big * 0.5f) + 1.0f * 1.0f) + (big * 2.0f + 1.0f * 0.125f);
  const float e2 = ((3.0f * 0.25f + 5.0f * 0.5f) + 7.0f * 1.0f) + (11.0f * 2.0f + 13.0f * 0.125f);
  CHECK(out[0].data<float>()[0] == e0);
  CHECK(out[0].data<float>()[1] == e1);
  CHECK(out[0].data<float>()[2] == e2);
  // Summed left to right, 1e8 + 3 + 3 loses both 3s (floats are 8 apart there); the tree
  // adds 3 + 3 first and rounds 1e8 + 6 up: the order shows in the bits.
  CHECK(e0 == 100000008.0f);
  CHECK(((((4 * big * 0.25f + 0.0f) + 0.0f) + 3.0f) + 3.0f) == 100000000.0f);
  const float f0 = ((0.1f * 0.25f + 0.3f * 0.5f) + 0.5f * 1.0f) + (0.7f * 2.0f + 0.9f * 0.125f);
  CHECK(out[1].data<float>()[0] == f0);
  for (const ExchangeOptions& o : {ExchangeOptions{.overlap = false}, ExchangeOptions{.bucket_bytes = 1},
                                   ExchangeOptions{.overlap = false, .bucket_bytes = 1 << 30}}) {
    const std::vector<Tensor> again = five_shards(o);
    CHECK(again[0].bitwise_equal(out[0]));
    CHECK(again[1].bitwise_equal(out[1]));
  }
}

TEST_CASE("exchange: misuse is an error that says what is wrong") {
  auto comm = make_local_communicator();
  CHECK(error_of([&] { GradientExchange ex(*comm, {.shards = 0}); }) == "data parallel: shards must be at least 1, got 0");
  GradientExchange ex(*comm, {.shards = 2});
  CHECK(ex.first_shard() == 0);
  CHECK(ex.end_shard() == 2);
  ex.begin({2}, DType::f32);
  const Tensor v = Tensor::from({2}, {1, 2}, DType::f32);
  ex.put(0, 0, v, 1.0);
  CHECK(error_of([&] { ex.put(0, 0, v, 1.0); }) == "data parallel: value 0 of shard 0 was put twice in one step");
  CHECK(error_of([&] { ex.put(2, 0, v, 1.0); }) == "data parallel: value 0 of shard 2: not a value of this process's shards");
  CHECK(error_of([&] { ex.put(1, 0, Tensor::from({3}, {1, 2, 3}, DType::f32), 1.0); }) ==
        "data parallel: value 0 has 3 f32 elements, the exchange expects 2 f32");
  Tensor out({2}, DType::f32);
  CHECK(error_of([&] { ex.finish({&out}); }) == "data parallel: value 0 is missing from 1 shard(s)");
  ex.skip(1);
  ex.finish({&out});
  CHECK(out.to_vector() == std::vector<double>{1, 2});
}

TEST_CASE("exchange: shard_rows splits a batch into near-equal parts, shard_block gives each process a block") {
  CHECK(shard_rows(10, 0, 4) == std::pair<std::int64_t, std::int64_t>{0, 2});
  CHECK(shard_rows(10, 1, 4) == std::pair<std::int64_t, std::int64_t>{2, 3});
  CHECK(shard_rows(10, 3, 4) == std::pair<std::int64_t, std::int64_t>{7, 3});
  CHECK(shard_rows(2, 1, 4) == std::pair<std::int64_t, std::int64_t>{0, 1});
  CHECK(shard_rows(2, 0, 4).second == 0);  // fewer rows than shards: some shards are empty
  CHECK(shard_block(0, 3, 4) == std::pair<int, int>{0, 1});
  CHECK(shard_block(1, 3, 4) == std::pair<int, int>{1, 2});
  CHECK(shard_block(2, 3, 4) == std::pair<int, int>{2, 4});
}

TEST_CASE("data parallel: one shard through the exchange is bit for bit plain training (dropout, batch norm)") {
  auto comm = make_local_communicator();
  Model plain = model_with_state(9, true, true), sharded = model_with_state(9, true, true);
  const History a = train(plain, nullptr, 0);
  const History b = train(sharded, comm.get(), 1);
  REQUIRE(a.epochs.size() == 3);
  for (std::size_t e = 0; e < 3; ++e) CHECK(a.epochs[e].train_loss == b.epochs[e].train_loss);
  for (const auto& entry : plain.params) {  // not a structured binding: clang 14 cannot capture one
    const std::string& name = entry.first;
    const Tensor& t = entry.second;
    CAPTURE(name);
    CHECK(sharded.params.at(name).bitwise_equal(t));
  }
}

TEST_CASE("data parallel: four shards compute the batch's gradient (dropout masks of the whole batch)") {
  // Without batch norm the shards' weighted sum is the batch mean in exact arithmetic, and
  // dropout draws by sample index: only rounding differs from plain training.
  auto comm = make_local_communicator();
  Model plain = model_with_state(9, true, false), sharded = model_with_state(9, true, false);
  const History a = train(plain, nullptr, 0);
  const History b = train(sharded, comm.get(), 4);
  for (std::size_t e = 0; e < 3; ++e) CHECK(b.epochs[e].train_loss == doctest::Approx(a.epochs[e].train_loss).epsilon(1e-5));
  CHECK(b.epochs[2].train_accuracy == a.epochs[2].train_accuracy);
  for (const auto& entry : plain.params) {  // not a structured binding: clang 14 cannot capture one
    const std::string& name = entry.first;
    const Tensor& t = entry.second;
    CAPTURE(name);
    const Tensor& s = sharded.params.at(name);
    for (std::int64_t i = 0; i < t.numel(); ++i) CHECK(s.at(i) == doctest::Approx(t.at(i)).epsilon(1e-4));
  }
  // With batch norm each shard normalises by its own statistics (as PyTorch's DDP without
  // SyncBatchNorm): a different model, but it still learns.
  Model bn = model_with_state(9, false, true);
  const History c = train(bn, comm.get(), 4);
  CHECK(c.epochs[2].train_loss < c.epochs[0].train_loss);
  CHECK(std::isfinite(bn.params.at("g").at(0)));
}
