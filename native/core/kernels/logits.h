// Logit kernels: per-token log-prob, entropy and log-sum-exp under a sampling temperature (forward and
// backward), the fused SFT cross-entropy (forward + backward), and the full-vocabulary KL divergence
// between a policy and a reference (forward and backward). Device-agnostic entry points, plus the CPU
// (native/cpu/logits.cpp) and CUDA (native/cuda/logits.cu) implementations they dispatch to; the float64
// oracle is test/reference/logits.ts.
//
// Layout (DESIGN.md): logits f32 [N, V] row-major, targets i32 [N] in [0, V), per-row outputs f32 [N].
// z = x / T with T the scalar `temperature`, or temperatures[r] per row. Every pointer of one call lives
// on one device, except CrossEntropyArgs::loss and ::count (host). The addon validates everything;
// kernels assume valid input (targets in range, T in [kMinTemperature, kMaxTemperature]).
//
// ---- One pass: the online softmax state ------------------------------------------------------------
// A row (or any part of it) is summarised by (m, d, s): m = max x (raw logits), and with
// dz = (x - m) / T <= 0,  d = sum e^dz,  s = sum e^dz * dz. Then
//   LSE = m / T + log d,   log p_y = (x_y - m) / T - log d,   H = -sum p log p = log d - s / d.
// Every term of H is >= 0 (s <= 0), so H has no cancellation even at |z| ~ 1e7. Two states merge
// exactly (merge_softmax): with M the larger max and shift = (m - M) / T <= 0, a part's d becomes
// e^shift d and its s becomes e^shift (s + d shift). A -inf logit (masked vocabulary) has e^dz = 0 and
// contributes 0 to d and s (never 0 * -inf); a part with no finite logit has d = 0 and merges as empty.
// A whole row without a finite logit has no distribution: its outputs are NaN (or -inf for its LSE).
// Scaling by 1/T is a multiply by inv_temperature() (f32, correctly rounded on both backends); the range
// of T keeps 1/T a normal f32.
//
// ---- Kernels, per row; napkin math at V = 32,000 (128 KB of logits per row) -------------------------
// logprob_entropy        read the row once (4V B), write 12 B. V exps (one per logit). 512 rows = 65.5 MB,
//                        1.5 ms at 45 GB/s of DRAM bandwidth; the CPU also spends ~30 vector ops per 16
//                        logits (exp, max, folds): 2.7 ms for 512 rows on the quiet 2-core dev machine
//                        (bench/, ~40% of its triad), so there the exp is a second roof of about the same
//                        height. A GPU is bandwidth-bound (logits.cu).
// logprob_entropy_backward  read the row once, write d_logits once (8V B): p_i = e^(z_i - LSE) from the
//                        saved LSE, one exp per logit.
//                        d z_i = g_logp (1[i=y] - p_i) - g_entropy p_i (log p_i + H);  d x_i = d z_i / T.
//                        d_logits may be the logits buffer itself (in place, as llm.c).
// cross_entropy          T = 1; per unmasked row: loss_r = LSE - z_y, d x_i = (p_i - 1[i=y]) / count with
//                        count = unmasked rows; masked rows get exactly 0 and are never read. loss = mean
//                        of loss_r over unmasked rows (0 if none), summed in f64 in row order. Two touches
//                        of the row (state, then gradient) but one DRAM read while the row fits in L2
//                        (CPU) - 8V B per row, V exps twice. d_logits may be the logits buffer.
// kl_divergence          KL(p || q) = sum p (log p - log q) for p = softmax(x/T), q = softmax(u/T), from one
//                        pass over both rows: states of x and of u, and s = sum e^dz (dz - du); then
//                        KL = s / d_p - log d_p + log d_q. Read 8V B, write 12 B, 2V exps.
// kl_divergence_backward d x_i = g / T * p_i (log p_i - log q_i - KL), from the saved LSEs and KL. Read 8V B,
//                        write 4V B, V exps (log q_i needs none). d_logits may be the policy logits buffer.
//
// ---- Precision -------------------------------------------------------------------------------------
// Forward values carry f32 rounding of d and s (relative ~1e-6) and of dz (an ulp of |x - m| / T). The
// backward kernels recompute log p_i = x_i / T - LSE from the saved f32 LSE, so their error grows with
// |LSE| (one ulp of LSE in log p): at |z| ~ 1e4 that is ~1e-3 relative in p. Row results do not depend
// on the thread count: each row is computed by one thread (CPU) or one block (CUDA) in a fixed order.
#pragma once
#include <cmath>
#include <cstdint>

#include "dispatch.h"
#include "rl_math.h"

namespace talaria {

// The legal temperatures, [2^-100, 2^100] (about 7.9e-31 to 1.3e30): powers of two, so f32 holds the
// bounds exactly, and 1/T stays a normal f32.
constexpr double kMinTemperature = 0x1p-100;
constexpr double kMaxTemperature = 0x1p100;

// The [N, V] logits of one call and the temperature(s) that scale them.
struct LogitsView {
  const float* logits;        // [rows, vocab]
  int64_t rows;               // N (may be 0)
  int64_t vocab;              // V >= 1
  float temperature;          // used when temperatures is nullptr
  const float* temperatures;  // [rows] or nullptr
};

struct LogprobEntropyArgs {
  LogitsView x;
  const int32_t* targets;  // [N]
  float* logp;             // [N] out: log p_y
  float* entropy;          // [N] out: H
  float* lse;              // [N] out: log sum_i e^{z_i}
};

struct LogprobEntropyBackwardArgs {
  LogitsView x;
  const int32_t* targets;   // [N]
  const float* g_logp;      // [N] d loss / d logp
  const float* g_entropy;   // [N] d loss / d entropy
  const float* lse;         // [N] saved by the forward
  const float* entropy;     // [N] saved by the forward
  float* d_logits;          // [N, V] out; may equal x.logits
};

struct CrossEntropyArgs {
  LogitsView x;             // temperature 1, temperatures nullptr
  const int32_t* targets;   // [N]
  const uint8_t* mask;      // [N], 0 = ignore the row; or nullptr (every row counts)
  float* d_logits;          // [N, V] out; may equal x.logits
  double* loss;             // host out: the mean over counted rows, 0 when there are none
  int64_t* count;           // host out: counted rows
};

struct KlDivergenceArgs {
  LogitsView x;             // the policy's logits
  const float* ref_logits;  // [N, V] the reference's, same temperature
  float* kl;                // [N] out
  float* lse;               // [N] out: the policy's LSE
  float* ref_lse;           // [N] out: the reference's LSE
};

struct KlDivergenceBackwardArgs {
  LogitsView x;
  const float* ref_logits;  // [N, V]
  const float* g_kl;        // [N]
  const float* lse;         // [N] saved by the forward
  const float* ref_lse;     // [N] saved by the forward
  const float* kl;          // [N] saved by the forward
  float* d_logits;          // [N, V] out; may equal x.logits
};

// ---- Shared row math (host and device) ---------------------------------------------------------------

TALARIA_HOST_DEVICE float row_temperature(const LogitsView& x, int64_t row) {
  return x.temperatures != nullptr ? x.temperatures[row] : x.temperature;
}
TALARIA_HOST_DEVICE float inv_temperature(float t) { return 1.0f / t; }

// The exponential of the state merges: f32 on the device, f64 on the CPU (its per-row totals are f64).
TALARIA_HOST_DEVICE float merge_exp(float x) { return expf(x); }
TALARIA_HOST_DEVICE double merge_exp(double x) { return exp(x); }

// (m, d, s) of a part of a row, with sums of type Acc. d == 0 marks an empty part (no finite logit).
template <typename Acc>
struct SoftmaxState {
  float m;
  Acc d;
  Acc s;
};

// A part's sums moved to a larger max: shift = (m_part - m_new) / T <= 0. Guarded, so that a part whose
// weight underflows to 0 contributes 0 even when shift is -inf.
template <typename Acc>
TALARIA_HOST_DEVICE Acc shifted_s(Acc weight, Acc d, Acc s, Acc shift) {
  return weight > Acc(0) ? weight * (s + d * shift) : Acc(0);
}

template <typename Acc>
TALARIA_HOST_DEVICE SoftmaxState<Acc> merge_softmax(const SoftmaxState<Acc>& a, const SoftmaxState<Acc>& b,
                                                    float inv_t) {
  if (b.d == Acc(0)) return a;
  if (a.d == Acc(0)) return b;
  const float m = a.m > b.m ? a.m : b.m;
  const Acc shift_a = static_cast<Acc>((a.m - m) * inv_t), shift_b = static_cast<Acc>((b.m - m) * inv_t);
  const Acc wa = merge_exp(shift_a), wb = merge_exp(shift_b);
  SoftmaxState<Acc> out;
  out.m = m;
  out.d = wa * a.d + wb * b.d;
  out.s = shifted_s(wa, a.d, a.s, shift_a) + shifted_s(wb, b.d, b.s, shift_b);
  return out;
}

// What a whole row's state gives: log d, H = log d - s / d, LSE = m / T + log d, log p_y = (x_y - m) / T - log d.
template <typename Acc>
TALARIA_HOST_DEVICE float state_log_d(const SoftmaxState<Acc>& st) { return static_cast<float>(log(st.d)); }
template <typename Acc>
TALARIA_HOST_DEVICE float state_entropy(const SoftmaxState<Acc>& st) {
  return static_cast<float>(log(st.d) - st.s / st.d);
}
TALARIA_HOST_DEVICE float row_lse(float m, float inv_t, float log_d) { return m * inv_t + log_d; }
TALARIA_HOST_DEVICE float row_logp(float x_y, float m, float inv_t, float log_d) { return (x_y - m) * inv_t - log_d; }

// The cross-entropy gradient's 1 / count, in f64 rounded once (0 when no row counts).
TALARIA_HOST_DEVICE float cross_entropy_weight(int64_t count) {
  return count > 0 ? static_cast<float>(1.0 / static_cast<double>(count)) : 0.0f;
}

// The KL pass's state: x's (m_p, d_p) and u's (m_q, d_q) like SoftmaxState, and s = sum e^dz (dz - du).
template <typename Acc>
struct KlState {
  float m_p, m_q;
  Acc d_p, d_q, s;
};

template <typename Acc>
TALARIA_HOST_DEVICE KlState<Acc> merge_kl(const KlState<Acc>& a, const KlState<Acc>& b, float inv_t) {
  KlState<Acc> out;
  out.m_p = b.d_p == Acc(0) || a.m_p > b.m_p ? a.m_p : b.m_p;
  out.m_q = b.d_q == Acc(0) || a.m_q > b.m_q ? a.m_q : b.m_q;
  out.d_p = out.d_q = out.s = Acc(0);
  const KlState<Acc>* parts[2] = {&a, &b};
  for (const KlState<Acc>* part : parts) {
    if (part->d_q != Acc(0)) out.d_q += merge_exp(static_cast<Acc>((part->m_q - out.m_q) * inv_t)) * part->d_q;
    if (part->d_p == Acc(0)) continue;
    const Acc shift_p = static_cast<Acc>((part->m_p - out.m_p) * inv_t);
    const Acc shift_q = static_cast<Acc>((part->m_q - out.m_q) * inv_t);
    const Acc wp = merge_exp(shift_p);
    out.d_p += wp * part->d_p;
    out.s += shifted_s(wp, part->d_p, part->s, shift_p - shift_q);
  }
  return out;
}
template <typename Acc>
TALARIA_HOST_DEVICE float state_kl(const KlState<Acc>& st) {
  return static_cast<float>(st.s / st.d_p - log(st.d_p) + log(st.d_q));
}

// d x_i for the log-prob/entropy backward given lp = log p_i (also the CE and KL gradients' core):
// (g_logp (onehot - p) - g_entropy p (lp + H)) * inv_t, with p (lp + H) taken as 0 where p = 0.
TALARIA_HOST_DEVICE float logprob_entropy_grad(float lp, float p, float onehot, float g_logp, float g_entropy,
                                               float entropy, float inv_t) {
  const float ent_term = p > 0.0f ? p * (lp + entropy) : 0.0f;
  return (g_logp * (onehot - p) - g_entropy * ent_term) * inv_t;
}

// d x_i of the KL backward: g_kl / T * p (lp - lq - KL), 0 where p = 0.
TALARIA_HOST_DEVICE float kl_grad(float lp, float lq, float p, float g_kl, float kl, float inv_t) {
  return p > 0.0f ? g_kl * inv_t * (p * (lp - lq - kl)) : 0.0f;
}

namespace cpu {
void logprob_entropy(const LogprobEntropyArgs& args);
void logprob_entropy_backward(const LogprobEntropyBackwardArgs& args);
void cross_entropy(const CrossEntropyArgs& args);
void kl_divergence(const KlDivergenceArgs& args);
void kl_divergence_backward(const KlDivergenceBackwardArgs& args);
}  // namespace cpu

#ifdef TALARIA_WITH_CUDA
namespace cuda {
void logprob_entropy(int device, const LogprobEntropyArgs& args);
void logprob_entropy_backward(int device, const LogprobEntropyBackwardArgs& args);
void cross_entropy(int device, const CrossEntropyArgs& args);
void kl_divergence(int device, const KlDivergenceArgs& args);
void kl_divergence_backward(int device, const KlDivergenceBackwardArgs& args);
}  // namespace cuda
#endif

inline void logprob_entropy(Device device, const LogprobEntropyArgs& args) {
  TALARIA_DISPATCH(device, logprob_entropy, args);
}
inline void logprob_entropy_backward(Device device, const LogprobEntropyBackwardArgs& args) {
  TALARIA_DISPATCH(device, logprob_entropy_backward, args);
}
inline void cross_entropy(Device device, const CrossEntropyArgs& args) { TALARIA_DISPATCH(device, cross_entropy, args); }
inline void kl_divergence(Device device, const KlDivergenceArgs& args) { TALARIA_DISPATCH(device, kl_divergence, args); }
inline void kl_divergence_backward(Device device, const KlDivergenceBackwardArgs& args) {
  TALARIA_DISPATCH(device, kl_divergence_backward, args);
}

}  // namespace talaria
