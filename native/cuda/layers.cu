// CUDA decoder-layer kernels (kernels/layers.h). All bandwidth-bound:
// - rmsnorm: one block per row (grid-stride over rows); the sum of squares in f64, block_reduce's fixed
//   tree, thread 0 broadcasts rstd through shared memory. The backward runs three kernels: dx per row
//   (the mean of g x the same way), then dWeight partials per kRmsnormRowBlock rows (one thread per column
//   walking the block's rows in order, f64), then one thread per column adds the partials in block order.
//   That is the CPU's order exactly, so dWeight has the same bits on both backends; no atomics.
// - swiglu, axpby: grid-stride element loops.
// - embedding: one block per token row copies it. The backward groups the tokens by id on the host (a
//   counting sort of the ids, which preserves token order), then one block per distinct id adds its tokens'
//   rows in token order: every dTable element gets the CPU's sequence of f32 adds, with no atomics.
#include <algorithm>
#include <vector>

#include "../core/kernels/layers.h"
#include "check.cuh"
#include "launch.cuh"
#include "reduce.cuh"
#include "scratch.cuh"

namespace talaria {
namespace cuda {
namespace {

constexpr int kThreads = 256;

// Threads for a block that owns one row of `cols` columns: whole warps, at most kThreads.
int row_threads(int64_t cols) {
  const int64_t warps = ceil_div(cols, kWarpSize);
  return static_cast<int>(std::min<int64_t>(warps * kWarpSize, kThreads));
}

unsigned element_grid(int64_t n) { return capped_grid(ceil_div(n, kThreads)); }

__global__ void __launch_bounds__(kThreads, 4) rmsnorm_kernel(RmsnormArgs a) {
  __shared__ double scratch[kThreads / kWarpSize];
  __shared__ float row_rstd;
  for (int64_t r = blockIdx.x; r < a.rows; r += gridDim.x) {
    const float* x = a.x + r * a.dim;
    double sum = 0.0;
    for (int64_t j = threadIdx.x; j < a.dim; j += blockDim.x) sum += static_cast<double>(x[j]) * x[j];
    sum = block_reduce(sum, AddCombine<double>{}, scratch);
    if (threadIdx.x == 0) {
      row_rstd = rmsnorm_rstd(sum, a.dim, a.eps);
      a.rstd[r] = row_rstd;
    }
    __syncthreads();
    const float rstd = row_rstd;
    float* y = a.y + r * a.dim;
    for (int64_t j = threadIdx.x; j < a.dim; j += blockDim.x) y[j] = (x[j] * rstd) * a.weight[j];
    // The next row's block_reduce synchronises before thread 0 can write row_rstd again.
  }
}

__global__ void __launch_bounds__(kThreads, 4) rmsnorm_backward_dx_kernel(RmsnormBackwardArgs a) {
  __shared__ double scratch[kThreads / kWarpSize];
  __shared__ float row_coef;
  for (int64_t r = blockIdx.x; r < a.rows; r += gridDim.x) {
    const float* x = a.x + r * a.dim;
    const float* dy = a.dy + r * a.dim;
    double dot = 0.0;
    for (int64_t j = threadIdx.x; j < a.dim; j += blockDim.x) dot += static_cast<double>(dy[j] * a.weight[j]) * x[j];
    dot = block_reduce(dot, AddCombine<double>{}, scratch);
    const float rstd = a.rstd[r];
    if (threadIdx.x == 0) row_coef = rmsnorm_dx_coef(rstd, dot, a.dim);
    __syncthreads();
    const float coef = row_coef;
    float* dx = a.dx + r * a.dim;
    for (int64_t j = threadIdx.x; j < a.dim; j += blockDim.x) {
      const float value = rmsnorm_dx_element(rstd, dy[j] * a.weight[j], x[j], coef);
      dx[j] = a.accumulate_dx ? dx[j] + value : value;
    }
  }
}

// Block (column tile blockIdx.y, row block blockIdx.x): one thread per column sums its rows in order.
__global__ void __launch_bounds__(kThreads, 4) rmsnorm_dweight_partials_kernel(RmsnormBackwardArgs a, double* partials) {
  const int64_t j = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x;
  if (j >= a.dim) return;
  const int64_t begin = static_cast<int64_t>(blockIdx.x) * kRmsnormRowBlock;
  const int64_t end = begin + kRmsnormRowBlock < a.rows ? begin + kRmsnormRowBlock : a.rows;
  double partial = 0.0;
  for (int64_t r = begin; r < end; r++) partial += static_cast<double>(a.dy[r * a.dim + j] * (a.x[r * a.dim + j] * a.rstd[r]));
  partials[static_cast<int64_t>(blockIdx.x) * a.dim + j] = partial;
}

__global__ void __launch_bounds__(kThreads, 4) rmsnorm_dweight_combine_kernel(const double* partials, int64_t blocks,
                                                                              int64_t dim, float* d_weight,
                                                                              bool accumulate) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < dim; j += stride) {
    double total = 0.0;
    for (int64_t b = 0; b < blocks; b++) total += partials[b * dim + j];
    d_weight[j] = rmsnorm_d_weight(d_weight[j], total, accumulate);
  }
}

__global__ void __launch_bounds__(kThreads, 4) swiglu_kernel(SwigluArgs a) {
  const int64_t n = a.rows * a.hidden, stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const int64_t r = i / a.hidden, j = i - r * a.hidden;
    const float gate = a.gate_up[r * 2 * a.hidden + j], up = a.gate_up[r * 2 * a.hidden + a.hidden + j];
    a.h[i] = swiglu_element(gate, up, expf(-fabsf(gate)));
  }
}

__global__ void __launch_bounds__(kThreads, 4) swiglu_backward_kernel(SwigluBackwardArgs a) {
  const int64_t n = a.rows * a.hidden, stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const int64_t r = i / a.hidden, j = i - r * a.hidden;
    const int64_t at = r * 2 * a.hidden + j;
    const float gate = a.gate_up[at], up = a.gate_up[at + a.hidden];
    float d_gate, d_up;
    swiglu_backward_element(gate, up, a.dh[i], expf(-fabsf(gate)), d_gate, d_up);
    a.d_gate_up[at] = d_gate;
    a.d_gate_up[at + a.hidden] = d_up;
  }
}

__global__ void __launch_bounds__(kThreads, 4) embedding_kernel(EmbeddingArgs a) {
  for (int64_t t = blockIdx.x; t < a.rows; t += gridDim.x) {
    const float* from = a.table + static_cast<int64_t>(a.ids[t]) * a.dim;
    float* to = a.out + t * a.dim;
    for (int64_t j = threadIdx.x; j < a.dim; j += blockDim.x) to[j] = from[j];
  }
}

// Block u owns the distinct id ids[u]: its tokens are order[offsets[u] .. offsets[u + 1]), in token order.
__global__ void __launch_bounds__(kThreads, 4) embedding_backward_kernel(EmbeddingBackwardArgs a, const int32_t* distinct,
                                                                         const int64_t* offsets, const int64_t* order,
                                                                         int64_t count) {
  for (int64_t u = blockIdx.x; u < count; u += gridDim.x) {
    float* row = a.d_table + static_cast<int64_t>(distinct[u]) * a.dim;
    const int64_t begin = offsets[u], end = offsets[u + 1];
    for (int64_t j = threadIdx.x; j < a.dim; j += blockDim.x) {
      float acc = row[j];
      for (int64_t k = begin; k < end; k++) acc += a.d_out[order[k] * a.dim + j];
      row[j] = acc;
    }
  }
}

__global__ void __launch_bounds__(kThreads, 4) axpby_kernel(AxpbyArgs a) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < a.n; i += stride)
    a.y[i] = axpby_element(a.x[i], a.y[i], a.alpha, a.beta);
}

}  // namespace

void rmsnorm(int device, const RmsnormArgs& args) {
  if (args.rows == 0) return;
  TALARIA_CUDA_CHECK(cudaSetDevice(device));
  TALARIA_LAUNCH(capped_grid(args.rows), row_threads(args.dim), 0, 0, rmsnorm_kernel)(args);
  TALARIA_CUDA_CHECK_LAUNCH();
  TALARIA_CUDA_CHECK(cudaDeviceSynchronize());
}

void rmsnorm_backward(int device, const RmsnormBackwardArgs& args) {
  TALARIA_CUDA_CHECK(cudaSetDevice(device));
  if (args.rows == 0) {
    // No rows: dWeight is a sum of nothing, 0 (or unchanged when accumulating).
    if (!args.accumulate_d_weight) TALARIA_CUDA_CHECK(cudaMemset(args.d_weight, 0, static_cast<size_t>(args.dim) * sizeof(float)));
    TALARIA_CUDA_CHECK(cudaDeviceSynchronize());
    return;
  }
  TALARIA_LAUNCH(capped_grid(args.rows), row_threads(args.dim), 0, 0, rmsnorm_backward_dx_kernel)(args);
  TALARIA_CUDA_CHECK_LAUNCH();
  const int64_t blocks = ceil_div(args.rows, kRmsnormRowBlock);
  DeviceScratch scratch(static_cast<size_t>(blocks * args.dim) * sizeof(double));
  double* partials = reinterpret_cast<double*>(scratch.bytes());
  // Row blocks on x (up to 2^31 - 1), column tiles on y (up to 65535 tiles: dim <= 16M, checked by the binding).
  const dim3 grid(static_cast<unsigned>(blocks), static_cast<unsigned>(ceil_div(args.dim, kThreads)));
  TALARIA_LAUNCH(grid, kThreads, 0, 0, rmsnorm_dweight_partials_kernel)(args, partials);
  TALARIA_CUDA_CHECK_LAUNCH();
  TALARIA_LAUNCH(element_grid(args.dim), kThreads, 0, 0, rmsnorm_dweight_combine_kernel)(partials, blocks, args.dim,
                                                                                          args.d_weight,
                                                                                          args.accumulate_d_weight);
  TALARIA_CUDA_CHECK_LAUNCH();
  TALARIA_CUDA_CHECK(cudaDeviceSynchronize());
  scratch.release();
}

void swiglu(int device, const SwigluArgs& args) {
  const int64_t n = args.rows * args.hidden;
  if (n == 0) return;
  TALARIA_CUDA_CHECK(cudaSetDevice(device));
  TALARIA_LAUNCH(element_grid(n), kThreads, 0, 0, swiglu_kernel)(args);
  TALARIA_CUDA_CHECK_LAUNCH();
  TALARIA_CUDA_CHECK(cudaDeviceSynchronize());
}

void swiglu_backward(int device, const SwigluBackwardArgs& args) {
  const int64_t n = args.rows * args.hidden;
  if (n == 0) return;
  TALARIA_CUDA_CHECK(cudaSetDevice(device));
  TALARIA_LAUNCH(element_grid(n), kThreads, 0, 0, swiglu_backward_kernel)(args);
  TALARIA_CUDA_CHECK_LAUNCH();
  TALARIA_CUDA_CHECK(cudaDeviceSynchronize());
}

void embedding(int device, const EmbeddingArgs& args) {
  if (args.rows == 0) return;
  TALARIA_CUDA_CHECK(cudaSetDevice(device));
  TALARIA_LAUNCH(capped_grid(args.rows), row_threads(args.dim), 0, 0, embedding_kernel)(args);
  TALARIA_CUDA_CHECK_LAUNCH();
  TALARIA_CUDA_CHECK(cudaDeviceSynchronize());
}

void embedding_backward(int device, const EmbeddingBackwardArgs& args) {
  if (args.rows == 0) return;
  TALARIA_CUDA_CHECK(cudaSetDevice(device));
  // Group the tokens by id on the host: a counting sort keeps each id's tokens in token order.
  std::vector<int32_t> ids(static_cast<size_t>(args.rows));
  TALARIA_CUDA_CHECK(cudaMemcpy(ids.data(), args.ids, ids.size() * sizeof(int32_t), cudaMemcpyDeviceToHost));
  std::vector<int64_t> first(static_cast<size_t>(args.vocab) + 1, 0);
  for (int32_t id : ids) first[static_cast<size_t>(id) + 1]++;
  std::vector<int32_t> distinct;
  std::vector<int64_t> offsets{0};
  for (int64_t v = 0; v < args.vocab; v++) {
    if (first[v + 1] > 0) {
      distinct.push_back(static_cast<int32_t>(v));
      offsets.push_back(offsets.back() + first[v + 1]);
    }
    first[v + 1] += first[v];  // now the start of id v + 1's tokens
  }
  std::vector<int64_t> order(ids.size());
  for (size_t t = 0; t < ids.size(); t++) order[static_cast<size_t>(first[ids[t]]++)] = static_cast<int64_t>(t);

  const int64_t count = static_cast<int64_t>(distinct.size());
  const size_t distinct_bytes = align_up(distinct.size() * sizeof(int32_t));
  const size_t offsets_bytes = align_up(offsets.size() * sizeof(int64_t));
  DeviceScratch scratch(distinct_bytes + offsets_bytes + order.size() * sizeof(int64_t));
  int32_t* distinct_dev = reinterpret_cast<int32_t*>(scratch.bytes());
  int64_t* offsets_dev = reinterpret_cast<int64_t*>(scratch.bytes() + distinct_bytes);
  int64_t* order_dev = reinterpret_cast<int64_t*>(scratch.bytes() + distinct_bytes + offsets_bytes);
  TALARIA_CUDA_CHECK(cudaMemcpy(distinct_dev, distinct.data(), distinct.size() * sizeof(int32_t), cudaMemcpyHostToDevice));
  TALARIA_CUDA_CHECK(cudaMemcpy(offsets_dev, offsets.data(), offsets.size() * sizeof(int64_t), cudaMemcpyHostToDevice));
  TALARIA_CUDA_CHECK(cudaMemcpy(order_dev, order.data(), order.size() * sizeof(int64_t), cudaMemcpyHostToDevice));
  TALARIA_LAUNCH(capped_grid(count), row_threads(args.dim), 0, 0, embedding_backward_kernel)(args, distinct_dev, offsets_dev,
                                                                                             order_dev, count);
  TALARIA_CUDA_CHECK_LAUNCH();
  TALARIA_CUDA_CHECK(cudaDeviceSynchronize());
  scratch.release();
}

void axpby(int device, const AxpbyArgs& args) {
  if (args.n == 0) return;
  TALARIA_CUDA_CHECK(cudaSetDevice(device));
  TALARIA_LAUNCH(element_grid(args.n), kThreads, 0, 0, axpby_kernel)(args);
  TALARIA_CUDA_CHECK_LAUNCH();
  TALARIA_CUDA_CHECK(cudaDeviceSynchronize());
}

}  // namespace cuda
}  // namespace talaria
