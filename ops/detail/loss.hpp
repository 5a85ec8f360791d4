// Shared by the loss ops: the reduction attribute and the divisor it implies.
#pragma once

#include <cstdint>

#include <opgraph/graph/op.hpp>

namespace opgraph::ops::detail {

inline const std::vector<std::string> kReductions = {"mean", "sum"};
inline constexpr const char* kReductionDoc = "mean: divide the summed loss by the number of terms; sum: do not";

/// What the summed loss is divided by: `count` for reduction=mean, 1 for sum.
template <class K>
double divisor(const K& k, std::int64_t count) {
  return k.attr_string("reduction") == "mean" ? static_cast<double>(count) : 1.0;
}

}  // namespace opgraph::ops::detail

namespace opgraph::ops::detail {

/// Shape rule of a loss over two same-shaped inputs.
inline ShapeFn paired_loss_shape() {
  return [](const ShapeContext& c) {
    if (c.in(0) != c.in(1))
      c.fail("{} of shape {} and {} of shape {} differ", c.op().input(0).name, c.in(0), c.op().input(1).name, c.in(1));
    return Shape{};
  };
}

/// Shape rule of a class loss: scores [..., C] with labels either one-hot [..., C] or
/// class indices [...].
inline ShapeFn class_loss_shape() {
  return [](const ShapeContext& c) {
    const Shape &x = c.in(0), &y = c.in(1);
    if (x.rank() < 1) c.fail("{} needs a class axis, got shape {}", c.op().input(0).name, x);
    std::vector<std::int64_t> rows(x.dims().begin(), x.dims().end() - 1);
    if (y != x && y != Shape(rows))
      c.fail("labels of shape {} fit neither one-hot labels {} nor class indices {}", y, x, Shape(rows));
    return Shape{};
  };
}

/// The class index held in a label value; throws DataError when it is not one of [0, classes).
template <class K, class T>
[[gnu::always_inline]] inline std::int64_t class_index(const K& k, T value, std::int64_t row, std::int64_t classes) {
  const auto c = static_cast<std::int64_t>(value);
  if (!(value >= T(0)) || static_cast<T>(c) != value || c >= classes)
    k.fail("label {} in row {} is not a class index in [0, {})", static_cast<double>(value), row, classes);
  return c;
}

/// Reads the class of each row of label input `slot`, held as i64 or as real class
/// indices; throws DataError naming the node when one is not in [0, classes). Built once
/// per kernel call, read per row (inline: a call per row would cost as much as the row).
template <class K>
class LabelReader {
 public:
  LabelReader(const K& k, int slot, std::int64_t classes)
      : k_(k),
        ints_(k.input_is_index(slot) ? k.index_in(slot).data : nullptr),
        reals_(ints_ ? nullptr : k.in(slot).data),
        classes_(classes) {}
  [[gnu::always_inline]] std::int64_t operator()(std::int64_t row) const {
    if (ints_) {
      const std::int64_t c = ints_[row];
      if (c < 0 || c >= classes_) k_.fail("label {} in row {} is not a class index in [0, {})", c, row, classes_);
      return c;
    }
    return class_index(k_, reals_[row], row, classes_);
  }
  /// Whether row's label is `value` (ignore_index), read before any range check.
  [[gnu::always_inline]] bool is(std::int64_t row, std::int64_t value) const {
    return ints_ ? ints_[row] == value : reals_[row] == static_cast<typename K::value_type>(value);
  }

 private:
  const K& k_;
  const std::int64_t* ints_;
  const typename K::value_type* reals_;
  std::int64_t classes_;
};

/// Whether label input `slot` holds one-hot rows (as many values as the scores).
template <class K>
bool one_hot_labels(const K& k, int slot, std::int64_t scores) {
  return !k.input_is_index(slot) && k.in(slot).size == scores;
}

}  // namespace opgraph::ops::detail
