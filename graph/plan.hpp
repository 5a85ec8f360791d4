// A graph compiled for one batch size: schedule, shapes, buffers; runs forward and backward.
#pragma once

#include <cstdint>
#include <functional>
#include <utility>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <opgraph/graph/graph.hpp>
#include <opgraph/graph/tensor.hpp>

namespace opgraph {

/// Training mode: kernels drop (dropout), use batch statistics and update running ones
/// (batch norm). Evaluation mode: none of that. `automatic`: train when the plan compiles a
/// backward pass, evaluate otherwise.
enum class Mode : std::uint8_t { automatic, train, eval };

struct PlanOptions {
  /// The size bound to the batch dimension N.
  std::int64_t batch = 1;
  /// Sizes of named dimensions ("T" in [N, T, 64]); every one a graph uses must be given.
  std::vector<std::pair<std::string, std::int64_t>> dims = {};
  Mode mode = Mode::automatic;
  /// Seed of the ops' random streams (dropout masks), with Plan::set_step.
  std::uint64_t seed = 0;
  /// The node backward() differentiates; empty means the graph's loss.
  std::string loss = {};
  /// false compiles for inference only: less memory, backward() throws.
  bool backward = true;
  /// Inputs whose gradients backward() computes too (parameters always get theirs).
  std::vector<std::string> input_grads = {};
  /// Nodes whose values stay readable after forward(), besides the graph's outputs and loss.
  std::vector<std::string> keep = {};
  /// Every value stays readable (no buffer reuse); for debugging.
  bool keep_all = false;
  /// Every gradient backward() computes stays readable through grad(), not only the
  /// parameters' and input_grads'; for statistics and debugging.
  bool keep_grads = false;
  /// Refuse to compile a plan whose buffers would exceed this many bytes (0: no limit).
  std::size_t memory_limit = 0;
  /// Check every input, every node's output and every gradient a vjp writes for NaN or
  /// infinity, and throw NumericError at the first one, naming the pass, the node, its op,
  /// where it was declared, the first bad index and the range of each input. Off: no cost.
  bool detect_anomaly = false;
  /// Time every node's forward and vjp (see Plan::profile).
  bool profile = false;
  /// Run a bias (bias_add, or an add of a vector: x·W + b) and a relu that follow a
  /// matmul (bias on the last axis) or a conv2d (per channel) inside its forward pass, on
  /// each tile of the product in registers or each image's planes in cache, when nothing
  /// else reads the values between them (planning::fuse_epilogues); their vjps run as
  /// before, but a relu's before a max_pool2d is left to the pool's, and a max_pool2d after
  /// a conv2d runs image by image inside it, both passes, with the bias's vjp. The bits are
  /// the same either way. detect_anomaly, which checks every node's output, turns it off:
  /// each node runs alone.
  bool fuse = true;
  /// Called in backward(), once per parameter, as soon as that parameter's gradient is
  /// final (fan-out sums included), with the parameter's index in parameters(): a
  /// communicator can start sending it while the rest of the backward pass runs.
  std::function<void(std::size_t)> on_gradient = {};
};

/// Time and work of one node, summed over the passes run since the plan was compiled
/// (or reset_profile).
struct NodeProfile {
  NodeId node = 0;
  std::string name, op;
  double forward_seconds = 0.0, backward_seconds = 0.0;
  std::int64_t forward_calls = 0, backward_calls = 0;
  double forward_flops = 0.0, backward_flops = 0.0;  // per call
  double forward_bytes = 0.0, backward_bytes = 0.0;  // per call: tensors read and written
  /// The node whose forward pass computes this one's (PlanOptions::fuse), its time counted
  /// there; empty when the node runs its own.
  std::string fused_into = {};
  /// The node whose vjp does this one's: an activation's taken over by the node after it
  /// (OpBuilder::absorbs_activation_vjp, absorbs_relu_vjp), or a vjp run item by item inside the producer before it
  /// (OpBuilder::per_item), its time counted there. Empty when the node runs its own.
  std::string vjp_absorbed_by = {};
};

/// A parameter as a plan sees it: its value (shared with the Params) and its gradient.
struct ParamSlot {
  std::string name;
  Tensor value;
  Tensor grad;
};

/// What the planner decided, for reports and dumps.
struct PlanStats {
  std::size_t arena_bytes = 0;      // one block holding every activation, gradient and scratch
  std::size_t unshared_bytes = 0;   // what the same buffers would take without reuse
  std::size_t param_bytes = 0;      // parameter values (owned by Params, not the plan)
  int forward_steps = 0;   // op nodes computed forward (those fused into another included: see fused)
  int backward_steps = 0;  // vjps run
  int forward_waves = 0;   // groups of independent nodes, run one after another
  int backward_waves = 0;
  int concurrent_waves = 0;  // waves whose nodes run at the same time (both passes)
  int in_place = 0;          // outputs and gradients written over another's buffer (OpBuilder::in_place)
  int fused = 0;             // forward steps run inside another's (PlanOptions::fuse)
  int vjps_absorbed = 0;     // vjps another node's vjp does (PlanOptions::fuse; not in backward_steps)
};

/// One vjp of the backward pass, as the planner arranged it (for dumps and reports).
struct BackwardStep {
  NodeId node = 0;
  std::vector<NodeId> reads;    // forward values the vjp reads (saved inputs; the node itself if it saves its output)
  bool reads_workspace = false;  // the op's workspace, kept from forward
  std::vector<NodeId> writes;   // inputs whose gradient this vjp writes first
  std::vector<NodeId> adds;     // inputs whose gradient it adds to (fan-out, summed by the engine)
  /// The node whose vjp does this one's work: itself, or the one the plan left it to
  /// (PlanOptions::fuse: a relu's to the max_pool2d after it, a pool's and a bias's to
  /// the conv2d before them, image by image), whose step then runs it.
  NodeId done_by = 0;
};

/// A Graph compiled once for one batch size and dtype (the dtype of the Params): a
/// topological schedule, every shape bound, every buffer allocated up front. forward()
/// and backward() allocate nothing. Results are bitwise identical for any thread count.
/// A plan keeps its own copy of the graph and uses the Params' buffers in place: update
/// parameters in place (Tensor::copy_from), do not replace them.
class Plan {
 public:
  /// Throws GraphError/ShapeError on a graph it cannot run (no vjp on the path to the
  /// loss, memory limit exceeded, bad option names).
  Plan(const Graph& graph, Params& params, PlanOptions options = {});
  ~Plan();
  Plan(Plan&&) noexcept;
  Plan& operator=(Plan&&) noexcept;

  /// The step of the ops' random streams (the trainer's global step: the same masks after
  /// a resume). Default 0.
  void set_step(std::int64_t step);
  /// Where this plan's batch starts in the global batch, when a data-parallel run splits
  /// it (ops that draw per sample, like dropout, index their draws by it). Default 0.
  void set_sample_offset(std::int64_t first);
  std::int64_t step() const;
  /// Whether kernels run in training mode.
  bool training() const;
  /// What the planner noticed but allows: parameters the loss never reaches, ...
  const std::vector<std::string>& warnings() const;

  /// Binds an input to a tensor of its bound shape and the plan's dtype. The plan reads
  /// that tensor's memory (no copy) at each forward(); keep it alive and unchanged.
  void set_input(std::string_view name, const Tensor& value);
  void forward();
  /// Gradients of the scalar loss with respect to every parameter (and input_grads).
  void backward();
  /// Gradients given the cotangent `seed` of the loss node's value (any shape): a vjp.
  void backward(const Tensor& seed);

  /// Value of an input, parameter, output, the loss, or a kept node, after forward().
  Tensor value(std::string_view node) const;
  /// The loss value after forward().
  double loss() const;
  /// Gradient of a parameter or of an input listed in input_grads, after backward().
  Tensor grad(std::string_view node) const;
  std::vector<ParamSlot> parameters() const;

  const Graph& graph() const;
  std::int64_t batch() const;
  DType dtype() const;
  PlanStats stats() const;
  /// Op nodes in forward order, and those whose vjp runs, in backward order.
  std::vector<NodeId> forward_order() const;
  std::vector<NodeId> backward_order() const;
  /// The backward pass step by step, in the order it runs.
  const std::vector<BackwardStep>& backward_steps() const;
  /// The bound shape of a node.
  const Shape& shape(NodeId node) const;
  /// Per op node, in forward order (needs PlanOptions::profile).
  std::vector<NodeProfile> profile() const;
  void reset_profile();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace opgraph
