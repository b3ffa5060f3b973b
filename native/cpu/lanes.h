// Explicit SIMD lanes as GCC/Clang vector types, for kernels written once and compiled for each SIMD
// target with that target's register width: kLanes f32 lanes (16 under AVX-512, 8 under AVX2, 4 under
// the SSE2 or NEON baseline). Explicit lanes keep the code predictable where the auto-vectoriser gives up
// on a long loop body.
//
// No include guard: include it once per target, inside a namespace of that target that defines
// `constexpr int kLanes`, between TALARIA_BEGIN_TARGET and TALARIA_END_TARGET (simd.h; see there why).
// Comparisons give a LaneMask (-1 or 0 per lane), and `mask ? a : b` selects per lane. Everything that
// takes or returns lanes is always inline (TALARIA_SIMD_INLINE, or TALARIA_LANES_LAMBDA on a lambda):
// lane values passed in a real call have a different ABI on each target.

typedef float Lanes __attribute__((vector_size(4 * kLanes)));
typedef int32_t LaneMask __attribute__((vector_size(4 * kLanes)));
typedef double LanesF64 __attribute__((vector_size(8 * kLanes)));

#ifndef TALARIA_LANES_LAMBDA
#define TALARIA_LANES_LAMBDA __attribute__((always_inline))
#endif

TALARIA_SIMD_INLINE Lanes load_lanes(const float* p) {
  Lanes v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
TALARIA_SIMD_INLINE void store_lanes(float* p, Lanes v) { std::memcpy(p, &v, sizeof(v)); }
TALARIA_SIMD_INLINE Lanes splat(float x) { return x - Lanes{}; }  // x - 0 is x, -0 included, so it folds

// Set where the mask byte is nonzero. Compared as bytes, then sign-extended and tested: GCC 12 keeps this
// form in vector code, but turns a plain widening of the unsigned bytes into scalar code.
TALARIA_SIMD_INLINE LaneMask load_mask_lanes(const uint8_t* p) {
  typedef uint8_t Bytes __attribute__((vector_size(kLanes)));
  typedef int8_t SignedBytes __attribute__((vector_size(kLanes)));
  Bytes b;
  std::memcpy(&b, p, sizeof(b));
  return __builtin_convertvector((SignedBytes)(b != 0), LaneMask) != 0;
}
// Whether any of the kLanes mask bytes at p is nonzero.
TALARIA_SIMD_INLINE bool any_mask_byte(const uint8_t* p) {
  uint64_t words[(kLanes + 7) / 8] = {};
  std::memcpy(words, p, kLanes);
  uint64_t any = 0;
  for (uint64_t word : words) any |= word;
  return any != 0;
}
TALARIA_SIMD_INLINE LaneMask all_lanes() { return LaneMask{} - 1; }
TALARIA_SIMD_INLINE LaneMask first_lanes(int64_t count) {  // lanes [0, count)
  LaneMask m;
  for (int j = 0; j < kLanes; j++) m[j] = j < count ? -1 : 0;
  return m;
}

TALARIA_SIMD_INLINE LanesF64 widen(Lanes v) { return __builtin_convertvector(v, LanesF64); }

// Across lanes, in lane order.
TALARIA_SIMD_INLINE double sum_lanes(LanesF64 v) {
  double sum = 0.0;
  for (int j = 0; j < kLanes; j++) sum += v[j];
  return sum;
}
TALARIA_SIMD_INLINE int64_t sum_lanes(LaneMask v) {
  int64_t sum = 0;
  for (int j = 0; j < kLanes; j++) sum += v[j];
  return sum;
}
TALARIA_SIMD_INLINE float max_lanes(Lanes v) {
  float best = v[0];
  for (int j = 1; j < kLanes; j++) best = v[j] > best ? v[j] : best;
  return best;
}

// exp_f32 (vec_math.h) for |x| <= 87 or NaN, as the +-20 log-ratio clamp guarantees: there 2^n is one
// normal float, so exp_f32's range handling drops out and the values are the same.
TALARIA_SIMD_INLINE Lanes exp_lanes(Lanes x) {
  Lanes n, er;
  exp_f32_reduced(x, n, er);
  const LaneMask bits = (__builtin_convertvector(n, LaneMask) + 127) << 23;
  Lanes scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return er * scale;
}
