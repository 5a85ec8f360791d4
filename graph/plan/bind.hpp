// The kernel binder: fills a Kernel's views from where a node's values live. One binder
// serves the executor (Plan) and the conformance harness (opgraph check), so an op sees
// the same views however it is run.
#pragma once

#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include <opgraph/graph/op.hpp>
#include <opgraph/graph/random.hpp>
#include <opgraph/graph/size.hpp>

namespace opgraph::planning {

/// Memory and shape of one tensor a kernel sees; data may be null (not bound yet, or no
/// such tensor: a gradient nobody needs, a cotangent nobody sends).
/// The dimensions are held in place (no allocation: a plan binds one slot per tensor of
/// every node, a 100 000-node graph's half a million).
struct Slot {
  void* data = nullptr;
  int rank = 0;
  std::int64_t dims[kMaxRank] = {};
  std::int64_t size = 0;
  bool index = false;  // holds i64 indices

  Slot() = default;
  Slot(void* d, const Shape& shape, bool is_index) : data(d), index(is_index) { set_shape(shape); }
  /// Takes the dimensions of `shape`, which must be bound (no `N`).
  void set_shape(const Shape& shape) {
    rank = shape.rank();
    for (int i = 0; i < rank && i < kMaxRank; ++i) dims[i] = shape[i];
    size = shape.numel();
  }
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
  v.size = s.size;
  v.rank = s.rank;
  for (int i = 0; i < s.rank && i < kMaxRank; ++i) v.dims[i] = s.dims[i];
  return v;
}

/// The views of a set of kernels (a plan's, or the conformance harness's one), in four
/// arrays sized once by reserve(): a Kernel's spans point into them, so they never grow
/// past it. On huge pages from 2 MiB up (detail::PageAllocator).
template <class T>
class ViewStore {
 public:
  /// Room for kernels with `inputs` inputs, `outputs` outputs and `states` states in all.
  void reserve(std::size_t inputs, std::size_t outputs, std::size_t states) {
    reals_in_.reserve(inputs + outputs);
    index_in_.reserve(inputs);
    reals_out_.reserve(outputs + inputs + states);
    index_out_.reserve(outputs);
  }
  std::span<View<const T>> reals_in(std::size_t n) { return take(reals_in_, n); }
  std::span<View<const std::int64_t>> index_in(std::size_t n) { return take(index_in_, n); }
  std::span<View<T>> reals_out(std::size_t n) { return take(reals_out_, n); }
  std::span<View<std::int64_t>> index_out(std::size_t n) { return take(index_out_, n); }

 private:
  template <class V>
  using Array = std::vector<V, detail::PageAllocator<V>>;
  template <class V>
  static std::span<V> take(Array<V>& a, std::size_t n) {
    // Past the reserve the array would move and leave every span bound so far dangling.
    if (a.size() + n > a.capacity()) throw std::logic_error("planning::ViewStore: more views than reserved");
    a.resize(a.size() + n);
    return {a.data() + (a.size() - n), n};
  }
  Array<View<const T>> reals_in_;                 // in_, grad_out_
  Array<View<const std::int64_t>> index_in_;      // index_in_
  Array<View<T>> reals_out_;                      // out_, grad_in_, state_
  Array<View<std::int64_t>> index_out_;           // index_out_
};

/// Binds `k` for node `name` of op `op` (with its resolved attributes), as `b` describes,
/// its views taken from `store`; `vjp_runs`: whether the node's vjp will run after its
/// forward. `step` and `sample_offset` point at the plan's counters (read at each call).
template <class T>
void bind_kernel(Kernel<T>& k, ViewStore<T>& store, const OpDef& op, const std::vector<AttrValue>& attrs,
                 const std::string& name, const Binding& b, bool training, bool vjp_runs, std::uint64_t seed,
                 const std::int64_t* step, const std::int64_t* sample_offset) {
  k.op_ = &op;
  k.attrs_ = &attrs;
  k.node_name_ = &name;
  k.training_ = training;
  k.vjp_runs_ = vjp_runs;
  k.random_key_ = stream_key(seed, name);
  k.step_ = step;
  k.sample_offset_ = sample_offset;
  k.in_ = store.reals_in(b.inputs.size());
  k.index_in_ = store.index_in(b.inputs.size());
  for (std::size_t i = 0; i < b.inputs.size(); ++i) {
    if (b.inputs[i].index) k.index_in_[i] = view_of<View<const std::int64_t>>(b.inputs[i]);
    else k.in_[i] = view_of<View<const T>>(b.inputs[i]);
    // An input fed later still needs its shape: an unbound slot keeps dims, data null.
    if (!b.inputs[i].data) {
      k.in_[i].rank = k.index_in_[i].rank = b.inputs[i].rank;
      for (int d = 0; d < b.inputs[i].rank && d < kMaxRank; ++d) k.in_[i].dims[d] = k.index_in_[i].dims[d] = b.inputs[i].dims[d];
      k.in_[i].size = k.index_in_[i].size = b.inputs[i].size;
    }
  }
  k.out_ = store.reals_out(b.outputs.size());
  k.index_out_ = store.index_out(b.outputs.size());
  for (std::size_t i = 0; i < b.outputs.size(); ++i) {
    if (b.outputs[i].index) k.index_out_[i] = view_of<View<std::int64_t>>(b.outputs[i]);
    else k.out_[i] = view_of<View<T>>(b.outputs[i]);
  }
  k.grad_out_ = store.reals_in(b.grad_outputs.size());
  for (std::size_t i = 0; i < b.grad_outputs.size(); ++i) k.grad_out_[i] = view_of<View<const T>>(b.grad_outputs[i]);
  k.grad_in_ = store.reals_out(b.grad_inputs.size());
  for (std::size_t i = 0; i < b.grad_inputs.size(); ++i) k.grad_in_[i] = view_of<View<T>>(b.grad_inputs[i]);
  k.state_ = store.reals_out(b.states.size());
  for (std::size_t i = 0; i < b.states.size(); ++i) k.state_[i] = view_of<View<T>>(b.states[i]);
  k.workspace_ = view_of<View<T>>(b.workspace);
  k.scratch_ = view_of<View<T>>(b.scratch);
}

}  // namespace opgraph::planning
