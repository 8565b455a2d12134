// The JS classes of the addon: Cluster (a librados connection), IoCtx (a pool
// context: objects, omap, xattrs, locks, watch/notify, rbd pool operations)
// and Image (an open rbd image). Methods are spread over several .cc files by
// topic; each returns a Promise unless it cannot block.
#pragma once
#include <napi.h>

#include <memory>

#include "async.h"
#include "handles.h"

namespace corral {

class Cluster : public Napi::ObjectWrap<Cluster> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit Cluster(const Napi::CallbackInfo& info);

 private:
  Napi::Value Connect(const Napi::CallbackInfo& info);
  Napi::Value InstanceId(const Napi::CallbackInfo& info);
  Napi::Value Addrs(const Napi::CallbackInfo& info);
  Napi::Value Fsid(const Napi::CallbackInfo& info);
  Napi::Value PoolList(const Napi::CallbackInfo& info);
  Napi::Value PoolCreate(const Napi::CallbackInfo& info);
  Napi::Value PoolLookup(const Napi::CallbackInfo& info);
  Napi::Value MonCommand(const Napi::CallbackInfo& info);
  Napi::Value BlocklistAdd(const Napi::CallbackInfo& info);
  Napi::Value WaitForLatestOsdmap(const Napi::CallbackInfo& info);
  Napi::Value OpenIoCtx(const Napi::CallbackInfo& info);
  Napi::Value Shutdown(const Napi::CallbackInfo& info);

  std::shared_ptr<ClusterHandle> h_;
  std::string clientName_;
  std::string confFile_;
  std::vector<std::pair<std::string, std::string>> options_;
};

class IoCtx : public Napi::ObjectWrap<IoCtx> {
 public:
  static Napi::Function Define(Napi::Env env);
  static Napi::Object New(Napi::Env env, std::shared_ptr<IoCtxHandle> h);
  explicit IoCtx(const Napi::CallbackInfo& info);

 private:
  // ioctx.cc: objects, xattrs, watch/notify
  Napi::Value Read(const Napi::CallbackInfo& info);
  Napi::Value Write(const Napi::CallbackInfo& info);
  Napi::Value WriteFull(const Napi::CallbackInfo& info);
  Napi::Value Remove(const Napi::CallbackInfo& info);
  Napi::Value Stat(const Napi::CallbackInfo& info);
  Napi::Value GetXattr(const Napi::CallbackInfo& info);
  Napi::Value SetXattr(const Napi::CallbackInfo& info);
  Napi::Value RmXattr(const Napi::CallbackInfo& info);
  Napi::Value ListXattrs(const Napi::CallbackInfo& info);
  Napi::Value Watch(const Napi::CallbackInfo& info);
  Napi::Value WatchCheck(const Napi::CallbackInfo& info);
  Napi::Value Unwatch(const Napi::CallbackInfo& info);
  Napi::Value Notify(const Napi::CallbackInfo& info);
  // ioctx_omap.cc: omap reads and compound write operations
  Napi::Value OmapGet(const Napi::CallbackInfo& info);
  Napi::Value OmapGetKeys(const Napi::CallbackInfo& info);
  Napi::Value WriteOp(const Napi::CallbackInfo& info);
  // ioctx_locks.cc: advisory locks and fencing-related listing
  Napi::Value LockExclusive(const Napi::CallbackInfo& info);
  Napi::Value LockShared(const Napi::CallbackInfo& info);
  Napi::Value Unlock(const Napi::CallbackInfo& info);
  Napi::Value BreakLock(const Napi::CallbackInfo& info);
  Napi::Value ListLockers(const Napi::CallbackInfo& info);
  // image.cc: rbd pool-level calls
  Napi::Value RbdList(const Napi::CallbackInfo& info);
  Napi::Value RbdCreate(const Napi::CallbackInfo& info);
  Napi::Value RbdRemove(const Napi::CallbackInfo& info);
  Napi::Value RbdOpen(const Napi::CallbackInfo& info);

  std::shared_ptr<IoCtxHandle> h_;
};

class Image : public Napi::ObjectWrap<Image> {
 public:
  static Napi::Function Define(Napi::Env env);
  static Napi::Object New(Napi::Env env, std::shared_ptr<ImageHandle> h);
  explicit Image(const Napi::CallbackInfo& info);

 private:
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value Resize(const Napi::CallbackInfo& info);
  Napi::Value SnapCreate(const Napi::CallbackInfo& info);
  Napi::Value SnapList(const Napi::CallbackInfo& info);
  Napi::Value SnapRollback(const Napi::CallbackInfo& info);
  Napi::Value SnapRemove(const Napi::CallbackInfo& info);
  Napi::Value ListLockers(const Napi::CallbackInfo& info);
  Napi::Value Watchers(const Napi::CallbackInfo& info);
  Napi::Value LockExclusive(const Napi::CallbackInfo& info);
  Napi::Value Unlock(const Napi::CallbackInfo& info);
  Napi::Value BreakLock(const Napi::CallbackInfo& info);
  Napi::Value LockGetOwners(const Napi::CallbackInfo& info);
  Napi::Value LockBreak(const Napi::CallbackInfo& info);
  Napi::Value ReadAt(const Napi::CallbackInfo& info);
  Napi::Value WriteAt(const Napi::CallbackInfo& info);
  Napi::Value Flush(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  std::shared_ptr<ImageHandle> h_;
};

// Lockers as returned by rados_list_lockers/rbd_list_lockers, parsed from
// their NUL-separated buffers.
struct LockerList {
  int exclusive = 0;
  std::string tag;
  std::vector<std::string> clients, cookies, addrs;
};
Napi::Value LockersToJs(Napi::Env env, const LockerList& l);
// Fills `out` from the three NUL-separated lists; returns the count parsed.
void SplitLockers(LockerList& out, const std::vector<char>& clients, const std::vector<char>& cookies,
                  const std::vector<char>& addrs, ssize_t count);

}  // namespace corral
