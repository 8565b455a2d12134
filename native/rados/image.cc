// RBD: pool-level image calls on IoCtx (create with features, list, remove,
// open) and the Image class (info, resize, snapshots, locks, I/O, close).
#include <cstring>

#include "classes.h"

namespace corral {

#define IOCTX_GUARD(h)          \
  CallGuard guard((h)->cluster); \
  if (!guard || (h)->destroyed) return -ENOTCONN

// Holds the cluster guard and the image's shared lock for one call.
#define IMAGE_GUARD(h)                                  \
  CallGuard guard((h)->ioctx->cluster);                 \
  if (!guard) return -ENOTCONN;                         \
  std::shared_lock<std::shared_mutex> imageLock((h)->mu); \
  if ((h)->closed) return -EBADF

// rbdList() -> names
Napi::Value IoCtx::RbdList(const Napi::CallbackInfo& info) {
  auto h = h_;
  auto names = std::make_shared<std::vector<std::string>>();
  return Task::Run(
      info.Env(), "rbd_list2",
      [h, names](std::string&) -> int {
        IOCTX_GUARD(h);
        size_t max = 64;
        for (;;) {
          std::vector<rbd_image_spec_t> specs(max);
          int rc = rbd_list2(h->io, specs.data(), &max);
          if (rc == -ERANGE) continue;
          if (rc < 0) return rc;
          for (size_t i = 0; i < max; i++) names->emplace_back(specs[i].name);
          rbd_image_spec_list_cleanup(specs.data(), max);
          return 0;
        }
      },
      [names](Napi::Env env) -> Napi::Value {
        Napi::Array arr = Napi::Array::New(env, names->size());
        for (size_t i = 0; i < names->size(); i++) arr.Set(i, Napi::String::New(env, (*names)[i]));
        return arr;
      });
}

// rbdCreate(name, sizeBytes, { features?: bitmask, order? })
Napi::Value IoCtx::RbdCreate(const Napi::CallbackInfo& info) {
  auto h = h_;
  std::string name = StringArg(info, 0, "name");
  uint64_t size = U64Arg(info, 1, "size");
  int64_t features = -1, order = -1;
  if (info.Length() > 2 && info[2].IsObject()) {
    Napi::Object o = info[2].As<Napi::Object>();
    if (o.Get("features").IsNumber()) features = o.Get("features").As<Napi::Number>().Int64Value();
    if (o.Get("order").IsNumber()) order = o.Get("order").As<Napi::Number>().Int64Value();
  }
  return Task::Run(info.Env(), "rbd_create4", [h, name, size, features, order](std::string& detail) -> int {
    IOCTX_GUARD(h);
    detail = h->pool + "/" + name;
    rbd_image_options_t opts;
    rbd_image_options_create(&opts);
    rbd_image_options_set_uint64(opts, RBD_IMAGE_OPTION_FORMAT, 2);
    if (features >= 0) rbd_image_options_set_uint64(opts, RBD_IMAGE_OPTION_FEATURES, static_cast<uint64_t>(features));
    if (order >= 0) rbd_image_options_set_uint64(opts, RBD_IMAGE_OPTION_ORDER, static_cast<uint64_t>(order));
    int rc = rbd_create4(h->io, name.c_str(), size, opts);
    rbd_image_options_destroy(opts);
    return rc;
  });
}

Napi::Value IoCtx::RbdRemove(const Napi::CallbackInfo& info) {
  auto h = h_;
  std::string name = StringArg(info, 0, "name");
  return Task::Run(info.Env(), "rbd_remove", [h, name](std::string& detail) -> int {
    IOCTX_GUARD(h);
    detail = h->pool + "/" + name;
    return rbd_remove(h->io, name.c_str());
  });
}

// rbdOpen(name, snapName?) -> Image
Napi::Value IoCtx::RbdOpen(const Napi::CallbackInfo& info) {
  auto h = h_;
  std::string name = StringArg(info, 0, "name");
  std::string snap = info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : std::string();
  auto img = std::make_shared<ImageHandle>();
  img->ioctx = h;
  img->name = name;
  return Task::Run(
      info.Env(), "rbd_open",
      [h, name, snap, img](std::string& detail) -> int {
        IOCTX_GUARD(h);
        detail = h->pool + "/" + name;
        int rc = rbd_open(h->io, name.c_str(), &img->image, snap.empty() ? nullptr : snap.c_str());
        if (rc < 0) {
          img->closed = true;
          return rc;
        }
        std::lock_guard<std::mutex> lock(h->mu);
        h->images.push_back(img);
        return 0;
      },
      [img](Napi::Env env) -> Napi::Value { return Image::New(env, img); });
}

Napi::Function Image::Define(Napi::Env env) {
  return DefineClass(env, "Image",
                     {
                         InstanceMethod("info", &Image::Info),
                         InstanceMethod("resize", &Image::Resize),
                         InstanceMethod("snapCreate", &Image::SnapCreate),
                         InstanceMethod("snapList", &Image::SnapList),
                         InstanceMethod("snapRollback", &Image::SnapRollback),
                         InstanceMethod("snapRemove", &Image::SnapRemove),
                         InstanceMethod("listLockers", &Image::ListLockers),
                         InstanceMethod("watchers", &Image::Watchers),
                         InstanceMethod("lockExclusive", &Image::LockExclusive),
                         InstanceMethod("unlock", &Image::Unlock),
                         InstanceMethod("breakLock", &Image::BreakLock),
                         InstanceMethod("lockGetOwners", &Image::LockGetOwners),
                         InstanceMethod("lockBreak", &Image::LockBreak),
                         InstanceMethod("readAt", &Image::ReadAt),
                         InstanceMethod("writeAt", &Image::WriteAt),
                         InstanceMethod("flush", &Image::Flush),
                         InstanceMethod("close", &Image::Close),
                     });
}

Napi::Object Image::New(Napi::Env env, std::shared_ptr<ImageHandle> h) {
  auto* boxed = new std::shared_ptr<ImageHandle>(std::move(h));
  auto ext = Napi::External<std::shared_ptr<ImageHandle>>::New(env, boxed,
                                                                [](Napi::Env, std::shared_ptr<ImageHandle>* p) { delete p; });
  return Data(env)->imageCtor.New({ext});
}

Image::Image(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Image>(info) {
  if (info.Length() < 1 || !info[0].IsExternal()) ThrowError(info.Env(), "Image", -EINVAL, "use IoCtx.rbdOpen()");
  h_ = *info[0].As<Napi::External<std::shared_ptr<ImageHandle>>>().Data();
}

// A call on the image with no result beyond success.
static Napi::Value ImageCall(Napi::Env env, const std::shared_ptr<ImageHandle>& h, const char* op,
                             std::function<int(rbd_image_t)> call) {
  return Task::Run(env, op, [h, call](std::string& detail) -> int {
    IMAGE_GUARD(h);
    detail = h->ioctx->pool + "/" + h->name;
    return call(h->image);
  });
}

// info() -> { size, objSize, numObjs, order, blockNamePrefix, features }
Napi::Value Image::Info(const Napi::CallbackInfo& info) {
  auto h = h_;
  struct Out {
    rbd_image_info_t st{};
    uint64_t features = 0;
  };
  auto out = std::make_shared<Out>();
  return Task::Run(
      info.Env(), "rbd_stat",
      [h, out](std::string& detail) -> int {
        IMAGE_GUARD(h);
        detail = h->ioctx->pool + "/" + h->name;
        int rc = rbd_stat(h->image, &out->st, sizeof(out->st));
        if (rc >= 0) rc = rbd_get_features(h->image, &out->features);
        return rc;
      },
      [out](Napi::Env env) -> Napi::Value {
        Napi::Object o = Napi::Object::New(env);
        o.Set("size", Napi::Number::New(env, static_cast<double>(out->st.size)));
        o.Set("objSize", Napi::Number::New(env, static_cast<double>(out->st.obj_size)));
        o.Set("numObjs", Napi::Number::New(env, static_cast<double>(out->st.num_objs)));
        o.Set("order", Napi::Number::New(env, out->st.order));
        o.Set("blockNamePrefix", Napi::String::New(env, out->st.block_name_prefix));
        o.Set("features", Napi::Number::New(env, static_cast<double>(out->features)));
        return o;
      });
}

Napi::Value Image::Resize(const Napi::CallbackInfo& info) {
  uint64_t size = U64Arg(info, 0, "size");
  return ImageCall(info.Env(), h_, "rbd_resize", [size](rbd_image_t img) { return rbd_resize(img, size); });
}

Napi::Value Image::SnapCreate(const Napi::CallbackInfo& info) {
  std::string snap = StringArg(info, 0, "snapName");
  return ImageCall(info.Env(), h_, "rbd_snap_create", [snap](rbd_image_t img) { return rbd_snap_create(img, snap.c_str()); });
}

Napi::Value Image::SnapRollback(const Napi::CallbackInfo& info) {
  std::string snap = StringArg(info, 0, "snapName");
  return ImageCall(info.Env(), h_, "rbd_snap_rollback", [snap](rbd_image_t img) { return rbd_snap_rollback(img, snap.c_str()); });
}

Napi::Value Image::SnapRemove(const Napi::CallbackInfo& info) {
  std::string snap = StringArg(info, 0, "snapName");
  return ImageCall(info.Env(), h_, "rbd_snap_remove", [snap](rbd_image_t img) { return rbd_snap_remove(img, snap.c_str()); });
}

// snapList() -> [{ id, name, size }]
Napi::Value Image::SnapList(const Napi::CallbackInfo& info) {
  auto h = h_;
  struct Snap {
    uint64_t id, size;
    std::string name;
  };
  auto out = std::make_shared<std::vector<Snap>>();
  return Task::Run(
      info.Env(), "rbd_snap_list",
      [h, out](std::string&) -> int {
        IMAGE_GUARD(h);
        int max = 16;
        for (;;) {
          std::vector<rbd_snap_info_t> snaps(max + 1);
          int n = rbd_snap_list(h->image, snaps.data(), &max);
          if (n == -ERANGE) continue;
          if (n < 0) return n;
          for (int i = 0; i < n; i++) out->push_back({snaps[i].id, snaps[i].size, snaps[i].name});
          rbd_snap_list_end(snaps.data());
          return 0;
        }
      },
      [out](Napi::Env env) -> Napi::Value {
        Napi::Array arr = Napi::Array::New(env, out->size());
        for (size_t i = 0; i < out->size(); i++) {
          Napi::Object o = Napi::Object::New(env);
          o.Set("id", Napi::Number::New(env, static_cast<double>((*out)[i].id)));
          o.Set("name", Napi::String::New(env, (*out)[i].name));
          o.Set("size", Napi::Number::New(env, static_cast<double>((*out)[i].size)));
          arr.Set(i, o);
        }
        return arr;
      });
}

// listLockers() -> { exclusive, tag, lockers: [{ client, cookie, addr }] }:
// the header lock, which librbd's exclusive-lock feature also uses.
Napi::Value Image::ListLockers(const Napi::CallbackInfo& info) {
  auto h = h_;
  auto out = std::make_shared<LockerList>();
  return Task::Run(
      info.Env(), "rbd_list_lockers",
      [h, out](std::string&) -> int {
        IMAGE_GUARD(h);
        size_t tagLen = 256, clientsLen = 1024, cookiesLen = 1024, addrsLen = 1024;
        for (int attempt = 0; attempt < 5; attempt++) {
          std::vector<char> tag(tagLen), clients(clientsLen), cookies(cookiesLen), addrs(addrsLen);
          ssize_t n = rbd_list_lockers(h->image, &out->exclusive, tag.data(), &tagLen, clients.data(), &clientsLen, cookies.data(),
                                       &cookiesLen, addrs.data(), &addrsLen);
          if (n == -ERANGE) continue;
          if (n < 0) return static_cast<int>(n);
          out->tag.assign(tag.data(), strnlen(tag.data(), tag.size()));
          SplitLockers(*out, clients, cookies, addrs, n);
          return 0;
        }
        return -ERANGE;
      },
      [out](Napi::Env env) -> Napi::Value { return LockersToJs(env, *out); });
}

// watchers() -> [{ addr, id, cookie }]: every client with the image open
// (each librbd opener watches the header), so fencing can find data paths
// that have not written yet.
Napi::Value Image::Watchers(const Napi::CallbackInfo& info) {
  auto h = h_;
  struct W {
    std::string addr;
    int64_t id;
    uint64_t cookie;
  };
  auto out = std::make_shared<std::vector<W>>();
  return Task::Run(
      info.Env(), "rbd_watchers_list",
      [h, out](std::string&) -> int {
        IMAGE_GUARD(h);
        size_t max = 16;
        for (;;) {
          std::vector<rbd_image_watcher_t> ws(max);
          int rc = rbd_watchers_list(h->image, ws.data(), &max);
          if (rc == -ERANGE) continue;
          if (rc < 0) return rc;
          for (size_t i = 0; i < max; i++) out->push_back({ws[i].addr ? ws[i].addr : "", ws[i].id, ws[i].cookie});
          rbd_watchers_list_cleanup(ws.data(), max);
          return 0;
        }
      },
      [out](Napi::Env env) -> Napi::Value {
        Napi::Array arr = Napi::Array::New(env, out->size());
        for (size_t i = 0; i < out->size(); i++) {
          Napi::Object o = Napi::Object::New(env);
          o.Set("addr", Napi::String::New(env, (*out)[i].addr));
          o.Set("id", Napi::Number::New(env, static_cast<double>((*out)[i].id)));
          o.Set("cookie", Napi::String::New(env, std::to_string((*out)[i].cookie)));
          arr.Set(i, o);
        }
        return arr;
      });
}

Napi::Value Image::LockExclusive(const Napi::CallbackInfo& info) {
  std::string cookie = StringArg(info, 0, "cookie");
  return ImageCall(info.Env(), h_, "rbd_lock_exclusive", [cookie](rbd_image_t img) { return rbd_lock_exclusive(img, cookie.c_str()); });
}

Napi::Value Image::Unlock(const Napi::CallbackInfo& info) {
  std::string cookie = StringArg(info, 0, "cookie");
  return ImageCall(info.Env(), h_, "rbd_unlock", [cookie](rbd_image_t img) { return rbd_unlock(img, cookie.c_str()); });
}

// breakLock(client, cookie): librbd blocklists the holder first when
// rbd_blocklist_on_break_lock is set (the default).
Napi::Value Image::BreakLock(const Napi::CallbackInfo& info) {
  std::string client = StringArg(info, 0, "client"), cookie = StringArg(info, 1, "cookie");
  return ImageCall(info.Env(), h_, "rbd_break_lock",
                   [client, cookie](rbd_image_t img) { return rbd_break_lock(img, client.c_str(), cookie.c_str()); });
}

// lockGetOwners() -> { mode: 'exclusive'|'shared', owners: string[] } of the
// managed exclusive lock; empty owners when nobody holds it.
Napi::Value Image::LockGetOwners(const Napi::CallbackInfo& info) {
  auto h = h_;
  struct Out {
    rbd_lock_mode_t mode = RBD_LOCK_MODE_EXCLUSIVE;
    std::vector<std::string> owners;
  };
  auto out = std::make_shared<Out>();
  return Task::Run(
      info.Env(), "rbd_lock_get_owners",
      [h, out](std::string&) -> int {
        IMAGE_GUARD(h);
        size_t max = 8;
        std::vector<char*> owners(max, nullptr);
        int rc = rbd_lock_get_owners(h->image, &out->mode, owners.data(), &max);
        if (rc == -ENOENT) return 0;
        if (rc < 0) return rc;
        for (size_t i = 0; i < max; i++) out->owners.emplace_back(owners[i]);
        rbd_lock_get_owners_cleanup(owners.data(), max);
        return 0;
      },
      [out](Napi::Env env) -> Napi::Value {
        Napi::Object o = Napi::Object::New(env);
        o.Set("mode", Napi::String::New(env, out->mode == RBD_LOCK_MODE_SHARED ? "shared" : "exclusive"));
        Napi::Array arr = Napi::Array::New(env, out->owners.size());
        for (size_t i = 0; i < out->owners.size(); i++) arr.Set(i, Napi::String::New(env, out->owners[i]));
        o.Set("owners", arr);
        return o;
      });
}

// lockBreak(mode, owner): breaks the managed lock, blocklisting its owner.
Napi::Value Image::LockBreak(const Napi::CallbackInfo& info) {
  std::string mode = StringArg(info, 0, "mode"), owner = StringArg(info, 1, "owner");
  if (mode != "exclusive" && mode != "shared") ThrowError(info.Env(), "rbd_lock_break", -EINVAL, "mode must be exclusive or shared");
  rbd_lock_mode_t m = mode == "shared" ? RBD_LOCK_MODE_SHARED : RBD_LOCK_MODE_EXCLUSIVE;
  return ImageCall(info.Env(), h_, "rbd_lock_break", [m, owner](rbd_image_t img) { return rbd_lock_break(img, m, owner.c_str()); });
}

// readAt(offset, length) -> Buffer
Napi::Value Image::ReadAt(const Napi::CallbackInfo& info) {
  auto h = h_;
  uint64_t off = U64Arg(info, 0, "offset"), len = U64Arg(info, 1, "length");
  if (len > (256u << 20)) ThrowError(info.Env(), "rbd_read", -EINVAL, "length above 256 MiB");
  auto buf = std::make_shared<std::string>();
  return Task::Run(
      info.Env(), "rbd_read",
      [h, off, len, buf](std::string&) -> int {
        IMAGE_GUARD(h);
        buf->resize(len);
        ssize_t n = rbd_read(h->image, off, len, buf->data());
        if (n < 0) return static_cast<int>(n);
        buf->resize(n);
        return 0;
      },
      [buf](Napi::Env env) -> Napi::Value { return Napi::Buffer<char>::Copy(env, buf->data(), buf->size()); });
}

Napi::Value Image::WriteAt(const Napi::CallbackInfo& info) {
  uint64_t off = U64Arg(info, 0, "offset");
  auto data = std::make_shared<std::string>(BufferArg(info, 1, "data"));
  return ImageCall(info.Env(), h_, "rbd_write", [off, data](rbd_image_t img) {
    ssize_t n = rbd_write(img, off, data->size(), data->data());
    return n < 0 ? static_cast<int>(n) : 0;
  });
}

Napi::Value Image::Flush(const Napi::CallbackInfo& info) {
  return ImageCall(info.Env(), h_, "rbd_flush", [](rbd_image_t img) { return rbd_flush(img); });
}

Napi::Value Image::Close(const Napi::CallbackInfo& info) {
  auto h = h_;
  return Task::Run(info.Env(), "rbd_close", [h](std::string&) -> int { return h->Close(); });
}

}  // namespace corral
