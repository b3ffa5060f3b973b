// PLACEHOLDER until the real kernels land: keeps CUDA builds linking.
#include "../core/kernels/rl_loss.h"
#include "../core/error.h"
namespace talaria { namespace cuda {
void ppo_loss(int, const PpoLossArgs&) { throw Error(ErrorCode::Cuda, "ppo_loss: CUDA kernel not written yet"); }
void value_loss(int, const ValueLossArgs&) { throw Error(ErrorCode::Cuda, "value_loss: CUDA kernel not written yet"); }
} }
