// Turning talaria::Error into JS TalariaError objects, and the guard helpers every binding opens with.
#pragma once
#include <napi.h>

#include <string>

#include "../core/error.h"

namespace talaria::addon {

// Builds a TalariaError (or an Error with .code before lib/ registered the class).
Napi::Error make_error(Napi::Env env, ErrorCode code, const std::string& message);

// Throws talaria::Error; the binding wrapper converts it. Keeps guard call sites one line long.
[[noreturn]] void fail(ErrorCode code, const std::string& message);

// Describes a JS value for error messages: "undefined", "a number (3)", "an Array", "a Float64Array"...
std::string describe(const Napi::Value& value);

// Runs `body`, converting talaria::Error and std::exception into thrown JS errors.
template <class Body>
Napi::Value guarded(Napi::Env env, Body&& body) {
  try {
    return body();
  } catch (const Error& e) {
    throw make_error(env, e.code(), e.what());
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw make_error(env, ErrorCode::OutOfMemory, "out of memory");
  } catch (const std::exception& e) {
    throw make_error(env, ErrorCode::Range, e.what());
  }
}

}  // namespace talaria::addon
