#pragma once
#include <napi.h>

namespace talaria::addon {
// Exports rmsnorm, rmsnormBackward, swiglu, swigluBackward, embedding, embeddingBackward and axpby, and
// their *Async forms.
void export_layers(Napi::Env env, Napi::Object exports);
}  // namespace talaria::addon
