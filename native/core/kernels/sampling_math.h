// The per-token arithmetic of the sampler, shared by the CPU (native/cpu/sampling.cpp) and CUDA
// (native/cuda/sampling.cu) kernels and mirrored bit for bit by test/reference/sampling.ts. Every value
// that decides a token (penalised logits, weights, keys, thresholds, the random draw) is computed here
// with single IEEE operations and explicit fmaf only, so no compiler can contract a*b+c differently on
// one backend: the same seed and logits give the same tokens on every backend and every GPU.
#pragma once
#include <cmath>
#include <cstdint>

#include "rl_math.h"  // TALARIA_HOST_DEVICE

// Host fast-math would let the compiler reassociate and the bits (so the tokens) could differ from the
// device's. Refuse to build that way. On the device the _rn intrinsics below hold even under
// --use_fast_math (which nvcc does not announce with a macro).
#if defined(__FAST_MATH__)
#error "sampling_math.h needs IEEE arithmetic: build without -ffast-math"
#endif

namespace talaria {

// Philox4x32-10 (Salmon et al., SC11; the constants of Random123's philox.h).
struct Philox4x32 {
  uint32_t v[4];
};

TALARIA_HOST_DEVICE Philox4x32 philox4x32_10(Philox4x32 ctr, uint32_t key0, uint32_t key1) {
  constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u, kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  for (int round = 0; round < 10; round++) {
    if (round > 0) key0 += kW0, key1 += kW1;
    const uint64_t p0 = static_cast<uint64_t>(kM0) * ctr.v[0], p1 = static_cast<uint64_t>(kM1) * ctr.v[2];
    const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    ctr = Philox4x32{{hi1 ^ ctr.v[1] ^ key0, lo1, hi0 ^ ctr.v[3] ^ key1, lo0}};
  }
  return ctr;
}

// The 64-bit random number of one row: key = seed, counter = (offset lo, offset hi, row lo, row hi).
TALARIA_HOST_DEVICE uint64_t row_random(uint64_t seed, uint64_t offset, uint64_t row) {
  const Philox4x32 ctr{{static_cast<uint32_t>(offset), static_cast<uint32_t>(offset >> 32), static_cast<uint32_t>(row),
                        static_cast<uint32_t>(row >> 32)}};
  const Philox4x32 out = philox4x32_10(ctr, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
  return static_cast<uint64_t>(out.v[0]) | (static_cast<uint64_t>(out.v[1]) << 32);
}

// floor(a * b / 2^64): the draw's position in [0, b) for a uniform 64-bit a.
TALARIA_HOST_DEVICE uint64_t mul_hi64(uint64_t a, uint64_t b) {
#if defined(__CUDA_ARCH__)
  return __umul64hi(a, b);
#else
  return static_cast<uint64_t>((static_cast<unsigned __int128>(a) * b) >> 64);
#endif
}

TALARIA_HOST_DEVICE uint32_t f32_bits(float x) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(x);
#else
  uint32_t bits;
  __builtin_memcpy(&bits, &x, sizeof(bits));
  return bits;
#endif
}
TALARIA_HOST_DEVICE float f32_from_bits(uint32_t bits) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(bits);
#else
  float x;
  __builtin_memcpy(&x, &bits, sizeof(x));
  return x;
#endif
}

// Single IEEE operations, rounded to nearest: on the device through the _rn intrinsics, which nvcc never
// contracts into an fma nor approximates (a plain a / b becomes an approximation under --use_fast_math).
// On the host plain operators: GCC only contracts a multiply feeding an add, which this file never writes.
TALARIA_HOST_DEVICE float sub_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fsub_rn(a, b);
#else
  return a - b;
#endif
}
TALARIA_HOST_DEVICE float mul_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
TALARIA_HOST_DEVICE float div_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}
TALARIA_HOST_DEVICE float fma_rn(float a, float b, float c) {
#if defined(__CUDA_ARCH__)
  return __fmaf_rn(a, b, c);
#else
  return fmaf(a, b, c);
#endif
}

// NaN becomes -inf (never sampled) and -0 becomes +0, so comparing keys is comparing values.
TALARIA_HOST_DEVICE float canonical_logit(float z) { return z != z ? -INFINITY : (z == 0.0f ? 0.0f : z); }

// An order-preserving key: a < b exactly when key(a) < key(b), for canonical (non-NaN, no -0) floats.
TALARIA_HOST_DEVICE uint32_t sort_key(float z) {
  const uint32_t bits = f32_bits(z);
  return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}

struct Penalties {
  float repetition;  // > 0; 1 is off
  float presence;    // 0 is off
  float frequency;   // 0 is off
};
TALARIA_HOST_DEVICE bool penalties_active(const Penalties& p) {
  return p.repetition != 1.0f || p.presence != 0.0f || p.frequency != 0.0f;
}

// HF/vLLM semantics for a token seen `count` times in the row's history: divide a positive logit by the
// repetition penalty (multiply a negative one), then subtract presence + frequency * count. fmaf is
// explicit so the rounding is the same everywhere.
TALARIA_HOST_DEVICE float penalized_logit(float logit, int32_t count, const Penalties& p) {
  if (count <= 0) return logit;
  const float subtract = fma_rn(p.frequency, static_cast<float>(count), p.presence);
  return logit > 0.0f ? sub_rn(div_rn(logit, p.repetition), subtract) : fma_rn(logit, p.repetition, -subtract);
}

// The weight scale: the max token weighs exactly 2^31.
constexpr float kWeightOne = 2147483648.0f;
constexpr uint32_t kWeightMax = 0x80000000u;

// e^x for x <= 0 in f32, with explicit fmaf only: x = n ln2 + r (Cody-Waite, |r| <= ln2/2), e^r by a
// degree-7 Horner polynomial (Cephes' expf coefficients), times 2^n built in the exponent bits. Below
// -87 (where 2^n would leave the normal range) it returns 0: those terms weigh < 2^-125 of the max.
// Within 2 ulp of e^x; what matters is that it is the same bits on every backend.
TALARIA_HOST_DEVICE float exp_nonpositive(float x) {
  if (!(x >= -87.0f)) return 0.0f;  // NaN included
  constexpr float kLog2e = 0xb8aa3bp-23f, kLn2Hi = 0x163p-9f, kLn2Lo = -0xde8083p-36f;
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: the fmaf's rounding makes n an integer
  const float n = sub_rn(fma_rn(x, kLog2e, kRound), kRound);
  const float r = fma_rn(-n, kLn2Lo, fma_rn(-n, kLn2Hi, x));
  float p = 0xd06967p-36f;
  p = fma_rn(p, r, 0xb743cep-33f);
  p = fma_rn(p, r, 0x888908p-30f);
  p = fma_rn(p, r, 0xaaa9c1p-28f);
  p = fma_rn(p, r, 0xaaaaaap-26f);
  p = fma_rn(p, r, 0.5f);
  p = fma_rn(p, r, 1.0f);
  p = fma_rn(p, r, 1.0f);
  const float scale = f32_from_bits(static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23);  // n in [-126, 0]
  return mul_rn(p, scale);
}

// The f32 softmax numerator e^(x - m) of a (canonical) value x in a row whose largest value is m (finite
// or +inf): exactly 1 for the max itself (so an +inf max takes all the mass), 0 for -inf.
TALARIA_HOST_DEVICE float plain_term(float x, float m) { return x == m ? 1.0f : exp_nonpositive(sub_rn(x, m)); }

// The integer weight floor(term * 2^31) of a token; the max weighs 2^31.
TALARIA_HOST_DEVICE uint32_t weight_of_term(float term) {
  const uint32_t e = static_cast<uint32_t>(mul_rn(term, kWeightOne));
  return e < kWeightMax ? e : kWeightMax;
}
TALARIA_HOST_DEVICE uint32_t token_weight(float z, float m) { return weight_of_term(plain_term(z, m)); }

// log softmax(x)[tok] from the max m and sum_i plain_term(x_i, m) (exact 0 offset for the max itself, so a
// +inf max gives -log(count of +inf)).
TALARIA_HOST_DEVICE double plain_logp(float x_tok, float m, double sum) {
  const double shifted = x_tok == m ? 0.0 : static_cast<double>(x_tok) - static_cast<double>(m);
  return shifted - log(sum);
}

// Radix select, one digit at a time from the top (CUDA: 4 digits of 8 bits; the CPU: 12 + 10 + 10, see
// sampling.cpp). Given the histogram of `buckets` values of one digit (count or weight per bucket, among the keys that match the digits chosen so far) and
// `above`, the mass of keys greater than every key of that histogram, picks the highest bucket at which
// the mass of keys >= it reaches `target`, and adds the buckets above it to `above`. The caller
// guarantees the total mass reaches `target`.
constexpr int kRadixBits = 8, kRadixBuckets = 1 << kRadixBits, kRadixPasses = 32 / kRadixBits;

TALARIA_HOST_DEVICE int choose_bucket(const uint64_t* histogram, int buckets, uint64_t& above, uint64_t target) {
  for (int b = buckets - 1; b > 0; b--) {
    if (above + histogram[b] >= target) return b;
    above += histogram[b];
  }
  return 0;
}

// The integer form of "mass >= p * W": masses are integers, so M >= p*W exactly when M >= ceil(p*W)
// (p*W rounded once in f64; W < 2^53 is exact).
TALARIA_HOST_DEVICE uint64_t top_p_target(float top_p, uint64_t total) {
  return static_cast<uint64_t>(ceil(static_cast<double>(top_p) * static_cast<double>(total)));
}

// min-p keeps e >= minP * 2^31 (the max weighs 2^31); as an integer bound, ceil(minP * 2^31), exact in f64.
TALARIA_HOST_DEVICE uint32_t min_p_weight(float min_p) {
  return static_cast<uint32_t>(ceil(static_cast<double>(min_p) * 2147483648.0));
}

}  // namespace talaria
