// The algebra behind the GAE kernels in rl.cu: the per-token maps, their composition, and the warp
// scan over them. rl.cu holds the thread mappings, staging and launches.
//
// ---- GAE: the recurrence as a scan -------------------------------------------------------------
// Walking backwards through the packed tokens, carry the state s = (V, A): the value and the
// advantage of the next action token to the right, as seen from the current token. Each token is a
// map s -> s' on that state:
//   action token t:          V' = v_t,  A' = (r_t + g*V - v_t) + k*A      (g = gamma, k = gamma*lambda)
//                            and the token outputs adv_t = A', ret_t = A' + v_t
//   non-action token:        identity (outputs 0, 0). A token is an action when action_mask[t] != 0.
//   last token of sequence b: first the reset C_b: V' = bootstrap[b] (0 if null), A' = 0, then the
//                            token's own map. C_b ignores its input, so sequences never leak state.
// All of these maps have the form
//   M(V, A) = (v0, a0 + av*V + aa*A)        or the identity I,
// and that family is closed under composition. With L applied after R (R is to the right):
//   L o I = L,   I o R = R,
//   L o R = (L.v0,  L.a0 + L.av*R.v0 + L.aa*R.a0,  L.aa*R.av,  L.aa*R.aa).
// (Expand L(R(V, A)): R gives V_R = R.v0 and A_R = R.a0 + R.av*V + R.aa*A. Then L gives
// L.a0 + L.av*V_R + L.aa*A_R.) Function composition is associative, so any bracketing of the product
// gives the same map in exact arithmetic. The state entering token t is
// (M_{t+1} o ... o M_{N-1})(anything): the last token of the whole batch is a sequence end, and its
// C_b makes the start value irrelevant. So the whole batch is ONE unsegmented scan. The "next value"
// scan (the nearest action token to the right, else the bootstrap) is the v0 component. The
// advantage recurrence is the a0/av/aa component. The identity flag carries the "skip non-action
// tokens" rule. A segment with no action token and no sequence end is exactly I, so masked tokens
// neither reset nor advance anything. These are verl's semantics.
#pragma once
#include <cuda_runtime.h>

#include "warp.cuh"

namespace talaria {
namespace cuda {

struct GaeState {  // seen from a token: value and advantage of the next action token to its right
  float v;
  float a;
};

struct GaeMap {  // s -> (v0, a0 + av*s.v + aa*s.a), or the identity when `identity` is set
  float v0;
  float a0;
  float av;
  float aa;
  int identity;
};

__device__ __forceinline__ GaeMap gae_identity() { return GaeMap{0.0f, 0.0f, 0.0f, 1.0f, 1}; }

// The one update every path uses, so the outputs match the serial loop's arithmetic.
__device__ __forceinline__ float gae_advantage(float r, float v, float next_v, float next_a, float gamma,
                                               float k) {
  const float delta = r + gamma * next_v - v;
  return delta + k * next_a;
}

__device__ __forceinline__ GaeState gae_apply(const GaeMap& m, GaeState s) {
  if (m.identity) return s;
  return GaeState{m.v0, m.a0 + m.av * s.v + m.aa * s.a};
}

// l o r: apply r first (r covers the tokens to the right of l's).
__device__ __forceinline__ GaeMap gae_compose(const GaeMap& l, const GaeMap& r) {
  if (r.identity) return l;
  if (l.identity) return r;
  return GaeMap{l.v0, l.a0 + l.av * r.v0 + l.aa * r.a0, l.aa * r.av, l.aa * r.aa, 0};
}

__device__ __forceinline__ GaeMap gae_shfl_down(const GaeMap& m, int delta) {
  return GaeMap{__shfl_down_sync(kFullMask, m.v0, delta), __shfl_down_sync(kFullMask, m.a0, delta),
                __shfl_down_sync(kFullMask, m.av, delta), __shfl_down_sync(kFullMask, m.aa, delta),
                __shfl_down_sync(kFullMask, m.identity, delta)};
}

__device__ __forceinline__ GaeMap gae_shfl(const GaeMap& m, int src_lane) {
  return GaeMap{__shfl_sync(kFullMask, m.v0, src_lane), __shfl_sync(kFullMask, m.a0, src_lane),
                __shfl_sync(kFullMask, m.av, src_lane), __shfl_sync(kFullMask, m.aa, src_lane),
                __shfl_sync(kFullMask, m.identity, src_lane)};
}

// Inclusive suffix scan over the warp: lane l gets M_l o M_{l+1} o ... o M_31. After the step with
// distance d, lane l covers lanes [l, l+2d), cut off at lane 31.
__device__ __forceinline__ GaeMap gae_warp_suffix_scan(GaeMap m) {
  const int lane = lane_id();
#pragma unroll
  for (int d = 1; d < kWarpSize; d <<= 1) {
    const GaeMap right = gae_shfl_down(m, d);
    if (lane + d < kWarpSize) m = gae_compose(m, right);
  }
  return m;
}

}  // namespace cuda
}  // namespace talaria
