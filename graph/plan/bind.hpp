// The kernel binder: fills a Kernel's views from where a node's values live. One binder
// serves the executor (Plan) and the conformance harness (opgraph check), so an op sees
// the same views however it is run.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <opgraph/graph/op.hpp>
#include <opgraph/graph/random.hpp>

namespace opgraph::planning {

/// Memory and shape of one tensor a kernel sees; data may be null (not bound yet, or no
/// such tensor: a gradient nobody needs, a cotangent nobody sends).
struct Slot {
  void* data = nullptr;
  Shape shape;
  bool index = false;  // holds i64 indices
};

/// Everything one node's kernels read and write.
struct Binding {
  std::vector<Slot> inputs, outputs, grad_outputs, grad_inputs, states;
  Slot workspace, scratch;
};

template <class V>
V view_of(const Slot& s) {
  V v;
  v.data = static_cast<decltype(v.data)>(s.data);
  v.size = s.shape.numel();
  v.rank = s.shape.rank();
  for (int i = 0; i < s.shape.rank() && i < kMaxRank; ++i) v.dims[i] = s.shape[i];
  return v;
}

/// Binds `k` for node `name` of op `op` (with its resolved attributes), as `b` describes;
/// `vjp_runs`: whether the node's vjp will run after its forward.
/// `step` and `sample_offset` point at the plan's counters (read at each call).
template <class T>
void bind_kernel(Kernel<T>& k, const OpDef& op, const std::vector<AttrValue>& attrs, const std::string& name,
                 const Binding& b, bool training, bool vjp_runs, std::uint64_t seed, const std::int64_t* step,
                 const std::int64_t* sample_offset) {
  k.op_ = &op;
  k.attrs_ = &attrs;
  k.node_name_ = &name;
  k.training_ = training;
  k.vjp_runs_ = vjp_runs;
  k.random_key_ = stream_key(seed, name);
  k.step_ = step;
  k.sample_offset_ = sample_offset;
  k.in_.assign(b.inputs.size(), {});
  k.index_in_.assign(b.inputs.size(), {});
  for (std::size_t i = 0; i < b.inputs.size(); ++i) {
    if (b.inputs[i].index) k.index_in_[i] = view_of<View<const std::int64_t>>(b.inputs[i]);
    else k.in_[i] = view_of<View<const T>>(b.inputs[i]);
    // An input fed later still needs its shape: an unbound slot keeps dims, data null.
    if (!b.inputs[i].data) {
      k.in_[i].rank = k.index_in_[i].rank = b.inputs[i].shape.rank();
      for (int d = 0; d < b.inputs[i].shape.rank(); ++d) k.in_[i].dims[d] = k.index_in_[i].dims[d] = b.inputs[i].shape[d];
      k.in_[i].size = k.index_in_[i].size = b.inputs[i].shape.numel();
    }
  }
  k.out_.assign(b.outputs.size(), {});
  k.index_out_.assign(b.outputs.size(), {});
  for (std::size_t i = 0; i < b.outputs.size(); ++i) {
    if (b.outputs[i].index) k.index_out_[i] = view_of<View<std::int64_t>>(b.outputs[i]);
    else k.out_[i] = view_of<View<T>>(b.outputs[i]);
  }
  k.grad_out_.assign(b.grad_outputs.size(), {});
  for (std::size_t i = 0; i < b.grad_outputs.size(); ++i) k.grad_out_[i] = view_of<View<const T>>(b.grad_outputs[i]);
  k.grad_in_.assign(b.grad_inputs.size(), {});
  for (std::size_t i = 0; i < b.grad_inputs.size(); ++i) k.grad_in_[i] = view_of<View<T>>(b.grad_inputs[i]);
  k.state_.assign(b.states.size(), {});
  for (std::size_t i = 0; i < b.states.size(); ++i) k.state_[i] = view_of<View<T>>(b.states[i]);
  k.workspace_ = view_of<View<T>>(b.workspace);
  k.scratch_ = view_of<View<T>>(b.scratch);
}

}  // namespace opgraph::planning
