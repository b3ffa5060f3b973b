#pragma once
#include <napi.h>

namespace talaria::addon {
// Exports logprobEntropy, logprobEntropyBackward, crossEntropy, klDivergence, klDivergenceBackward and
// their *Async forms.
void export_logits(Napi::Env env, Napi::Object exports);
}  // namespace talaria::addon
