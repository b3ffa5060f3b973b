// PLACEHOLDER until the real kernels land.
#include "../core/kernels/preference.h"
#include "../core/error.h"
namespace talaria { namespace cpu {
void dpo_loss(const DpoLossArgs&) { throw Error(ErrorCode::Range, "dpo_loss: not written yet"); }
void ranking_loss(const RankingLossArgs&) { throw Error(ErrorCode::Range, "ranking_loss: not written yet"); }
} }
