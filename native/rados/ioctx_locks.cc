// IoCtx advisory locks (cls_lock): exclusive/shared with a cookie and an
// optional duration, unlock, break, and the locker list that fencing needs
// (each locker's client name and address).
#include <sys/time.h>

#include <cstring>

#include "classes.h"

namespace corral {

#define IOCTX_GUARD(h)          \
  CallGuard guard((h)->cluster); \
  if (!guard || (h)->destroyed) return -ENOTCONN

namespace {

std::vector<std::string> SplitList(const std::vector<char>& buf, ssize_t count) {
  std::vector<std::string> out;
  size_t i = 0;
  for (ssize_t n = 0; n < count && i < buf.size(); n++) {
    size_t len = strnlen(buf.data() + i, buf.size() - i);
    out.emplace_back(buf.data() + i, len);
    i += len + 1;
  }
  return out;
}

struct LockArgs {
  std::string oid, name, cookie, tag, desc;
  uint64_t durationMs = 0;
  uint8_t flags = 0;
};

// (oid, name, cookie, { description?, durationMs?, mayRenew?, tag? })
LockArgs ParseLockArgs(const Napi::CallbackInfo& info) {
  LockArgs a;
  a.oid = StringArg(info, 0, "oid");
  a.name = StringArg(info, 1, "name");
  a.cookie = StringArg(info, 2, "cookie");
  if (info.Length() > 3 && info[3].IsObject()) {
    Napi::Object o = info[3].As<Napi::Object>();
    if (o.Get("description").IsString()) a.desc = o.Get("description").As<Napi::String>();
    if (o.Get("tag").IsString()) a.tag = o.Get("tag").As<Napi::String>();
    if (o.Get("durationMs").IsNumber()) a.durationMs = o.Get("durationMs").As<Napi::Number>().Int64Value();
    if (o.Get("mayRenew").ToBoolean()) a.flags |= LIBRADOS_LOCK_FLAG_MAY_RENEW;
  }
  return a;
}

int TakeLock(rados_ioctx_t io, const LockArgs& a, bool exclusive) {
  struct timeval tv = {static_cast<time_t>(a.durationMs / 1000), static_cast<suseconds_t>((a.durationMs % 1000) * 1000)};
  struct timeval* duration = a.durationMs ? &tv : nullptr;
  if (exclusive) return rados_lock_exclusive(io, a.oid.c_str(), a.name.c_str(), a.cookie.c_str(), a.desc.c_str(), duration, a.flags);
  return rados_lock_shared(io, a.oid.c_str(), a.name.c_str(), a.cookie.c_str(), a.tag.c_str(), a.desc.c_str(), duration, a.flags);
}

}  // namespace

void SplitLockers(LockerList& out, const std::vector<char>& clients, const std::vector<char>& cookies,
                  const std::vector<char>& addrs, ssize_t count) {
  out.clients = SplitList(clients, count);
  out.cookies = SplitList(cookies, count);
  out.addrs = SplitList(addrs, count);
}

Napi::Value LockersToJs(Napi::Env env, const LockerList& l) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("exclusive", Napi::Boolean::New(env, l.exclusive != 0));
  o.Set("tag", Napi::String::New(env, l.tag));
  size_t n = std::min({l.clients.size(), l.cookies.size(), l.addrs.size()});
  Napi::Array arr = Napi::Array::New(env, n);
  for (size_t i = 0; i < n; i++) {
    Napi::Object e = Napi::Object::New(env);
    e.Set("client", Napi::String::New(env, l.clients[i]));
    e.Set("cookie", Napi::String::New(env, l.cookies[i]));
    e.Set("addr", Napi::String::New(env, l.addrs[i]));
    arr.Set(i, e);
  }
  o.Set("lockers", arr);
  return o;
}

Napi::Value IoCtx::LockExclusive(const Napi::CallbackInfo& info) {
  auto h = h_;
  LockArgs a = ParseLockArgs(info);
  return Task::Run(info.Env(), "rados_lock_exclusive", [h, a](std::string& detail) -> int {
    IOCTX_GUARD(h);
    detail = a.oid + " lock " + a.name;
    return TakeLock(h->io, a, true);
  });
}

Napi::Value IoCtx::LockShared(const Napi::CallbackInfo& info) {
  auto h = h_;
  LockArgs a = ParseLockArgs(info);
  return Task::Run(info.Env(), "rados_lock_shared", [h, a](std::string& detail) -> int {
    IOCTX_GUARD(h);
    detail = a.oid + " lock " + a.name;
    return TakeLock(h->io, a, false);
  });
}

// unlock(oid, name, cookie)
Napi::Value IoCtx::Unlock(const Napi::CallbackInfo& info) {
  auto h = h_;
  std::string oid = StringArg(info, 0, "oid"), name = StringArg(info, 1, "name"), cookie = StringArg(info, 2, "cookie");
  return Task::Run(info.Env(), "rados_unlock", [h, oid, name, cookie](std::string& detail) -> int {
    IOCTX_GUARD(h);
    detail = oid + " lock " + name;
    return rados_unlock(h->io, oid.c_str(), name.c_str(), cookie.c_str());
  });
}

// breakLock(oid, name, client, cookie): only the lock; fence the client first.
Napi::Value IoCtx::BreakLock(const Napi::CallbackInfo& info) {
  auto h = h_;
  std::string oid = StringArg(info, 0, "oid"), name = StringArg(info, 1, "name");
  std::string client = StringArg(info, 2, "client"), cookie = StringArg(info, 3, "cookie");
  return Task::Run(info.Env(), "rados_break_lock", [h, oid, name, client, cookie](std::string& detail) -> int {
    IOCTX_GUARD(h);
    detail = oid + " lock " + name + " held by " + client;
    return rados_break_lock(h->io, oid.c_str(), name.c_str(), client.c_str(), cookie.c_str());
  });
}

// listLockers(oid, name) -> { exclusive, tag, lockers: [{ client, cookie, addr }] }
Napi::Value IoCtx::ListLockers(const Napi::CallbackInfo& info) {
  auto h = h_;
  std::string oid = StringArg(info, 0, "oid"), name = StringArg(info, 1, "name");
  auto out = std::make_shared<LockerList>();
  return Task::Run(
      info.Env(), "rados_list_lockers",
      [h, oid, name, out](std::string& detail) -> int {
        IOCTX_GUARD(h);
        detail = oid + " lock " + name;
        size_t tagLen = 256, clientsLen = 1024, cookiesLen = 1024, addrsLen = 1024;
        for (int attempt = 0; attempt < 5; attempt++) {
          std::vector<char> tag(tagLen), clients(clientsLen), cookies(cookiesLen), addrs(addrsLen);
          ssize_t n = rados_list_lockers(h->io, oid.c_str(), name.c_str(), &out->exclusive, tag.data(), &tagLen, clients.data(),
                                         &clientsLen, cookies.data(), &cookiesLen, addrs.data(), &addrsLen);
          if (n == -ERANGE) continue;
          if (n == -ENOENT) return 0;  // no object: nobody holds the lock
          if (n < 0) return static_cast<int>(n);
          out->tag.assign(tag.data(), strnlen(tag.data(), tag.size()));
          SplitLockers(*out, clients, cookies, addrs, n);
          return 0;
        }
        return -ERANGE;
      },
      [out](Napi::Env env) -> Napi::Value { return LockersToJs(env, *out); });
}

}  // namespace corral
