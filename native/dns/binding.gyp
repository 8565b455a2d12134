# Builds corral_dns.node, the DNS server's UDP fast path (recvmmsg/sendmmsg on
# a thread of its own, answers from a table the JS responder fills). Its own
# build, so it builds without the Ceph headers the rados binding needs:
# `npx node-gyp rebuild --directory native/dns --nodedir=/usr`.
{
  "targets": [
    {
      "target_name": "corral_dns",
      "sources": ["udp.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-O2", "-fexceptions", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fvisibility=hidden"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"]
    }
  ]
}
