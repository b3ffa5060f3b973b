// CPU DPO loss and K-wise ranking loss. Semantics and the per-pair math: native/core/kernels/preference.h,
// shared with native/cuda/preference.cu, so the backends differ only in how they partition and sum.
//
// DPO: fixed chunks of 2048 pairs run in parallel; each chunk writes its gradients and sums its pairs' loss
// and stats in f64, in pair order, and the chunk partials merge in chunk order: the result does not depend
// on the thread count. Ranking: the number of ranked prompts (K_p >= 2) comes first, since it weights every
// gradient; then fixed chunks of 128 prompts, each prompt's completions in order, each against its partners
// in order (ranking_completion), merged in chunk order.
//
// Napkin math: DPO reads 16 B and writes 8 B per pair, with one f64 exp + log1p (two with label smoothing),
// ~30-60 ns. A batch of 64-512 pairs is a few to 30 us, bound by the libm calls and the pool's dispatch, not
// by memory. Ranking does
// K - 1 partner steps (an exp and a log1p each) per completion: InstructGPT's 64 prompts of K = 9 are 4608
// steps, ~0.2 ms on one core; 8 B read and 4 B written per completion is nothing next to that.
#include <algorithm>
#include <vector>

#include "../core/kernels/preference.h"
#include "../core/thread_pool.h"

namespace talaria {
namespace cpu {
namespace {

constexpr int64_t kDpoChunk = 2048;     // pairs
constexpr int64_t kRankingChunk = 128;  // prompts

struct DpoPartial {
  double loss = 0, margin = 0, chosen = 0, rejected = 0;
  int64_t wins = 0;
  void merge(const DpoPartial& o) {
    loss += o.loss, margin += o.margin, chosen += o.chosen, rejected += o.rejected, wins += o.wins;
  }
};

struct RankingPartial {
  double loss = 0;  // sum over prompts of (sum of pair terms) / C(K, 2)
  int64_t wins = 0, pairs = 0, ties = 0;
  void merge(const RankingPartial& o) { loss += o.loss, wins += o.wins, pairs += o.pairs, ties += o.ties; }
};

// Runs body(lo, hi, partial) over fixed chunks of [0, count) in parallel and merges the partials in order.
template <typename Partial, typename Body>
Partial reduce_chunks(int64_t count, int64_t chunk, const Body& body) {
  const int64_t num_chunks = (count + chunk - 1) / chunk;
  std::vector<Partial> partial(num_chunks);
  parallel_for(0, num_chunks, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t c = lo; c < hi; c++) body(c * chunk, std::min(count, (c + 1) * chunk), partial[c]);
  });
  Partial total;
  for (const Partial& p : partial) total.merge(p);
  return total;
}

}  // namespace

void dpo_loss(const DpoLossArgs& a) {
  DpoLossStats& s = *a.stats;
  s = DpoLossStats{0.0, 0.0, 0.0, 0.0, 0.0};
  if (a.num_pairs == 0) return;
  const double beta = a.beta, smoothing = a.label_smoothing;
  const double scale = beta / static_cast<double>(a.num_pairs);  // d mean / d z_i, times beta
  const DpoPartial total = reduce_chunks<DpoPartial>(a.num_pairs, kDpoChunk, [&](int64_t lo, int64_t hi, DpoPartial& p) {
    for (int64_t i = lo; i < hi; i++) {
      const DpoPair pair =
          dpo_pair(a.policy_chosen[i], a.policy_rejected[i], a.ref_chosen[i], a.ref_rejected[i], beta, smoothing);
      a.d_policy_chosen[i] = static_cast<float>(scale * pair.grad);
      a.d_policy_rejected[i] = static_cast<float>(-scale * pair.grad);
      p.loss += pair.loss, p.margin += pair.margin, p.chosen += pair.chosen, p.rejected += pair.rejected;
      p.wins += pair.chosen > pair.rejected ? 1 : 0;
    }
  });
  const double n = static_cast<double>(a.num_pairs);
  s = DpoLossStats{total.loss / n, static_cast<double>(total.wins) / n, total.margin / n, total.chosen / n,
                   total.rejected / n};
}

void ranking_loss(const RankingLossArgs& a) {
  RankingLossStats& s = *a.stats;
  s = RankingLossStats{0.0, 0.0, 0, 0, 0};
  int64_t ranked = 0;
  for (int64_t p = 0; p < a.num_prompts; p++) {
    const int64_t begin = a.offsets[p];
    ranked += ranking_prompt_counts(a.ranks != nullptr ? a.ranks + begin : nullptr, a.offsets[p + 1] - begin) ? 1 : 0;
  }
  const RankingPartial total =
      reduce_chunks<RankingPartial>(a.num_prompts, kRankingChunk, [&](int64_t lo, int64_t hi, RankingPartial& part) {
        for (int64_t p = lo; p < hi; p++) {
          const int64_t begin = a.offsets[p], k = a.offsets[p + 1] - begin;
          if (k < 2) {  // no pairs: not counted, gradient 0
            if (k == 1) a.d_scores[begin] = 0.0f;
            continue;
          }
          const int32_t* ranks = a.ranks != nullptr ? a.ranks + begin : nullptr;
          // An all-tied prompt has no pair terms, so its gradients are 0 whatever the weight; R = 0 means every
          // prompt is like that, and the weight must not be inf (0 * inf is NaN).
          const double c = ranking_pairs_of(k), weight = ranked > 0 ? 1.0 / (c * static_cast<double>(ranked)) : 0.0;
          double prompt_loss = 0.0;
          for (int64_t j = 0; j < k; j++) {
            const RankingCompletion r = ranking_completion(a.scores + begin, ranks, k, j);
            a.d_scores[begin + j] = static_cast<float>(r.grad * weight);
            prompt_loss += r.loss;
            part.wins += r.wins, part.pairs += r.pairs, part.ties += r.ties;
          }
          part.loss += prompt_loss / c;
        }
      });
  s.loss = ranked > 0 ? total.loss / static_cast<double>(ranked) : 0.0;
  s.accuracy = total.pairs > 0 ? static_cast<double>(total.wins) / static_cast<double>(total.pairs) : 0.0;
  s.pairs = total.pairs;
  s.tied_pairs = total.ties;
  s.ranked_prompts = ranked;
}

}  // namespace cpu
}  // namespace talaria
