#include "kernel_call.h"

#include <string>

#include "errors.h"

namespace talaria::addon {
namespace {

class KernelWorker : public Napi::AsyncWorker {
 public:
  KernelWorker(Napi::Env env, std::unique_ptr<KernelCall> call)
      : Napi::AsyncWorker(env, "talaria:kernel"), call_(std::move(call)), deferred_(Napi::Promise::Deferred::New(env)) {
    for (const Napi::Value& value : call_->keep_alive) references_.push_back(Napi::Persistent(value));
  }

  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      call_->execute();
    } catch (const Error& e) {
      code_ = e.code();
      SetError(e.what());
    } catch (const std::bad_alloc&) {
      code_ = ErrorCode::OutOfMemory;
      SetError("out of memory");
    } catch (const std::exception& e) {
      code_ = ErrorCode::Range;
      SetError(e.what());
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    try {
      deferred_.Resolve(guarded(env, [&] { return call_->result(env); }));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }

  void OnError(const Napi::Error& e) override {
    deferred_.Reject(make_error(Env(), code_, e.Message()).Value());
  }

 private:
  std::unique_ptr<KernelCall> call_;
  Napi::Promise::Deferred deferred_;
  std::vector<Napi::Reference<Napi::Value>> references_;
  ErrorCode code_ = ErrorCode::Range;
};

}  // namespace

void export_kernel(Napi::Env env, Napi::Object exports, const char* name, PrepareFn prepare) {
  exports.Set(name, Napi::Function::New(
                        env,
                        [prepare](const Napi::CallbackInfo& info) -> Napi::Value {
                          return guarded(info.Env(), [&] {
                            std::unique_ptr<KernelCall> call = prepare(info);
                            call->execute();
                            return call->result(info.Env());
                          });
                        },
                        name));
  std::string async_name = std::string(name) + "Async";
  exports.Set(async_name, Napi::Function::New(
                              env,
                              [prepare](const Napi::CallbackInfo& info) -> Napi::Value {
                                Napi::Env env = info.Env();
                                // Bad arguments reject the Promise rather than throw synchronously.
                                std::unique_ptr<KernelCall> call;
                                try {
                                  guarded(env, [&] {
                                    call = prepare(info);
                                    return env.Undefined();
                                  });
                                } catch (const Napi::Error& e) {
                                  auto deferred = Napi::Promise::Deferred::New(env);
                                  deferred.Reject(e.Value());
                                  return deferred.Promise();
                                }
                                auto* worker = new KernelWorker(env, std::move(call));
                                Napi::Promise promise = worker->promise();
                                worker->Queue();  // the worker deletes itself after OnOK/OnError
                                return promise;
                              },
                              async_name));
}

}  // namespace talaria::addon
