#include "errors.h"

#include "addon_data.h"

namespace talaria::addon {

Napi::Error make_error(Napi::Env env, ErrorCode code, const std::string& message) {
  const char* code_name = error_code_name(code);
  AddonData& data = addon_data(env);
  if (!data.error_constructor.IsEmpty()) {
    Napi::Object error =
        data.error_constructor.New({Napi::String::New(env, message), Napi::String::New(env, code_name)});
    return Napi::Error(env, error);
  }
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, code_name));
  return error;
}

void fail(ErrorCode code, const std::string& message) { throw Error(code, message); }

std::string describe(const Napi::Value& value) {
  switch (value.Type()) {
    case napi_undefined: return "undefined";
    case napi_null: return "null";
    case napi_boolean: return std::string("a boolean (") + (value.As<Napi::Boolean>() ? "true" : "false") + ")";
    case napi_number: return "a number (" + value.ToString().Utf8Value() + ")";
    case napi_string: return "a string";
    case napi_bigint: return "a bigint";
    case napi_symbol: return "a symbol";
    case napi_function: return "a function";
    default: break;
  }
  if (value.IsArray()) return "an Array";
  if (value.IsTypedArray()) {
    switch (value.As<Napi::TypedArray>().TypedArrayType()) {
      case napi_int8_array: return "an Int8Array";
      case napi_uint8_array: return "a Uint8Array";
      case napi_uint8_clamped_array: return "a Uint8ClampedArray";
      case napi_int16_array: return "an Int16Array";
      case napi_uint16_array: return "a Uint16Array";
      case napi_int32_array: return "an Int32Array";
      case napi_uint32_array: return "a Uint32Array";
      case napi_float32_array: return "a Float32Array";
      case napi_float64_array: return "a Float64Array";
      case napi_bigint64_array: return "a BigInt64Array";
      case napi_biguint64_array: return "a BigUint64Array";
      default: return "a typed array";
    }
  }
  if (value.IsArrayBuffer()) return "an ArrayBuffer";
  return "an object";
}

}  // namespace talaria::addon
