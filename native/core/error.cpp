#include "error.h"

namespace talaria {

const char* error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::Shape: return "ERR_TALARIA_SHAPE";
    case ErrorCode::DType: return "ERR_TALARIA_DTYPE";
    case ErrorCode::Device: return "ERR_TALARIA_DEVICE";
    case ErrorCode::Range: return "ERR_TALARIA_RANGE";
    case ErrorCode::Disposed: return "ERR_TALARIA_DISPOSED";
    case ErrorCode::Cuda: return "ERR_TALARIA_CUDA";
    case ErrorCode::OutOfMemory: return "ERR_TALARIA_OOM";
    case ErrorCode::IO: return "ERR_TALARIA_IO";
    case ErrorCode::Format: return "ERR_TALARIA_FORMAT";
  }
  return "ERR_TALARIA_UNKNOWN";
}

}  // namespace talaria
