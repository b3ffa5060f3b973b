// Talaria's error contract (DESIGN.md): every failure the user can cause is a talaria::Error with one
// of the codes below. The addon turns it into a JS TalariaError with the same code string.
#pragma once
#include <stdexcept>
#include <string>

namespace talaria {

enum class ErrorCode {
  Shape,     // ERR_TALARIA_SHAPE: sizes or layouts that do not agree
  DType,     // ERR_TALARIA_DTYPE: wrong element type or wrong kind of argument
  Device,    // ERR_TALARIA_DEVICE: wrong or unavailable device
  Range,     // ERR_TALARIA_RANGE: a value outside its legal range (NaN included)
  Disposed,  // ERR_TALARIA_DISPOSED: a tensor used after dispose()
  Cuda,      // ERR_TALARIA_CUDA: a CUDA runtime call failed
  OutOfMemory,  // ERR_TALARIA_OOM
  IO,        // ERR_TALARIA_IO
  Format,    // ERR_TALARIA_FORMAT
};

const char* error_code_name(ErrorCode code);

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_;
};

}  // namespace talaria

// Throws a talaria::Error when `cond` is false. The message is built only on failure.
#define TALARIA_CHECK(cond, code, message)                                   \
  do {                                                                       \
    if (!(cond)) throw ::talaria::Error(::talaria::ErrorCode::code, (message)); \
  } while (0)
