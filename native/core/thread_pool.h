// A persistent pool of worker threads shared by every CPU kernel. Sized once from TALARIA_NUM_THREADS
// (default: the number of cores). Safe to call from several threads at once (async kernels run on libuv
// threads) and from inside a parallel region: the calling thread always works on its own job, so a
// nested or concurrent call can never wait on a worker that is busy elsewhere.
#pragma once
#include <cstdint>
#include <functional>

namespace talaria {

// Total threads a parallel_for may use, the caller included.
int num_threads();

// Calls body(lo, hi) on disjoint ranges covering [begin, end), each at least `grain` long (except the
// last). Returns when every range is done; rethrows the first exception a range threw.
void parallel_for(int64_t begin, int64_t end, int64_t grain,
                  const std::function<void(int64_t, int64_t)>& body);

}  // namespace talaria
