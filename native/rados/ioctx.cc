// IoCtx: a pool context. This file: construction, whole objects, xattrs and
// watch/notify (the liveness probe of the rbd backend).
#include <cstring>

#include "classes.h"

namespace corral {

// Every call on an ioctx holds the cluster guard, so shutdown waits for it.
#define IOCTX_GUARD(h)          \
  CallGuard guard((h)->cluster); \
  if (!guard || (h)->destroyed) return -ENOTCONN

Napi::Function IoCtx::Define(Napi::Env env) {
  return DefineClass(env, "IoCtx",
                     {
                         InstanceMethod("read", &IoCtx::Read),
                         InstanceMethod("write", &IoCtx::Write),
                         InstanceMethod("writeFull", &IoCtx::WriteFull),
                         InstanceMethod("remove", &IoCtx::Remove),
                         InstanceMethod("stat", &IoCtx::Stat),
                         InstanceMethod("getXattr", &IoCtx::GetXattr),
                         InstanceMethod("setXattr", &IoCtx::SetXattr),
                         InstanceMethod("rmXattr", &IoCtx::RmXattr),
                         InstanceMethod("listXattrs", &IoCtx::ListXattrs),
                         InstanceMethod("watch", &IoCtx::Watch),
                         InstanceMethod("watchCheck", &IoCtx::WatchCheck),
                         InstanceMethod("unwatch", &IoCtx::Unwatch),
                         InstanceMethod("notify", &IoCtx::Notify),
                         InstanceMethod("omapGet", &IoCtx::OmapGet),
                         InstanceMethod("omapGetKeys", &IoCtx::OmapGetKeys),
                         InstanceMethod("writeOp", &IoCtx::WriteOp),
                         InstanceMethod("lockExclusive", &IoCtx::LockExclusive),
                         InstanceMethod("lockShared", &IoCtx::LockShared),
                         InstanceMethod("unlock", &IoCtx::Unlock),
                         InstanceMethod("breakLock", &IoCtx::BreakLock),
                         InstanceMethod("listLockers", &IoCtx::ListLockers),
                         InstanceMethod("rbdList", &IoCtx::RbdList),
                         InstanceMethod("rbdCreate", &IoCtx::RbdCreate),
                         InstanceMethod("rbdRemove", &IoCtx::RbdRemove),
                         InstanceMethod("rbdOpen", &IoCtx::RbdOpen),
                     });
}

Napi::Object IoCtx::New(Napi::Env env, std::shared_ptr<IoCtxHandle> h) {
  auto* boxed = new std::shared_ptr<IoCtxHandle>(std::move(h));
  auto ext = Napi::External<std::shared_ptr<IoCtxHandle>>::New(
      env, boxed, [](Napi::Env, std::shared_ptr<IoCtxHandle>* p) { delete p; });
  return Data(env)->ioctxCtor.New({ext});
}

IoCtx::IoCtx(const Napi::CallbackInfo& info) : Napi::ObjectWrap<IoCtx>(info) {
  if (info.Length() < 1 || !info[0].IsExternal()) ThrowError(info.Env(), "IoCtx", -EINVAL, "use Cluster.openIoCtx()");
  h_ = *info[0].As<Napi::External<std::shared_ptr<IoCtxHandle>>>().Data();
}

// read(oid, length, offset) -> Buffer (shorter at the end of the object)
Napi::Value IoCtx::Read(const Napi::CallbackInfo& info) {
  auto h = h_;
  std::string oid = StringArg(info, 0, "oid");
  uint64_t len = U64Arg(info, 1, "length");
  uint64_t off = info.Length() > 2 ? U64Arg(info, 2, "offset") : 0;
  if (len > (256u << 20)) ThrowError(info.Env(), "rados_read", -EINVAL, "length above 256 MiB");
  auto buf = std::make_shared<std::string>();
  return Task::Run(
      info.Env(), "rados_read",
      [h, oid, len, off, buf](std::string& detail) -> int {
        IOCTX_GUARD(h);
        detail = oid;
        buf->resize(len);
        int rc = rados_read(h->io, oid.c_str(), buf->data(), len, off);
        if (rc >= 0) buf->resize(rc);
        return rc;
      },
      [buf](Napi::Env env) -> Napi::Value { return Napi::Buffer<char>::Copy(env, buf->data(), buf->size()); });
}

Napi::Value IoCtx::Write(const Napi::CallbackInfo& info) {
  auto h = h_;
  std::string oid = StringArg(info, 0, "oid");
  std::string data = BufferArg(info, 1, "data");
  uint64_t off = info.Length() > 2 ? U64Arg(info, 2, "offset") : 0;
  return Task::Run(info.Env(), "rados_write", [h, oid, data, off](std::string& detail) -> int {
    IOCTX_GUARD(h);
    detail = oid;
    return rados_write(h->io, oid.c_str(), data.data(), data.size(), off);
  });
}

Napi::Value IoCtx::WriteFull(const Napi::CallbackInfo& info) {
  auto h = h_;
  std::string oid = StringArg(info, 0, "oid");
  std::string data = BufferArg(info, 1, "data");
  return Task::Run(info.Env(), "rados_write_full", [h, oid, data](std::string& detail) -> int {
    IOCTX_GUARD(h);
    detail = oid;
    return rados_write_full(h->io, oid.c_str(), data.data(), data.size());
  });
}

Napi::Value IoCtx::Remove(const Napi::CallbackInfo& info) {
  auto h = h_;
  std::string oid = StringArg(info, 0, "oid");
  return Task::Run(info.Env(), "rados_remove", [h, oid](std::string& detail) -> int {
    IOCTX_GUARD(h);
    detail = oid;
    return rados_remove(h->io, oid.c_str());
  });
}

// stat(oid) -> { size, mtime (seconds since the epoch) }
Napi::Value IoCtx::Stat(const Napi::CallbackInfo& info) {
  auto h = h_;
  std::string oid = StringArg(info, 0, "oid");
  struct Out {
    uint64_t size = 0;
    time_t mtime = 0;
  };
  auto out = std::make_shared<Out>();
  return Task::Run(
      info.Env(), "rados_stat",
      [h, oid, out](std::string& detail) -> int {
        IOCTX_GUARD(h);
        detail = oid;
        return rados_stat(h->io, oid.c_str(), &out->size, &out->mtime);
      },
      [out](Napi::Env env) -> Napi::Value {
        Napi::Object o = Napi::Object::New(env);
        o.Set("size", Napi::Number::New(env, static_cast<double>(out->size)));
        o.Set("mtime", Napi::Number::New(env, static_cast<double>(out->mtime)));
        return o;
      });
}

Napi::Value IoCtx::GetXattr(const Napi::CallbackInfo& info) {
  auto h = h_;
  std::string oid = StringArg(info, 0, "oid");
  std::string name = StringArg(info, 1, "name");
  auto buf = std::make_shared<std::string>();
  return Task::Run(
      info.Env(), "rados_getxattr",
      [h, oid, name, buf](std::string& detail) -> int {
        IOCTX_GUARD(h);
        detail = oid + " " + name;
        for (size_t len = 4096; len <= (64u << 20); len *= 4) {
          buf->resize(len);
          int rc = rados_getxattr(h->io, oid.c_str(), name.c_str(), buf->data(), len);
          if (rc == -ERANGE) continue;
          if (rc >= 0) buf->resize(rc);
          return rc;
        }
        return -ERANGE;
      },
      [buf](Napi::Env env) -> Napi::Value { return Napi::Buffer<char>::Copy(env, buf->data(), buf->size()); });
}

Napi::Value IoCtx::SetXattr(const Napi::CallbackInfo& info) {
  auto h = h_;
  std::string oid = StringArg(info, 0, "oid");
  std::string name = StringArg(info, 1, "name");
  std::string value = BufferArg(info, 2, "value");
  return Task::Run(info.Env(), "rados_setxattr", [h, oid, name, value](std::string& detail) -> int {
    IOCTX_GUARD(h);
    detail = oid + " " + name;
    return rados_setxattr(h->io, oid.c_str(), name.c_str(), value.data(), value.size());
  });
}

Napi::Value IoCtx::RmXattr(const Napi::CallbackInfo& info) {
  auto h = h_;
  std::string oid = StringArg(info, 0, "oid");
  std::string name = StringArg(info, 1, "name");
  return Task::Run(info.Env(), "rados_rmxattr", [h, oid, name](std::string& detail) -> int {
    IOCTX_GUARD(h);
    detail = oid + " " + name;
    return rados_rmxattr(h->io, oid.c_str(), name.c_str());
  });
}

// listXattrs(oid) -> { name: Buffer }
Napi::Value IoCtx::ListXattrs(const Napi::CallbackInfo& info) {
  auto h = h_;
  std::string oid = StringArg(info, 0, "oid");
  auto out = std::make_shared<std::vector<std::pair<std::string, std::string>>>();
  return Task::Run(
      info.Env(), "rados_getxattrs",
      [h, oid, out](std::string& detail) -> int {
        IOCTX_GUARD(h);
        detail = oid;
        rados_xattrs_iter_t it = nullptr;
        int rc = rados_getxattrs(h->io, oid.c_str(), &it);
        if (rc < 0) return rc;
        for (;;) {
          const char* name = nullptr;
          const char* val = nullptr;
          size_t len = 0;
          rc = rados_getxattrs_next(it, &name, &val, &len);
          if (rc < 0 || name == nullptr) break;
          out->emplace_back(name, std::string(val, len));
        }
        rados_getxattrs_end(it);
        return rc < 0 ? rc : 0;
      },
      [out](Napi::Env env) -> Napi::Value {
        Napi::Object o = Napi::Object::New(env);
        for (auto& [k, v] : *out) o.Set(k, Napi::Buffer<char>::Copy(env, v.data(), v.size()));
        return o;
      });
}

namespace {

// Runs on a librados thread: acknowledge at once with the payload given at
// watch time, so a notifier learns we are alive even if JS is busy.
void OnNotify(void* arg, uint64_t notifyId, uint64_t handle, uint64_t, void*, size_t) {
  auto* w = static_cast<WatchCtx*>(arg);
  rados_notify_ack(w->io, w->oid.c_str(), notifyId, handle, w->ackPayload.data(), w->ackPayload.size());
}

void OnWatchError(void* arg, uint64_t, int err) { static_cast<WatchCtx*>(arg)->lastError = err; }

}  // namespace

// watch(oid, ackPayload, timeoutSeconds) -> handle (decimal string)
Napi::Value IoCtx::Watch(const Napi::CallbackInfo& info) {
  auto h = h_;
  std::string oid = StringArg(info, 0, "oid");
  std::string payload = info.Length() > 1 && !info[1].IsUndefined() ? BufferArg(info, 1, "ackPayload") : std::string();
  uint64_t timeout = info.Length() > 2 && !info[2].IsUndefined() ? U64Arg(info, 2, "timeoutSeconds") : 30;
  auto cookie = std::make_shared<uint64_t>(0);
  return Task::Run(
      info.Env(), "rados_watch3",
      [h, oid, payload, timeout, cookie](std::string& detail) -> int {
        IOCTX_GUARD(h);
        detail = oid;
        auto ctx = std::make_unique<WatchCtx>();
        ctx->io = h->io;
        ctx->oid = oid;
        ctx->ackPayload = payload;
        int rc = rados_watch3(h->io, oid.c_str(), cookie.get(), OnNotify, OnWatchError, static_cast<uint32_t>(timeout), ctx.get());
        if (rc < 0) return rc;
        std::lock_guard<std::mutex> lock(h->mu);
        h->watches[*cookie] = std::move(ctx);
        return 0;
      },
      [cookie](Napi::Env env) -> Napi::Value { return Napi::String::New(env, std::to_string(*cookie)); });
}

static uint64_t CookieArg(const Napi::CallbackInfo& info, size_t i) {
  std::string s = StringArg(info, i, "handle");
  char* end = nullptr;
  uint64_t v = std::strtoull(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0') ThrowError(info.Env(), "watch handle", -EINVAL, "not a watch handle: " + s);
  return v;
}

// watchCheck(handle) -> ms since the watch was last confirmed; throws the
// watch's error once it is broken (re-watch then). Never blocks.
Napi::Value IoCtx::WatchCheck(const Napi::CallbackInfo& info) {
  uint64_t cookie = CookieArg(info, 0);
  int rc;
  {
    std::lock_guard<std::mutex> lock(h_->mu);
    auto it = h_->watches.find(cookie);
    if (h_->destroyed || it == h_->watches.end()) ThrowError(info.Env(), "rados_watch_check", -ENOENT);
    rc = it->second->lastError.load();
    if (rc == 0) rc = rados_watch_check(h_->io, cookie);
  }
  if (rc < 0) ThrowError(info.Env(), "rados_watch_check", rc);
  return Napi::Number::New(info.Env(), rc);
}

Napi::Value IoCtx::Unwatch(const Napi::CallbackInfo& info) {
  auto h = h_;
  uint64_t cookie = CookieArg(info, 0);
  return Task::Run(info.Env(), "rados_unwatch2", [h, cookie](std::string&) -> int {
    IOCTX_GUARD(h);
    std::unique_ptr<WatchCtx> ctx;
    {
      std::lock_guard<std::mutex> lock(h->mu);
      auto it = h->watches.find(cookie);
      if (it == h->watches.end()) return -ENOENT;
      ctx = std::move(it->second);
      h->watches.erase(it);
    }
    int rc = rados_unwatch2(h->io, cookie);
    rados_watch_flush(h->cluster->cluster);
    return rc == -ENOTCONN ? 0 : rc;
  });
}

// notify(oid, payload, timeoutMs) -> { acks: [{ notifierId, cookie, payload }],
// timeouts: [{ notifierId, cookie }], timedOut }. Watchers that did not answer
// in time are listed in `timeouts` instead of failing the call.
Napi::Value IoCtx::Notify(const Napi::CallbackInfo& info) {
  auto h = h_;
  std::string oid = StringArg(info, 0, "oid");
  std::string payload = info.Length() > 1 && !info[1].IsUndefined() ? BufferArg(info, 1, "payload") : std::string();
  uint64_t timeoutMs = info.Length() > 2 ? U64Arg(info, 2, "timeoutMs") : 5000;
  struct Out {
    struct Ack {
      uint64_t notifier, cookie;
      std::string payload;
    };
    std::vector<Ack> acks;
    std::vector<std::pair<uint64_t, uint64_t>> timeouts;
    bool timedOut = false;
  };
  auto out = std::make_shared<Out>();
  return Task::Run(
      info.Env(), "rados_notify2",
      [h, oid, payload, timeoutMs, out](std::string& detail) -> int {
        IOCTX_GUARD(h);
        detail = oid;
        char* reply = nullptr;
        size_t replyLen = 0;
        int rc = rados_notify2(h->io, oid.c_str(), payload.data(), static_cast<int>(payload.size()), timeoutMs, &reply, &replyLen);
        if (rc == -ETIMEDOUT) out->timedOut = true;
        if ((rc == 0 || rc == -ETIMEDOUT) && reply) {
          notify_ack_t* acks = nullptr;
          notify_timeout_t* tos = nullptr;
          size_t nAcks = 0, nTos = 0;
          if (rados_decode_notify_response(reply, replyLen, &acks, &nAcks, &tos, &nTos) == 0) {
            for (size_t i = 0; i < nAcks; i++) {
              out->acks.push_back({acks[i].notifier_id, acks[i].cookie, std::string(acks[i].payload ? acks[i].payload : "", acks[i].payload_len)});
            }
            for (size_t i = 0; i < nTos; i++) out->timeouts.emplace_back(tos[i].notifier_id, tos[i].cookie);
            rados_free_notify_response(acks, nAcks, tos);
          }
        }
        rados_buffer_free(reply);
        return rc == -ETIMEDOUT ? 0 : rc;
      },
      [out](Napi::Env env) -> Napi::Value {
        Napi::Object o = Napi::Object::New(env);
        Napi::Array acks = Napi::Array::New(env, out->acks.size());
        for (size_t i = 0; i < out->acks.size(); i++) {
          Napi::Object a = Napi::Object::New(env);
          a.Set("notifierId", Napi::String::New(env, std::to_string(out->acks[i].notifier)));
          a.Set("cookie", Napi::String::New(env, std::to_string(out->acks[i].cookie)));
          a.Set("payload", Napi::Buffer<char>::Copy(env, out->acks[i].payload.data(), out->acks[i].payload.size()));
          acks.Set(i, a);
        }
        Napi::Array tos = Napi::Array::New(env, out->timeouts.size());
        for (size_t i = 0; i < out->timeouts.size(); i++) {
          Napi::Object t = Napi::Object::New(env);
          t.Set("notifierId", Napi::String::New(env, std::to_string(out->timeouts[i].first)));
          t.Set("cookie", Napi::String::New(env, std::to_string(out->timeouts[i].second)));
          tos.Set(i, t);
        }
        o.Set("acks", acks);
        o.Set("timeouts", tos);
        o.Set("timedOut", Napi::Boolean::New(env, out->timedOut));
        return o;
      });
}

}  // namespace corral
