#pragma once
#include <napi.h>

namespace talaria::addon {
// Exports streamTriad/streamTriadAsync (the bench's bandwidth roofline).
void export_roofline(Napi::Env env, Napi::Object exports);
}  // namespace talaria::addon
