// Elementwise math that the compiler can vectorise inside TALARIA_SIMD_FUNCTION loops. libm's expf is an
// opaque call, so a loop that calls it stays scalar; this one is branch-free arithmetic plus a bit cast.
#pragma once
#include <cstdint>
#include <cstring>

#include "../core/simd.h"

namespace talaria {
namespace cpu {

// The core of e^x (Cephes' expf), for one float or for SIMD lanes (lanes.h): x = n ln2 + r with
// |r| <= ln2/2, and e^r by a degree-6 polynomial. Sets n and er = e^r; the caller scales by 2^n. (By
// reference: Clang rejects lane values passed by value to a function compiled for another target.)
template <typename F>
TALARIA_SIMD_INLINE void exp_f32_reduced(const F& x, F& n, F& er) {
  constexpr float kLog2e = 1.44269504088896341f, kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding it rounds to the nearest integer
  n = (x * kLog2e + kRound) - kRound;
  const F r = (x - n * kLn2Hi) - n * kLn2Lo;
  F p = 1.9875691500e-4f + F{};
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  er = p * r * r + r + 1.0f;
}

// 2^n for an integral n in [-126, 127], built in the exponent bits.
inline float pow2_normal(int32_t n) {
  const uint32_t bits = static_cast<uint32_t>(n + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return scale;
}

// e^x in f32, within 2 ulp: 2^n is built as 2^(n/2) * 2^(n - n/2) so that both halves stay normal over
// the whole range (n runs from -150 to 128). Gives +inf above ln(FLT_MAX), 0 below -104 (denormals in
// between), and passes NaN through.
inline float exp_f32(float x) {
  constexpr float kMax = 88.7228394f, kMin = -104.0f;
  const float clamped = x < kMin ? kMin : (x > kMax ? kMax : x);
  float n, er;
  exp_f32_reduced(clamped, n, er);
  const int32_t n_int = static_cast<int32_t>(n), half = n_int / 2;
  const float y = er * pow2_normal(half) * pow2_normal(n_int - half);
  // Selects, not branches, so loops that call this still vectorise.
  const float in_range = x > kMax ? __builtin_inff() : (x < kMin ? 0.0f : y);
  return x != x ? x : in_range;
}

// exp_f32 without denormals, for softmax weights (arguments <= 0): one exponent scale instead of two and
// no special-case selects, 2x faster in the logit kernels' loops (measured: every select it drops shows).
// Within 2 ulp where e^x is a normal f32; 0 below -87 (where e^x < 1.7e-38 and exp_f32 gives a denormal);
// saturates at e^88 ~ 1.7e38 above 88 instead of reaching +inf; NaN gives NaN.
inline float exp_f32_no_denormals(float x) {
  constexpr float kMax = 88.0f, kMin = -87.0f;
  const float clamped = x < kMin ? kMin : (x > kMax ? kMax : x);
  float n, er;
  exp_f32_reduced(clamped, n, er);
  const float y = er * pow2_normal(static_cast<int32_t>(n));
  return x < kMin ? 0.0f : y;
}

}  // namespace cpu
}  // namespace talaria
