// PLACEHOLDER until the real kernels land.
#include "../core/kernels/rewards.h"
#include "../core/error.h"
namespace talaria { namespace cpu {
void shape_rewards(const ShapeRewardsArgs&) { throw Error(ErrorCode::Range, "shape_rewards: not written yet"); }
void group_advantages(const GroupAdvantagesArgs&) { throw Error(ErrorCode::Range, "group_advantages: not written yet"); }
} }
