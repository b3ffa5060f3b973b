// PLACEHOLDER until the real kernels land: keeps CUDA builds linking.
#include "../core/kernels/rewards.h"
#include "../core/error.h"
namespace talaria { namespace cuda {
void shape_rewards(int, const ShapeRewardsArgs&) { throw Error(ErrorCode::Cuda, "shape_rewards: CUDA kernel not written yet"); }
void group_advantages(int, const GroupAdvantagesArgs&) { throw Error(ErrorCode::Cuda, "group_advantages: CUDA kernel not written yet"); }
} }
