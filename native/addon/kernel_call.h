// Sync and Promise forms of every kernel from one description. A binding's `prepare` runs on the main
// thread: it checks every argument and allocates outputs, returning a KernelCall (the "baton"). The sync
// form runs it in place; the Promise form runs it on a libuv worker while references keep every input
// and output JS object (and so their memory) alive. Errors never cross threads as exceptions: the worker
// stores the code and message and rejects the Promise on the main thread.
#pragma once
#include <napi.h>

#include <functional>
#include <memory>
#include <vector>

#include "args.h"

namespace talaria::addon {

class KernelCall {
 public:
  virtual ~KernelCall() = default;
  // Runs the kernel. May run off the main thread, so it must not touch JS; throws talaria::Error.
  virtual void execute() = 0;
  // Builds the JS result on the main thread.
  virtual Napi::Value result(Napi::Env env) = 0;

  // Every JS object whose memory execute() reads or writes.
  std::vector<Napi::Value> keep_alive;
  void hold(const TensorArg& arg) { keep_alive.insert(keep_alive.end(), arg.keep_alive.begin(), arg.keep_alive.end()); }
  void hold(const std::optional<TensorArg>& arg) { if (arg) hold(*arg); }
};

using PrepareFn = std::unique_ptr<KernelCall> (*)(const Napi::CallbackInfo& info);

// Registers exports[name] (sync) and exports[name + "Async"] (returns a Promise).
void export_kernel(Napi::Env env, Napi::Object exports, const char* name, PrepareFn prepare);

}  // namespace talaria::addon
