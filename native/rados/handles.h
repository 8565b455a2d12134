// Native lifetimes of a cluster connection, its pool contexts and open images.
//
// JS objects hold shared_ptrs to these handles and every queued task captures
// one too, so a handle outlives the calls running on it. Shutting the cluster
// down waits for in-flight calls, then closes images, watches and pool
// contexts in that order before rados_shutdown: librados must never see a
// call on a destroyed context.
#pragma once
#include <rados/librados.h>
#include <rbd/librbd.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

namespace corral {

struct IoCtxHandle;
struct ImageHandle;

struct ClusterHandle {
  rados_t cluster = nullptr;
  std::atomic<bool> connected{false};
  bool closing = false;
  int inflight = 0;
  std::mutex mu;
  std::condition_variable idle;
  std::vector<std::weak_ptr<IoCtxHandle>> ioctxs;

  // Registers a call; false once shutdown has begun (the caller returns -ESHUTDOWN).
  bool Enter();
  void Leave();
  // Waits for in-flight calls, releases every context, shuts librados down.
  void Shutdown();
  ~ClusterHandle();
};

// RAII registration of one call on a cluster.
class CallGuard {
 public:
  explicit CallGuard(const std::shared_ptr<ClusterHandle>& c) : c_(c), entered_(c->Enter()) {}
  ~CallGuard() {
    if (entered_) c_->Leave();
  }
  CallGuard(const CallGuard&) = delete;
  CallGuard& operator=(const CallGuard&) = delete;
  // True when the call may proceed: registered and connected.
  explicit operator bool() const { return entered_ && c_->connected.load(); }

 private:
  std::shared_ptr<ClusterHandle> c_;
  bool entered_;
};

// Context of a watch: what the native callback needs to acknowledge notifies
// without a trip through JS (a liveness probe must not wait on the event loop).
struct WatchCtx {
  rados_ioctx_t io = nullptr;
  std::string oid;
  std::string ackPayload;
  std::atomic<int> lastError{0};
};

struct IoCtxHandle {
  std::shared_ptr<ClusterHandle> cluster;
  rados_ioctx_t io = nullptr;
  std::string pool;
  std::mutex mu;  // guards watches, images and destroyed
  bool destroyed = false;
  std::map<uint64_t, std::unique_ptr<WatchCtx>> watches;
  std::vector<std::weak_ptr<ImageHandle>> images;

  // Closes images and watches and destroys the context (idempotent).
  void Release();
  ~IoCtxHandle();
};

struct ImageHandle {
  std::shared_ptr<IoCtxHandle> ioctx;
  rbd_image_t image = nullptr;
  std::string name;
  std::shared_mutex mu;  // calls share it; close takes it exclusively
  bool closed = false;

  int Close();
  ~ImageHandle();
};

}  // namespace corral
