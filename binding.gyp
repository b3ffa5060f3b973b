{
  # CPU-only build of the same sources as CMakeLists.txt, for machines without cmake (node-gyp).
  # The source lists are globbed the same way, so adding a kernel file needs no edit here.
  "targets": [
    {
      "target_name": "talaria",
      "sources": [
        "<!@(node -e \"const fs=require('fs');for(const d of ['native/core','native/cpu','native/addon'])for(const f of fs.readdirSync(d).sort())if(/\\.(cpp|cc)$/.test(f))console.log(d+'/'+f)\")"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "native"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NAPI_CPP_EXCEPTIONS",
        "TALARIA_VERSION=\"<!(node -p \"require('./package.json').version\")\""
      ],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      # -ffp-contract=fast: what CMake's gnu++17 gives the core, so the matmul microkernel's multiply-adds
      # become FMAs here too (ISO c++17 turns contraction off and halves its speed).
      "cflags_cc": ["-std=c++17", "-O3", "-ffp-contract=fast", "-fno-math-errno", "-fno-trapping-math", "-Wno-psabi", "-Wall", "-Wextra", "-fvisibility=hidden"],
      "xcode_settings": {
        "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
        "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
        "OTHER_CPLUSPLUSFLAGS": ["-O3", "-ffp-contract=fast", "-fno-math-errno", "-fno-trapping-math"]
      },
      "msvs_settings": {
        "VCCLCompilerTool": { "ExceptionHandling": 1, "AdditionalOptions": ["/std:c++17"] }
      }
    }
  ]
}
