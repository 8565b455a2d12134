// The DNS server's UDP fast path. A thread of its own reads the socket with
// recvmmsg (up to 64 datagrams per call), answers every query whose answer
// the JS responder has put in the table (copy, patch the ID, the RD/CD bits
// and the question's letter case — the same bytes the JS path makes), sends
// those with one sendmmsg, and hands every other datagram up to JS in one
// batch. JS answers go out through send(), again one sendmmsg per batch.
//
// Only plain, well-formed queries are answered here (opcode QUERY, one
// question of class IN/ANY, ASCII name, no or one EDNS0 version-0 OPT): all
// else — errors, unknown or forwarded names, other EDNS versions — goes to JS.
#include <napi.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <poll.h>
#include <unistd.h>
#include <errno.h>
#include <string.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <set>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

constexpr int kBatch = 64;
constexpr size_t kMaxDatagram = 65536;
constexpr uint16_t kPlainUdpLimit = 512;

struct Entry {
  uint8_t rcode = 0;
  uint32_t rot = 0;
  std::vector<std::string> variants;
  std::string truncated;
};

// One datagram JS must answer: its bytes and the sender's address.
struct Pending {
  std::string data;
  sockaddr_storage addr;
  socklen_t addrLen;
};

struct Counters {
  std::atomic<uint64_t> queries{0}, noerror{0}, nxdomain{0}, refused{0}, servfail{0}, notimp{0}, formerr{0}, truncated{0};
};

// Rcodes as DnsStats names them (see discovery/src/dns/responder.ts).
void countRcode(Counters& c, uint8_t rcode) {
  switch (rcode) {
    case 0: c.noerror++; break;
    case 1: c.formerr++; break;
    case 2: c.servfail++; break;
    case 3: c.nxdomain++; break;
    case 4: c.notimp++; break;
    case 5: c.refused++; break;
    default: break;
  }
}

// A query the fast path can answer: its table key and the parts the patch needs.
struct Parsed {
  size_t nameEnd;
  uint32_t limit;
};

// Mirrors parseQuery in discovery/src/dns/wire.ts for the accepted case; false
// means "not for this path" (JS then answers exactly as before).
bool parse(const uint8_t* b, size_t len, uint32_t maxPayload, std::string& key, Parsed& p) {
  if (len < 12) return false;
  if (b[2] & 0x80) return false;             // a response
  if ((b[2] >> 3) & 0x0f) return false;      // not opcode QUERY
  const unsigned qd = (b[4] << 8) | b[5], an = (b[6] << 8) | b[7], ns = (b[8] << 8) | b[9], ar = (b[10] << 8) | b[11];
  if (qd != 1 || an != 0 || ns != 0 || ar > 1) return false;
  key.clear();
  size_t off = 12, nameLen = 0;
  for (;;) {
    if (off >= len) return false;
    const uint8_t l = b[off];
    if (l == 0) {
      key.push_back(0);
      off++;
      break;
    }
    if (l > 63) return false;
    nameLen += l + 1;
    if (nameLen > 254 || off + 1 + l > len) return false;
    key.push_back(static_cast<char>(l));
    for (size_t i = off + 1; i < off + 1 + l; i++) {
      uint8_t c = b[i];
      if (c >= 0x80) return false;  // JS lower-cases latin1 beyond ASCII; leave those to it
      if (c >= 'A' && c <= 'Z') c += 0x20;
      key.push_back(static_cast<char>(c));
    }
    off += l + 1;
  }
  p.nameEnd = off;
  if (off + 4 > len) return false;
  const unsigned qtype = (b[off] << 8) | b[off + 1], qclass = (b[off + 2] << 8) | b[off + 3];
  if (qclass != 1 && qclass != 255) return false;
  off += 4;
  bool edns = false;
  uint32_t limit = kPlainUdpLimit;
  if (ar == 1) {
    if (off + 11 > len || b[off] != 0) return false;
    if (((b[off + 1] << 8) | b[off + 2]) != 41) return false;
    uint32_t udpSize = (b[off + 3] << 8) | b[off + 4];
    if (b[off + 6] != 0) return false;  // EDNS version: BADVERS is JS's
    const size_t rdlen = (b[off + 9] << 8) | b[off + 10];
    off += 11 + rdlen;
    if (off != len) return false;
    edns = true;
    if (udpSize < kPlainUdpLimit) udpSize = kPlainUdpLimit;
    limit = udpSize < maxPayload ? udpSize : maxPayload;
  } else if (off != len) {
    return false;
  }
  const uint32_t slot = qtype * 2 + (edns ? 1 : 0);
  key.push_back(static_cast<char>(slot >> 24));
  key.push_back(static_cast<char>(slot >> 16));
  key.push_back(static_cast<char>(slot >> 8));
  key.push_back(static_cast<char>(slot));
  p.limit = limit;
  return true;
}

using Table = std::unordered_map<std::string, Entry>;

class UdpServer;
// Live servers, so an exiting process stops their threads before Node tears down.
std::mutex liveMu;
std::set<UdpServer*> live;

class UdpServer : public Napi::ObjectWrap<UdpServer> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "UdpServer",
                       {InstanceMethod("start", &UdpServer::Start), InstanceMethod("stop", &UdpServer::Stop),
                        InstanceMethod("install", &UdpServer::Install), InstanceMethod("clear", &UdpServer::Clear),
                        InstanceMethod("send", &UdpServer::Send), InstanceMethod("stats", &UdpServer::Stats),
                        InstanceMethod("size", &UdpServer::Size)});
  }

  // new UdpServer(fd, maxUdpPayload, onBatch(msgs: Buffer[], addrs: Buffer[]))
  UdpServer(const Napi::CallbackInfo& info) : Napi::ObjectWrap<UdpServer>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsFunction())
      throw Napi::TypeError::New(env, "UdpServer(fd, maxUdpPayload, onBatch)");
    fd_ = info[0].As<Napi::Number>().Int32Value();
    maxPayload_ = info[1].As<Napi::Number>().Uint32Value();
    wake_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_ < 0) throw Napi::Error::New(env, std::string("eventfd: ") + strerror(errno));
    tsfn_ = Napi::ThreadSafeFunction::New(env, info[2].As<Napi::Function>(), "corral-dns-udp", 256, 1);
    tsfn_.Unref(env);
    std::lock_guard<std::mutex> g(liveMu);
    live.insert(this);
  }

  ~UdpServer() override {
    {
      std::lock_guard<std::mutex> g(liveMu);
      live.erase(this);
    }
    Halt();
  }

  void Halt() {
    if (stopped_.exchange(true)) return;
    uint64_t one = 1;
    if (write(wake_, &one, sizeof one) < 0) { /* the thread also sees stopped_ when poll returns */ }
    if (thread_.joinable()) thread_.join();
    tsfn_.Release();
    close(wake_);
  }

 private:
  Napi::Value Start(const Napi::CallbackInfo& info) {
    if (!thread_.joinable() && !stopped_) thread_ = std::thread([this]() { Loop(); });
    return info.Env().Undefined();
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    Halt();
    return info.Env().Undefined();
  }

  // install(key: Buffer, rcode, variants: Buffer[], truncated: Buffer, rot)
  Napi::Value Install(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 5 || !info[0].IsBuffer() || !info[2].IsArray() || !info[3].IsBuffer())
      throw Napi::TypeError::New(env, "install(key, rcode, variants, truncated, rot)");
    auto k = info[0].As<Napi::Buffer<char>>();
    Entry e;
    e.rcode = static_cast<uint8_t>(info[1].As<Napi::Number>().Uint32Value());
    auto arr = info[2].As<Napi::Array>();
    for (uint32_t i = 0; i < arr.Length(); i++) {
      auto v = arr.Get(i).As<Napi::Buffer<char>>();
      e.variants.emplace_back(v.Data(), v.Length());
    }
    auto t = info[3].As<Napi::Buffer<char>>();
    e.truncated.assign(t.Data(), t.Length());
    e.rot = info[4].As<Napi::Number>().Uint32Value();
    if (e.variants.empty()) return env.Undefined();
    std::lock_guard<std::mutex> g(mu_);
    table_[std::string(k.Data(), k.Length())] = std::move(e);
    return env.Undefined();
  }

  Napi::Value Clear(const Napi::CallbackInfo& info) {
    Table old;
    {
      std::lock_guard<std::mutex> g(mu_);
      old.swap(table_);
    }
    return info.Env().Undefined();
  }

  Napi::Value Size(const Napi::CallbackInfo& info) {
    std::lock_guard<std::mutex> g(mu_);
    return Napi::Number::New(info.Env(), static_cast<double>(table_.size()));
  }

  // send(answers: Buffer[], addrs: Buffer[]): one sendmmsg per 64; a full socket buffer drops the rest (UDP).
  Napi::Value Send(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsArray() || !info[1].IsArray()) throw Napi::TypeError::New(env, "send(answers, addrs)");
    auto answers = info[0].As<Napi::Array>();
    auto addrs = info[1].As<Napi::Array>();
    const uint32_t n = answers.Length() < addrs.Length() ? answers.Length() : addrs.Length();
    mmsghdr msgs[kBatch];
    iovec iov[kBatch];
    uint32_t done = 0;
    while (done < n && !stopped_) {
      uint32_t k = 0;
      for (; k < static_cast<uint32_t>(kBatch) && done + k < n; k++) {
        auto a = answers.Get(done + k).As<Napi::Buffer<char>>();
        auto s = addrs.Get(done + k).As<Napi::Buffer<char>>();
        iov[k] = {a.Data(), a.Length()};
        memset(&msgs[k], 0, sizeof msgs[k]);
        msgs[k].msg_hdr.msg_name = s.Data();
        msgs[k].msg_hdr.msg_namelen = static_cast<socklen_t>(s.Length());
        msgs[k].msg_hdr.msg_iov = &iov[k];
        msgs[k].msg_hdr.msg_iovlen = 1;
      }
      SendAll(msgs, k);
      done += k;
    }
    return env.Undefined();
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto o = Napi::Object::New(env);
    auto set = [&](const char* k, const std::atomic<uint64_t>& v) { o.Set(k, Napi::Number::New(env, static_cast<double>(v.load()))); };
    set("queries", c_.queries);
    set("noerror", c_.noerror);
    set("nxdomain", c_.nxdomain);
    set("refused", c_.refused);
    set("servfail", c_.servfail);
    set("notimp", c_.notimp);
    set("formerr", c_.formerr);
    set("truncated", c_.truncated);
    return o;
  }

  // Sends msgs[0..n); a datagram the kernel refuses (gone client, full buffer) is skipped.
  void SendAll(mmsghdr* msgs, unsigned n) {
    unsigned at = 0;
    while (at < n) {
      const int r = sendmmsg(fd_, msgs + at, n - at, MSG_DONTWAIT);
      if (r > 0) {
        at += r;
      } else if (r < 0 && errno == EINTR) {
        continue;
      } else {
        at++;  // EAGAIN or an error for this one datagram (ICMP from a client that left)
      }
    }
  }

  void Loop() {
    std::vector<char> in(kBatch * kMaxDatagram), out(kBatch * kMaxDatagram);
    mmsghdr rmsgs[kBatch], smsgs[kBatch];
    iovec riov[kBatch], siov[kBatch];
    sockaddr_storage addrs[kBatch];
    std::string key;
    key.reserve(300);
    pollfd pfd[2] = {{fd_, POLLIN, 0}, {wake_, POLLIN, 0}};
    while (!stopped_) {
      for (int i = 0; i < kBatch; i++) {
        riov[i] = {in.data() + i * kMaxDatagram, kMaxDatagram};
        memset(&rmsgs[i], 0, sizeof rmsgs[i]);
        rmsgs[i].msg_hdr.msg_name = &addrs[i];
        rmsgs[i].msg_hdr.msg_namelen = sizeof addrs[i];
        rmsgs[i].msg_hdr.msg_iov = &riov[i];
        rmsgs[i].msg_hdr.msg_iovlen = 1;
      }
      const int n = recvmmsg(fd_, rmsgs, kBatch, MSG_DONTWAIT, nullptr);
      if (n <= 0) {
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
          // An ICMP error queued on the socket, or the socket is gone: wait and read on.
          if (errno == EBADF || errno == ENOTSOCK) return;
        }
        const int pr = poll(pfd, 2, -1);
        if (pr < 0 && errno != EINTR) return;
        continue;
      }
      unsigned sent = 0;
      std::unique_ptr<std::vector<Pending>> up;
      {
        std::lock_guard<std::mutex> g(mu_);
        for (int i = 0; i < n; i++) {
          const uint8_t* b = reinterpret_cast<const uint8_t*>(riov[i].iov_base);
          const size_t len = rmsgs[i].msg_len;
          Parsed p;
          const bool truncatedIn = rmsgs[i].msg_hdr.msg_flags & MSG_TRUNC;
          Table::iterator it;
          if (!truncatedIn && parse(b, len, maxPayload_, key, p) && (it = table_.find(key)) != table_.end()) {
            Entry& e = it->second;
            const std::string* src;
            if (e.variants.size() == 1) {
              src = &e.variants[0];
            } else {
              e.rot = (e.rot + 1) % e.variants.size();
              src = &e.variants[e.rot];
            }
            c_.queries++;
            if (src->size() > p.limit) {
              src = &e.truncated;
              c_.truncated++;
            }
            countRcode(c_, e.rcode);
            char* o = out.data() + sent * kMaxDatagram;
            memcpy(o, src->data(), src->size());
            o[0] = b[0];
            o[1] = b[1];
            o[2] |= b[2] & 0x01;
            o[3] |= b[3] & 0x10;
            memcpy(o + 12, b + 12, p.nameEnd - 12);
            siov[sent] = {o, src->size()};
            memset(&smsgs[sent], 0, sizeof smsgs[sent]);
            smsgs[sent].msg_hdr.msg_name = &addrs[i];
            smsgs[sent].msg_hdr.msg_namelen = rmsgs[i].msg_hdr.msg_namelen;
            smsgs[sent].msg_hdr.msg_iov = &siov[sent];
            smsgs[sent].msg_hdr.msg_iovlen = 1;
            sent++;
          } else {
            if (!up) up = std::make_unique<std::vector<Pending>>();
            Pending pd;
            pd.data.assign(reinterpret_cast<const char*>(b), len);
            memcpy(&pd.addr, &addrs[i], rmsgs[i].msg_hdr.msg_namelen);
            pd.addrLen = rmsgs[i].msg_hdr.msg_namelen;
            up->push_back(std::move(pd));
          }
        }
      }
      if (sent) SendAll(smsgs, sent);
      if (up) {
        std::vector<Pending>* batch = up.release();
        const napi_status st = tsfn_.NonBlockingCall(batch, [](Napi::Env env, Napi::Function fn, std::vector<Pending>* batch) {
          std::unique_ptr<std::vector<Pending>> own(batch);
          if (env == nullptr || fn.IsEmpty()) return;
          auto msgs = Napi::Array::New(env, own->size());
          auto from = Napi::Array::New(env, own->size());
          for (size_t i = 0; i < own->size(); i++) {
            const Pending& pd = (*own)[i];
            msgs.Set(static_cast<uint32_t>(i), Napi::Buffer<char>::Copy(env, pd.data.data(), pd.data.size()));
            from.Set(static_cast<uint32_t>(i), Napi::Buffer<char>::Copy(env, reinterpret_cast<const char*>(&pd.addr), pd.addrLen));
          }
          fn.Call({msgs, from});
        });
        if (st != napi_ok) delete batch;  // JS is behind (queue full) or closing: these queries are dropped, as a full socket would
      }
    }
  }

  int fd_ = -1;
  int wake_ = -1;
  uint32_t maxPayload_ = 1232;
  std::atomic<bool> stopped_{false};
  std::thread thread_;
  Napi::ThreadSafeFunction tsfn_;
  std::mutex mu_;
  Table table_;
  Counters c_;
};

// sockaddrToString(addr: Buffer) → [address, port], for the forwarder's logs and tests.
Napi::Value AddrInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto b = info[0].As<Napi::Buffer<char>>();
  sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  memcpy(&ss, b.Data(), b.Length() < sizeof ss ? b.Length() : sizeof ss);
  char host[64] = "";
  uint16_t port = 0;
  if (ss.ss_family == AF_INET) {
    auto* s = reinterpret_cast<sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &s->sin_addr, host, sizeof host);
    port = ntohs(s->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    auto* s = reinterpret_cast<sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &s->sin6_addr, host, sizeof host);
    port = ntohs(s->sin6_port);
  }
  auto arr = Napi::Array::New(env, 2);
  arr.Set(0u, Napi::String::New(env, host));
  arr.Set(1u, Napi::Number::New(env, port));
  return arr;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  env.AddCleanupHook([]() {
    std::set<UdpServer*> all;
    {
      std::lock_guard<std::mutex> g(liveMu);
      all.swap(live);
    }
    for (UdpServer* s : all) s->Halt();
  });
  exports.Set("UdpServer", UdpServer::Define(env));
  exports.Set("addrInfo", Napi::Function::New(env, AddrInfo));
  return exports;
}

}  // namespace

NODE_API_MODULE(corral_dns, Init)
