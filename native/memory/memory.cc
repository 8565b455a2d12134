// corral_memory.node: V8's count of memory held outside its heap on behalf of
// JS objects. V8 starts a full collection whenever that count has grown by
// 64 MB since the last one; common/http/tls-buffers.ts takes out of the count
// what open TLS connections hold, which no collection can free.
#include <napi.h>

namespace {

// adjustExternalMemory(delta: number): number — adds delta bytes (negative to
// take away) and returns the count afterwards; delta 0 only reads it.
Napi::Value AdjustExternalMemory(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 1 || !info[0].IsNumber()) {
    throw Napi::TypeError::New(env, "adjustExternalMemory(delta): delta must be a number of bytes");
  }
  const double delta = info[0].As<Napi::Number>().DoubleValue();
  if (delta != delta || delta > 9007199254740991.0 || delta < -9007199254740991.0) {
    throw Napi::RangeError::New(env, "adjustExternalMemory(delta): delta must be a safe integer");
  }
  const int64_t total = Napi::MemoryManagement::AdjustExternalMemory(env, static_cast<int64_t>(delta));
  return Napi::Number::New(env, static_cast<double>(total));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("adjustExternalMemory", Napi::Function::New(env, AdjustExternalMemory, "adjustExternalMemory"));
  return exports;
}

}  // namespace

NODE_API_MODULE(corral_memory, Init)
