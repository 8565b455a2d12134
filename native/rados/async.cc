// Implementation of the off-thread task runner and typed errors (see async.h).
#include "async.h"

#include <uv.h>

#include <cmath>
#include <cstring>

namespace corral {

AddonData* Data(Napi::Env env) { return env.GetInstanceData<AddonData>(); }

Napi::Value MakeError(Napi::Env env, const std::string& op, int rc, const std::string& detail) {
  int err = rc < 0 ? -rc : rc;
  const char* code = uv_err_name(-err);
  std::string message = op + ": " + std::strerror(err);
  if (!detail.empty()) message += " (" + detail + ")";
  AddonData* data = Data(env);
  if (data && !data->errorFactory.IsEmpty()) {
    return data->errorFactory.Call({Napi::String::New(env, message), Napi::String::New(env, op),
                                    Napi::Number::New(env, err), Napi::String::New(env, code)});
  }
  Napi::Error e = Napi::Error::New(env, message);
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("code", Napi::String::New(env, code));
  e.Set("op", Napi::String::New(env, op));
  return e.Value();
}

void ThrowError(Napi::Env env, const std::string& op, int rc, const std::string& detail) {
  throw Napi::Error(env, MakeError(env, op, rc, detail));
}

Task::Task(Napi::Env env, std::string op, Work work, Done done)
    : Napi::AsyncWorker(env, "corral_rados"),
      deferred_(Napi::Promise::Deferred::New(env)),
      op_(std::move(op)),
      work_(std::move(work)),
      done_(std::move(done)) {}

Napi::Value Task::Run(Napi::Env env, std::string op, Work work, Done done) {
  Task* task = new Task(env, std::move(op), std::move(work), std::move(done));
  Napi::Promise promise = task->deferred_.Promise();
  task->Queue();
  return promise;
}

void Task::Execute() { rc_ = work_(detail_); }

void Task::OnOK() {
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  if (rc_ < 0) {
    deferred_.Reject(MakeError(env, op_, rc_, detail_));
    return;
  }
  try {
    deferred_.Resolve(done_ ? done_(env) : env.Undefined());
  } catch (const Napi::Error& e) {
    deferred_.Reject(e.Value());
  }
}

std::string StringArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsString()) ThrowError(info.Env(), name, -EINVAL, std::string(name) + " must be a string");
  std::string s = info[i].As<Napi::String>().Utf8Value();
  if (s.find('\0') != std::string::npos) ThrowError(info.Env(), name, -EINVAL, std::string(name) + " contains NUL");
  return s;
}

uint64_t U64Arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsNumber()) ThrowError(info.Env(), name, -EINVAL, std::string(name) + " must be a number");
  double v = info[i].As<Napi::Number>().DoubleValue();
  if (!std::isfinite(v) || v < 0 || v > 9007199254740991.0 || std::floor(v) != v) {
    ThrowError(info.Env(), name, -EINVAL, std::string(name) + " must be a non-negative safe integer");
  }
  return static_cast<uint64_t>(v);
}

std::string BufferArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() > i && info[i].IsBuffer()) {
    auto b = info[i].As<Napi::Buffer<char>>();
    return std::string(b.Data(), b.Length());
  }
  if (info.Length() > i && info[i].IsString()) return info[i].As<Napi::String>().Utf8Value();
  ThrowError(info.Env(), name, -EINVAL, std::string(name) + " must be a Buffer or string");
}

}  // namespace corral
