// Entry point of corral_rados.node: registers the classes and lets the JS
// loader install the factory that turns failures into typed RadosErrors.
#include "classes.h"

namespace corral {

static Napi::Value SetErrorFactory(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsFunction()) ThrowError(info.Env(), "setErrorFactory", -EINVAL, "expects a function");
  Data(info.Env())->errorFactory = Napi::Persistent(info[0].As<Napi::Function>());
  return info.Env().Undefined();
}

static Napi::Value Versions(const Napi::CallbackInfo& info) {
  int maj, min, extra;
  rados_version(&maj, &min, &extra);
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("rados", Napi::String::New(info.Env(), std::to_string(maj) + "." + std::to_string(min) + "." + std::to_string(extra)));
  rbd_version(&maj, &min, &extra);
  o.Set("rbd", Napi::String::New(info.Env(), std::to_string(maj) + "." + std::to_string(min) + "." + std::to_string(extra)));
  return o;
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  env.SetInstanceData(data);
  Napi::Function ioctx = IoCtx::Define(env);
  Napi::Function image = Image::Define(env);
  data->ioctxCtor = Napi::Persistent(ioctx);
  data->imageCtor = Napi::Persistent(image);
  exports.Set("Cluster", Cluster::Define(env));
  exports.Set("IoCtx", ioctx);
  exports.Set("Image", image);
  exports.Set("setErrorFactory", Napi::Function::New(env, SetErrorFactory));
  exports.Set("versions", Napi::Function::New(env, Versions));
  return exports;
}

}  // namespace corral

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return corral::Init(env, exports); }

NODE_API_MODULE(corral_rados, InitModule)
