# Builds corral_rados.node, the librados/librbd binding used by the rbd volume
# backend. Built by `npx node-gyp rebuild --directory native` (scripts/setup.sh
# does it when the librados-dev/librbd-dev headers are installed). Node's own
# headers come from the machine (/usr/include/node), so no download is needed.
{
  "targets": [
    {
      "target_name": "corral_rados",
      "sources": [
        "rados/addon.cc",
        "rados/async.cc",
        "rados/handles.cc",
        "rados/cluster.cc",
        "rados/ioctx.cc",
        "rados/ioctx_locks.cc",
        "rados/ioctx_omap.cc",
        "rados/image.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "libraries": ["-lrados", "-lrbd"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fvisibility=hidden"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"]
    }
  ]
}
