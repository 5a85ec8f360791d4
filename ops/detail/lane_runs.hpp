// Work in a fixed number of lanes, each a contiguous run of the items: the split depends
// on the item count and the most lanes the op allows (its scratch has a block per lane),
// never on the thread count, so a lane's sums and its scratch are the same on any pool.
// Contiguous runs, not every lanes-th item: two threads then take the first and the second
// half, as the elementwise passes before and after split their ranges, and less data moves
// between the cores (conv2d: LeNet-5's step at batch 64 on two threads of the Zen 5, 1.15
// -> 1.07 ms).
#pragma once

#include <algorithm>
#include <cstdint>

#include <opgraph/graph/parallel.hpp>

namespace opgraph::ops::detail {

/// f(lane, first, last) for each of the min(max_lanes, count) lanes, the lanes in
/// parallel: lane l takes the items [l·count/lanes, (l + 1)·count/lanes).
template <class F>
void for_each_lane(std::int64_t max_lanes, std::int64_t count, F&& f) {
  const std::int64_t lanes = std::min(max_lanes, count);
  parallel_for(lanes, 1, [&](std::int64_t l0, std::int64_t l1) {
    for (std::int64_t lane = l0; lane < l1; ++lane) f(lane, lane * count / lanes, (lane + 1) * count / lanes);
  });
}

}  // namespace opgraph::ops::detail
