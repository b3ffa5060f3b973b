// PLACEHOLDER until the real kernels land: keeps CUDA builds linking.
#include "../core/kernels/preference.h"
#include "../core/error.h"
namespace talaria { namespace cuda {
void dpo_loss(int, const DpoLossArgs&) { throw Error(ErrorCode::Cuda, "dpo_loss: CUDA kernel not written yet"); }
void ranking_loss(int, const RankingLossArgs&) { throw Error(ErrorCode::Cuda, "ranking_loss: CUDA kernel not written yet"); }
} }
