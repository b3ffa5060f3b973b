// Attention on CUDA: not written yet. The entry points exist so every build links and a CUDA tensor gets
// a clear ERR_TALARIA_DEVICE instead of a missing symbol; the CPU kernel (native/cpu/attention.cpp) is
// the one to use until the tensor-core FlashAttention-2 kernel lands here.
#include <string>

#include "../core/error.h"
#include "../core/kernels/attention.h"

namespace talaria {
namespace cuda {

void attention_forward(int /*device*/, const AttentionForwardArgs& /*args*/) {
  throw Error(ErrorCode::Device, "attentionForward: not implemented on CUDA yet; use cpu tensors");
}

void attention_backward(int /*device*/, const AttentionBackwardArgs& /*args*/) {
  throw Error(ErrorCode::Device, "attentionBackward: not implemented on CUDA yet; use cpu tensors");
}

}  // namespace cuda
}  // namespace talaria
