// Cluster: one librados connection (rados_t) with its configuration,
// pools, monitor commands and blocklisting (fencing).
#include <cstring>

#include "classes.h"

namespace corral {

namespace {

std::vector<std::string> SplitNul(const char* buf, size_t len) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < len && buf[i] != '\0') {
    size_t n = strnlen(buf + i, len - i);
    out.emplace_back(buf + i, n);
    i += n + 1;
  }
  return out;
}

}  // namespace

Napi::Function Cluster::Define(Napi::Env env) {
  return DefineClass(env, "Cluster",
                     {
                         InstanceMethod("connect", &Cluster::Connect),
                         InstanceMethod("instanceId", &Cluster::InstanceId),
                         InstanceMethod("addrs", &Cluster::Addrs),
                         InstanceMethod("fsid", &Cluster::Fsid),
                         InstanceMethod("poolList", &Cluster::PoolList),
                         InstanceMethod("poolCreate", &Cluster::PoolCreate),
                         InstanceMethod("poolLookup", &Cluster::PoolLookup),
                         InstanceMethod("monCommand", &Cluster::MonCommand),
                         InstanceMethod("blocklistAdd", &Cluster::BlocklistAdd),
                         InstanceMethod("waitForLatestOsdmap", &Cluster::WaitForLatestOsdmap),
                         InstanceMethod("openIoCtx", &Cluster::OpenIoCtx),
                         InstanceMethod("shutdown", &Cluster::Shutdown),
                     });
}

// new Cluster({ clientName?, confFile?, options?: { key: value } })
Cluster::Cluster(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Cluster>(info), h_(std::make_shared<ClusterHandle>()) {
  Napi::Env env = info.Env();
  clientName_ = "client.admin";
  if (info.Length() > 0 && info[0].IsObject()) {
    Napi::Object o = info[0].As<Napi::Object>();
    if (o.Has("clientName") && o.Get("clientName").IsString()) clientName_ = o.Get("clientName").As<Napi::String>();
    if (o.Has("confFile") && o.Get("confFile").IsString()) confFile_ = o.Get("confFile").As<Napi::String>();
    if (o.Has("options") && o.Get("options").IsObject()) {
      Napi::Object opts = o.Get("options").As<Napi::Object>();
      Napi::Array keys = opts.GetPropertyNames();
      for (uint32_t i = 0; i < keys.Length(); i++) {
        Napi::Value k = keys.Get(i);
        Napi::Value v = opts.Get(k);
        if (!v.IsString()) ThrowError(env, "Cluster", -EINVAL, "option values must be strings");
        options_.emplace_back(k.ToString().Utf8Value(), v.As<Napi::String>().Utf8Value());
      }
    }
  }
}

Napi::Value Cluster::Connect(const Napi::CallbackInfo& info) {
  auto h = h_;
  auto name = clientName_;
  auto conf = confFile_;
  auto options = options_;
  return Task::Run(info.Env(), "rados_connect", [h, name, conf, options](std::string& detail) -> int {
    if (!h->Enter()) return -ESHUTDOWN;
    struct Leave {
      ClusterHandle* c;
      ~Leave() { c->Leave(); }
    } leave{h.get()};
    if (h->connected) return -EISCONN;
    rados_t c = nullptr;
    int rc = rados_create2(&c, "ceph", name.c_str(), 0);
    if (rc < 0) {
      detail = "rados_create2 as " + name;
      return rc;
    }
    rc = rados_conf_read_file(c, conf.empty() ? nullptr : conf.c_str());
    if (rc < 0) detail = "reading " + (conf.empty() ? std::string("the default ceph.conf") : conf);
    for (size_t i = 0; rc >= 0 && i < options.size(); i++) {
      rc = rados_conf_set(c, options[i].first.c_str(), options[i].second.c_str());
      if (rc < 0) detail = "setting option " + options[i].first;
    }
    if (rc >= 0) {
      rc = rados_connect(c);
      if (rc < 0) detail = "connecting as " + name;
    }
    if (rc < 0) {
      rados_shutdown(c);
      return rc;
    }
    h->cluster = c;
    h->connected = true;
    return 0;
  });
}

Napi::Value Cluster::InstanceId(const Napi::CallbackInfo& info) {
  if (!h_->connected) ThrowError(info.Env(), "rados_get_instance_id", -ENOTCONN);
  return Napi::Number::New(info.Env(), static_cast<double>(rados_get_instance_id(h_->cluster)));
}

Napi::Value Cluster::Addrs(const Napi::CallbackInfo& info) {
  if (!h_->connected) ThrowError(info.Env(), "rados_getaddrs", -ENOTCONN);
  char* addrs = nullptr;
  int rc = rados_getaddrs(h_->cluster, &addrs);
  if (rc < 0) ThrowError(info.Env(), "rados_getaddrs", rc);
  std::string s(addrs ? addrs : "");
  rados_buffer_free(addrs);
  return Napi::String::New(info.Env(), s);
}

Napi::Value Cluster::Fsid(const Napi::CallbackInfo& info) {
  if (!h_->connected) ThrowError(info.Env(), "rados_cluster_fsid", -ENOTCONN);
  char buf[64] = {0};
  int rc = rados_cluster_fsid(h_->cluster, buf, sizeof(buf));
  if (rc < 0) ThrowError(info.Env(), "rados_cluster_fsid", rc);
  return Napi::String::New(info.Env(), buf);
}

Napi::Value Cluster::PoolList(const Napi::CallbackInfo& info) {
  auto h = h_;
  auto buf = std::make_shared<std::vector<char>>();
  return Task::Run(
      info.Env(), "rados_pool_list",
      [h, buf](std::string&) -> int {
        CallGuard g(h);
        if (!g) return -ENOTCONN;
        size_t len = 4096;
        for (;;) {
          buf->assign(len, '\0');
          int rc = rados_pool_list(h->cluster, buf->data(), len);
          if (rc < 0) return rc;
          if (static_cast<size_t>(rc) <= len) return 0;
          len = rc;
        }
      },
      [buf](Napi::Env env) -> Napi::Value {
        auto names = SplitNul(buf->data(), buf->size());
        Napi::Array out = Napi::Array::New(env, names.size());
        for (size_t i = 0; i < names.size(); i++) out.Set(i, Napi::String::New(env, names[i]));
        return out;
      });
}

Napi::Value Cluster::PoolCreate(const Napi::CallbackInfo& info) {
  auto h = h_;
  std::string pool = StringArg(info, 0, "pool");
  return Task::Run(info.Env(), "rados_pool_create", [h, pool](std::string& detail) -> int {
    CallGuard g(h);
    if (!g) return -ENOTCONN;
    detail = pool;
    return rados_pool_create(h->cluster, pool.c_str());
  });
}

Napi::Value Cluster::PoolLookup(const Napi::CallbackInfo& info) {
  auto h = h_;
  std::string pool = StringArg(info, 0, "pool");
  auto id = std::make_shared<int64_t>(0);
  return Task::Run(
      info.Env(), "rados_pool_lookup",
      [h, pool, id](std::string& detail) -> int {
        CallGuard g(h);
        if (!g) return -ENOTCONN;
        detail = pool;
        int64_t r = rados_pool_lookup(h->cluster, pool.c_str());
        if (r < 0) return static_cast<int>(r);
        *id = r;
        return 0;
      },
      [id](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, static_cast<double>(*id)); });
}

// monCommand(jsonCommand, input?) -> { outbuf: Buffer, outs: string }
Napi::Value Cluster::MonCommand(const Napi::CallbackInfo& info) {
  auto h = h_;
  std::string cmd = StringArg(info, 0, "command");
  std::string input = info.Length() > 1 && !info[1].IsUndefined() ? BufferArg(info, 1, "input") : std::string();
  struct Out {
    std::string outbuf, outs;
  };
  auto out = std::make_shared<Out>();
  return Task::Run(
      info.Env(), "rados_mon_command",
      [h, cmd, input, out](std::string& detail) -> int {
        CallGuard g(h);
        if (!g) return -ENOTCONN;
        const char* cmds[] = {cmd.c_str()};
        char *outbuf = nullptr, *outs = nullptr;
        size_t outbufLen = 0, outsLen = 0;
        int rc = rados_mon_command(h->cluster, cmds, 1, input.data(), input.size(), &outbuf, &outbufLen, &outs, &outsLen);
        if (outbuf) out->outbuf.assign(outbuf, outbufLen);
        if (outs) out->outs.assign(outs, outsLen);
        rados_buffer_free(outbuf);
        rados_buffer_free(outs);
        if (rc < 0) detail = out->outs.empty() ? cmd : out->outs;
        return rc;
      },
      [out](Napi::Env env) -> Napi::Value {
        Napi::Object o = Napi::Object::New(env);
        o.Set("outbuf", Napi::Buffer<char>::Copy(env, out->outbuf.data(), out->outbuf.size()));
        o.Set("outs", Napi::String::New(env, out->outs));
        return o;
      });
}

// blocklistAdd(addr, expireSeconds): fences a client; librados waits for the
// osdmap that carries the entry, so later writes by others are safe.
Napi::Value Cluster::BlocklistAdd(const Napi::CallbackInfo& info) {
  auto h = h_;
  std::string addr = StringArg(info, 0, "addr");
  uint64_t expire = U64Arg(info, 1, "expireSeconds");
  if (expire > UINT32_MAX) ThrowError(info.Env(), "rados_blocklist_add", -EINVAL, "expireSeconds too large");
  return Task::Run(info.Env(), "rados_blocklist_add", [h, addr, expire](std::string& detail) -> int {
    CallGuard g(h);
    if (!g) return -ENOTCONN;
    detail = addr;
    std::vector<char> a(addr.begin(), addr.end());
    a.push_back('\0');
    return rados_blocklist_add(h->cluster, a.data(), static_cast<uint32_t>(expire));
  });
}

Napi::Value Cluster::WaitForLatestOsdmap(const Napi::CallbackInfo& info) {
  auto h = h_;
  return Task::Run(info.Env(), "rados_wait_for_latest_osdmap", [h](std::string&) -> int {
    CallGuard g(h);
    if (!g) return -ENOTCONN;
    return rados_wait_for_latest_osdmap(h->cluster);
  });
}

Napi::Value Cluster::OpenIoCtx(const Napi::CallbackInfo& info) {
  auto h = h_;
  std::string pool = StringArg(info, 0, "pool");
  auto handle = std::make_shared<IoCtxHandle>();
  handle->cluster = h;
  handle->pool = pool;
  return Task::Run(
      info.Env(), "rados_ioctx_create",
      [h, pool, handle](std::string& detail) -> int {
        CallGuard g(h);
        if (!g) return -ENOTCONN;
        detail = pool;
        rados_ioctx_t io = nullptr;
        int rc = rados_ioctx_create(h->cluster, pool.c_str(), &io);
        if (rc < 0) return rc;
        handle->io = io;
        std::lock_guard<std::mutex> lock(h->mu);
        h->ioctxs.push_back(handle);
        return 0;
      },
      [handle](Napi::Env env) -> Napi::Value { return IoCtx::New(env, handle); });
}

Napi::Value Cluster::Shutdown(const Napi::CallbackInfo& info) {
  auto h = h_;
  return Task::Run(info.Env(), "rados_shutdown", [h](std::string&) -> int {
    h->Shutdown();
    return 0;
  });
}

}  // namespace corral
