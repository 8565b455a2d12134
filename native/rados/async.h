// Running blocking librados/librbd calls off the JS thread, and turning their
// negative errno results into typed JS errors.
//
// Every exported method that may block (network round trips, disk, locks)
// goes through Task::Run: the work lambda runs on the libuv thread pool and
// returns >= 0 or -errno; the done lambda builds the JS result on the JS thread.
#pragma once
#include <napi.h>

#include <functional>
#include <string>

namespace corral {

// Per-addon state: the JS factory that builds typed errors and the
// constructors of the classes native code instantiates itself.
struct AddonData {
  Napi::FunctionReference errorFactory;
  Napi::FunctionReference ioctxCtor;
  Napi::FunctionReference imageCtor;
};

AddonData* Data(Napi::Env env);

// A JS error for a failed call: `op` is the librados/librbd function, `rc` is
// -errno. The error carries errno (positive), code ("ENOENT") and op.
Napi::Value MakeError(Napi::Env env, const std::string& op, int rc, const std::string& detail = "");

// Throws a typed error synchronously (for argument errors: EINVAL).
[[noreturn]] void ThrowError(Napi::Env env, const std::string& op, int rc, const std::string& detail = "");

class Task : public Napi::AsyncWorker {
 public:
  // `detail` may be filled with context for the error message.
  using Work = std::function<int(std::string& detail)>;
  using Done = std::function<Napi::Value(Napi::Env)>;

  // Queue `work` on the thread pool; the promise resolves with done(env)
  // when work returns >= 0 and rejects with a typed error otherwise.
  static Napi::Value Run(Napi::Env env, std::string op, Work work, Done done = nullptr);

 private:
  Task(Napi::Env env, std::string op, Work work, Done done);
  void Execute() override;
  void OnOK() override;

  Napi::Promise::Deferred deferred_;
  std::string op_;
  Work work_;
  Done done_;
  std::string detail_;
  int rc_ = 0;
};

// Argument helpers: throw a typed EINVAL error naming the argument.
std::string StringArg(const Napi::CallbackInfo& info, size_t i, const char* name);
uint64_t U64Arg(const Napi::CallbackInfo& info, size_t i, const char* name);
std::string BufferArg(const Napi::CallbackInfo& info, size_t i, const char* name);

}  // namespace corral
