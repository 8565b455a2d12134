# Builds corral_memory.node: one call, V8's count of external memory
# (Isolate::AdjustAmountOfExternalAllocatedMemory through N-API). Its own build,
# libc only: `npx node-gyp rebuild --directory native/memory --nodedir=/usr`.
{
  "targets": [
    {
      "target_name": "corral_memory",
      "sources": ["memory.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-O2", "-fexceptions", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fvisibility=hidden"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"]
    }
  ]
}
