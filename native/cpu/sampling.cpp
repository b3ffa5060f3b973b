// CPU sampler: one row at a time, rows in parallel. Semantics and the napkin math:
// native/core/kernels/sampling.h. Every per-token value comes from sampling_math.h, and every
// combination of tokens is an integer sum, a max or a radix select, so the tokens are the CUDA kernel's.
//
// A row's values z, their softmax terms, order keys and integer weights live in per-thread scratch
// (16 B/token), so the logits are read from memory once for z and once more only for the plain log-prob
// when penalties make it differ from z. The radix selects scan the row once for their first digit, then
// only the candidates that share it (usually a handful), so top-k and top-p cost about one pass each. The history's counts use a per-thread int32[V] that is zeroed again through the history
// itself (only the entries it touched), so penalties cost O(H) per row, not O(V).
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "../core/kernels/sampling.h"
#include "../core/simd.h"
#include "../core/thread_pool.h"

namespace talaria {
namespace cpu {
namespace {

struct Candidate {
  uint32_t key, weight;
};

struct RowScratch {
  std::vector<float> z, term;
  std::vector<uint32_t> key, weight;
  std::vector<int32_t> counts;  // all zero between rows
  std::vector<Candidate> candidates;
  std::vector<uint64_t> histogram;
  explicit RowScratch(int64_t vocab)
      : z(vocab), term(vocab), key(vocab), weight(vocab), counts(vocab, 0), histogram(size_t{1} << 12) {}
};

// z_i = canonical(logit_i / T) for the whole row; the division and the canonicalisation vectorise.
TALARIA_SIMD_INLINE int divide_row_impl(const float* __restrict logits, int64_t vocab, float temperature,
                                        float* __restrict z) {
  for (int64_t i = 0; i < vocab; i++) z[i] = canonical_logit(div_rn(logits[i], temperature));
  return 0;
}
TALARIA_SIMD_FUNCTION(int, divide_row, divide_row_impl,
                      (const float* logits, int64_t vocab, float temperature, float* z), (logits, vocab, temperature, z))

// In 16 lanes (the max is exact in any order), so it vectorises: one running max would be a serial chain.
TALARIA_SIMD_INLINE float row_max_impl(const float* __restrict z, int64_t vocab) {
  float lane[16];
  for (int j = 0; j < 16; j++) lane[j] = -INFINITY;
  int64_t i = 0;
  for (; i + 16 <= vocab; i += 16)
    for (int j = 0; j < 16; j++) lane[j] = z[i + j] > lane[j] ? z[i + j] : lane[j];
  for (int j = 0; i < vocab; i++, j++) lane[j] = z[i] > lane[j] ? z[i] : lane[j];
  float m = -INFINITY;
  for (int j = 0; j < 16; j++) m = lane[j] > m ? lane[j] : m;
  return m;
}
TALARIA_SIMD_FUNCTION(float, row_max, row_max_impl, (const float* z, int64_t vocab), (z, vocab))

// Softmax terms, weights and keys: the same fmaf sequence in every variant (AVX2/AVX-512 fma, or libm's
// correctly rounded fmaf in the scalar build), so the bits do not depend on the variant.
TALARIA_SIMD_INLINE int weigh_row_impl(const float* __restrict z, int64_t vocab, float m, float* __restrict term,
                                       uint32_t* __restrict weight, uint32_t* __restrict key) {
  for (int64_t i = 0; i < vocab; i++) {
    term[i] = plain_term(z[i], m);
    weight[i] = weight_of_term(term[i]);
    key[i] = sort_key(z[i]);
  }
  return 0;
}
TALARIA_SIMD_FUNCTION(int, weigh_row, weigh_row_impl,
                      (const float* z, int64_t vocab, float m, float* term, uint32_t* weight, uint32_t* key),
                      (z, vocab, m, term, weight, key))

// The plain terms alone (for the plain log-prob when it differs from z).
TALARIA_SIMD_INLINE int term_row_impl(const float* __restrict x, int64_t vocab, float m, float* __restrict term) {
  for (int64_t i = 0; i < vocab; i++) term[i] = plain_term(x[i], m);
  return 0;
}
TALARIA_SIMD_FUNCTION(int, term_row, term_row_impl, (const float* x, int64_t vocab, float m, float* term), (x, vocab, m, term))

// sum_i term_i in f64 over 8 fixed lanes (element i goes to lane i % 8), then the lanes in order: the
// same order in every variant, and a loop the compiler can vectorise.
TALARIA_SIMD_INLINE double term_sum_impl(const float* __restrict term, int64_t vocab) {
  double lane[8] = {};
  int64_t i = 0;
  for (; i + 8 <= vocab; i += 8)
    for (int j = 0; j < 8; j++) lane[j] += static_cast<double>(term[i + j]);
  for (int j = 0; i < vocab; i++, j++) lane[j] += static_cast<double>(term[i]);
  double sum = 0.0;
  for (int j = 0; j < 8; j++) sum += lane[j];
  return sum;
}
TALARIA_SIMD_FUNCTION(double, term_sum, term_sum_impl, (const float* term, int64_t vocab), (term, vocab))

// The weight of the tokens whose key is >= floor (the top-k survivors' mass, for top-p).
TALARIA_SIMD_INLINE uint64_t mass_at_or_above_impl(const uint32_t* __restrict key, const uint32_t* __restrict weight,
                                                   int64_t vocab, uint32_t floor) {
  uint64_t total = 0;
  for (int64_t i = 0; i < vocab; i++) total += key[i] >= floor ? weight[i] : 0u;
  return total;
}
TALARIA_SIMD_FUNCTION(uint64_t, mass_at_or_above, mass_at_or_above_impl,
                      (const uint32_t* key, const uint32_t* weight, int64_t vocab, uint32_t floor), (key, weight, vocab, floor))

// Zeroes the weight of every token outside the support (key < floor or weight < min_weight); returns W_S.
TALARIA_SIMD_INLINE uint64_t keep_survivors_impl(const uint32_t* __restrict key, uint32_t* __restrict weight,
                                                 int64_t vocab, uint32_t floor, uint32_t min_weight) {
  uint64_t total = 0;
  for (int64_t i = 0; i < vocab; i++) {
    const uint32_t w = (key[i] >= floor && weight[i] >= min_weight) ? weight[i] : 0u;
    weight[i] = w;
    total += w;
  }
  return total;
}
TALARIA_SIMD_FUNCTION(uint64_t, keep_survivors, keep_survivors_impl,
                      (const uint32_t* key, uint32_t* weight, int64_t vocab, uint32_t floor, uint32_t min_weight),
                      (key, weight, vocab, floor, min_weight))

// The smallest index whose running weight exceeds target (< the total): whole blocks of 256 by their sums
// (a vectorised loop), then one block token by token.
TALARIA_SIMD_INLINE int64_t first_exceeding_impl(const uint32_t* __restrict weight, int64_t vocab, uint64_t target) {
  constexpr int64_t kBlock = 256;
  uint64_t running = 0;
  int64_t i = 0;
  for (; i + kBlock <= vocab; i += kBlock) {
    uint64_t block = 0;
    for (int64_t j = i; j < i + kBlock; j++) block += weight[j];
    if (running + block > target) break;
    running += block;
  }
  for (; i < vocab; i++) {
    running += weight[i];
    if (running > target) return i;
  }
  return -1;  // unreachable: target < the total
}
TALARIA_SIMD_FUNCTION(int64_t, first_exceeding, first_exceeding_impl, (const uint32_t* weight, int64_t vocab, uint64_t target),
                      (weight, vocab, target))

// The largest key v with (sum over keys k >= max(v, floor) of weight, or of 1 without weights) >= target.
// Digits of 12, 10 and 10 bits: the first scans the row with a 4096-bucket histogram (32 KB, in L1), which
// splits each binade of values 8 ways, so the candidates that share it are few even when the row's values
// span only a few binades; the later digits scan only those candidates.
constexpr int kDigitBits[3] = {12, 10, 10};
constexpr int kFirstBuckets = 1 << kDigitBits[0];

uint32_t radix_select(const uint32_t* key, const uint32_t* weight, int64_t vocab, uint32_t floor, uint64_t target,
                      RowScratch& s) {
  uint64_t* histogram = s.histogram.data();
  int shift = 32 - kDigitBits[0];
  std::fill(histogram, histogram + kFirstBuckets, 0);
  for (int64_t i = 0; i < vocab; i++)
    if (key[i] >= floor) histogram[key[i] >> shift] += weight ? weight[i] : 1;
  uint64_t above = 0;
  uint32_t digit = static_cast<uint32_t>(choose_bucket(histogram, kFirstBuckets, above, target));
  uint32_t prefix = digit << shift;
  std::vector<Candidate>& candidates = s.candidates;
  candidates.clear();
  for (int64_t i = 0; i < vocab; i++)
    if (key[i] >= floor && (key[i] >> shift) == digit) candidates.push_back(Candidate{key[i], weight ? weight[i] : 1});
  for (int d = 1; d < 3; d++) {
    shift -= kDigitBits[d];
    const int buckets = 1 << kDigitBits[d];
    std::fill(histogram, histogram + buckets, 0);
    for (const Candidate& c : candidates) histogram[(c.key >> shift) & (buckets - 1)] += c.weight;
    digit = static_cast<uint32_t>(choose_bucket(histogram, buckets, above, target));
    prefix |= digit << shift;
    size_t kept = 0;
    for (const Candidate& c : candidates)
      if (((c.key >> shift) & (buckets - 1)) == digit) candidates[kept++] = c;
    candidates.resize(kept);
  }
  return prefix;
}

struct RowOut {
  int32_t token;
  double logp;
};

// Steps 4-7 of sampling.h on a row's weights and keys (the weights outside the support become 0).
RowOut draw_token(const SampleArgs& a, int64_t row, RowScratch& s) {
  const int64_t vocab = a.vocab;
  const uint32_t* key = s.key.data();
  uint32_t* weight = s.weight.data();
  uint32_t floor = 0;
  if (a.top_k > 0 && a.top_k < vocab) floor = radix_select(key, nullptr, vocab, 0, static_cast<uint64_t>(a.top_k), s);
  if (a.top_p < 1.0f)
    floor = radix_select(key, weight, vocab, floor, top_p_target(a.top_p, mass_at_or_above(key, weight, vocab, floor)), s);
  const uint32_t min_weight = a.min_p > 0.0f ? min_p_weight(a.min_p) : 0;
  const uint64_t survivors = keep_survivors(key, weight, vocab, floor, min_weight);
  const uint64_t target = mul_hi64(row_random(a.seed, a.offset, static_cast<uint64_t>(row)), survivors);
  const int64_t token = first_exceeding(weight, vocab, target);
  return RowOut{static_cast<int32_t>(token), std::log(static_cast<double>(weight[token]) / static_cast<double>(survivors))};
}

void sample_row(const SampleArgs& a, int64_t row, RowScratch& s) {
  const int64_t vocab = a.vocab;
  const float* logits = a.logits + row * vocab;
  const float temperature = a.temperatures ? a.temperatures[row] : a.temperature;
  const bool greedy = a.mode == SampleMode::Greedy;
  // Greedy compares penalised logits before temperature; dividing by 1 is exact.
  const float divisor = greedy ? 1.0f : temperature;
  float* z = s.z.data();
  divide_row(logits, vocab, divisor, z);

  bool penalised = false;
  if (a.history_offsets && penalties_active(a.penalties)) {
    const int32_t* begin = a.history + a.history_offsets[row];
    const int32_t* end = a.history + a.history_offsets[row + 1];
    int32_t* counts = s.counts.data();
    for (const int32_t* t = begin; t < end; t++) counts[*t]++;
    for (const int32_t* t = begin; t < end; t++) {
      if (counts[*t] == 0) continue;  // a repeat, already applied
      z[*t] = canonical_logit(div_rn(penalized_logit(logits[*t], counts[*t], a.penalties), divisor));
      counts[*t] = 0;
    }
    penalised = end > begin;
  }

  const float m = row_max(z, vocab);
  if (m == -INFINITY) {  // every value -inf or NaN: no token
    a.tokens[row] = -1, a.logp[row] = NAN, a.logp_plain[row] = NAN;
    return;
  }
  RowOut out;
  if (greedy) {
    out = RowOut{static_cast<int32_t>(std::find(z, z + vocab, m) - z), 0.0};
  } else {
    weigh_row(z, vocab, m, s.term.data(), s.weight.data(), s.key.data());
    out = draw_token(a, row, s);
  }

  // The plain distribution: z itself unless penalties or greedy's missing temperature changed it.
  float plain_max = m;
  if (penalised || greedy) {
    divide_row(logits, vocab, temperature, z);  // z is no longer needed
    plain_max = row_max(z, vocab);
    term_row(z, vocab, plain_max, s.term.data());
  }
  a.tokens[row] = out.token;
  a.logp[row] = static_cast<float>(out.logp);
  a.logp_plain[row] = static_cast<float>(plain_logp(z[out.token], plain_max, term_sum(s.term.data(), vocab)));
}

}  // namespace

void sample(const SampleArgs& a) {
  parallel_for(0, a.rows, 1, [&](int64_t lo, int64_t hi) {
    RowScratch scratch(a.vocab);
    for (int64_t row = lo; row < hi; row++) sample_row(a, row, scratch);
  });
}

}  // namespace cpu
}  // namespace talaria
