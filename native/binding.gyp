{
  "targets": [
    {
      "target_name": "flamingo_native",
      "sources": [
        "src/addon.cc",
        "src/pool.cc",
        "src/gemm.cc",
        "src/gemm_avx512.cc",
        "src/kernels.cc",
        "src/quant.cc",
        "src/memory.cc"
      ],
      "include_dirs": ["<!@(node detect.cjs blas-include)"],
      "defines": ["<!@(node detect.cjs blas-defines)", "NAPI_VERSION=8"],
      "libraries": ["<!@(node detect.cjs blas-libs)", "-lpthread"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags": ["-O3", "-fexceptions", "<!@(node detect.cjs simd-flags)"],
      "cflags_cc": ["-O3", "-std=c++17", "-fexceptions", "-fno-math-errno", "<!@(node detect.cjs simd-flags)"]
    }
  ]
}
