// A deliberate data race between the chunks of an opgraph::parallel_for, built only under
// ThreadSanitizer: its test passes only when TSan reports the race, which proves that the
// suppressions in tests/tsan.supp (TBB's own bookkeeping) do not hide races in our code.
#include <cstdint>
#include <cstdio>

#include <opgraph/graph/parallel.hpp>

namespace {
long shared_total = 0;  // written by every chunk, with no lock and no atomic: the race

void add_chunk(std::int64_t begin, std::int64_t end) {
  volatile long local = 0;
  for (std::int64_t i = begin; i < end; ++i) local = local + i % 7;  // enough work for two threads to overlap
  shared_total += local;
}
}  // namespace

int main() {
  opgraph::ThreadCount threads(2);
  for (int round = 0; round < 50; ++round) opgraph::parallel_for(1 << 16, 1 << 10, add_chunk);
  std::printf("total %ld\n", shared_total);
  return 0;
}
