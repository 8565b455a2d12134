// Ordered release of librados/librbd resources (see handles.h).
#include "handles.h"

#include <cerrno>

namespace corral {

bool ClusterHandle::Enter() {
  std::lock_guard<std::mutex> lock(mu);
  if (closing) return false;
  inflight++;
  return true;
}

void ClusterHandle::Leave() {
  std::lock_guard<std::mutex> lock(mu);
  if (--inflight == 0) idle.notify_all();
}

void ClusterHandle::Shutdown() {
  std::vector<std::shared_ptr<IoCtxHandle>> live;
  {
    std::unique_lock<std::mutex> lock(mu);
    if (closing) return;
    closing = true;
    idle.wait(lock, [this] { return inflight == 0; });
    for (auto& w : ioctxs) {
      if (auto h = w.lock()) live.push_back(h);
    }
    ioctxs.clear();
  }
  for (auto& h : live) h->Release();
  if (cluster) {
    if (connected) rados_watch_flush(cluster);
    rados_shutdown(cluster);
    cluster = nullptr;
  }
  connected = false;
}

ClusterHandle::~ClusterHandle() { Shutdown(); }

void IoCtxHandle::Release() {
  std::vector<std::shared_ptr<ImageHandle>> live;
  std::map<uint64_t, std::unique_ptr<WatchCtx>> ws;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (destroyed) return;
    destroyed = true;
    for (auto& w : images) {
      if (auto h = w.lock()) live.push_back(h);
    }
    images.clear();
    ws.swap(watches);
  }
  for (auto& img : live) img->Close();
  for (auto& [cookie, ctx] : ws) rados_unwatch2(io, cookie);
  // Callbacks may still be queued for the watches just removed: drain them
  // before their contexts (and the ioctx they use) go away.
  if (!ws.empty() && cluster->cluster) rados_watch_flush(cluster->cluster);
  ws.clear();
  if (io) rados_ioctx_destroy(io);
  io = nullptr;
}

IoCtxHandle::~IoCtxHandle() {
  // Without a live cluster the context was already released by Shutdown.
  Release();
}

int ImageHandle::Close() {
  std::unique_lock<std::shared_mutex> lock(mu);
  if (closed) return 0;
  closed = true;
  int rc = rbd_close(image);
  image = nullptr;
  return rc;
}

ImageHandle::~ImageHandle() { Close(); }

}  // namespace corral
