// IoCtx omap reads and compound write operations. A write op applies all its
// steps atomically on one object, which is how the registry gets
// compare-and-swap without a lock (omapCmp + omapSet in one op).
#include <cstring>

#include "classes.h"

namespace corral {

#define IOCTX_GUARD(h)          \
  CallGuard guard((h)->cluster); \
  if (!guard || (h)->destroyed) return -ENOTCONN

namespace {

using Entries = std::vector<std::pair<std::string, std::string>>;

Napi::Value EntriesToJs(Napi::Env env, const Entries& entries) {
  Napi::Array arr = Napi::Array::New(env, entries.size());
  for (size_t i = 0; i < entries.size(); i++) {
    Napi::Object e = Napi::Object::New(env);
    e.Set("key", Napi::String::New(env, entries[i].first));
    e.Set("value", Napi::Buffer<char>::Copy(env, entries[i].second.data(), entries[i].second.size()));
    arr.Set(i, e);
  }
  return arr;
}

// Reads the entries a read op's omap iterator holds.
int Drain(rados_omap_iter_t it, Entries& out) {
  for (;;) {
    char* key = nullptr;
    char* val = nullptr;
    size_t keyLen = 0, valLen = 0;
    int rc = rados_omap_get_next2(it, &key, &val, &keyLen, &valLen);
    if (rc < 0) return rc;
    if (key == nullptr) return 0;
    out.emplace_back(std::string(key, keyLen), std::string(val ? val : "", valLen));
  }
}

uint8_t CmpOp(Napi::Env env, const std::string& s) {
  if (s == "eq") return LIBRADOS_CMPXATTR_OP_EQ;
  if (s == "ne") return LIBRADOS_CMPXATTR_OP_NE;
  if (s == "gt") return LIBRADOS_CMPXATTR_OP_GT;
  if (s == "gte") return LIBRADOS_CMPXATTR_OP_GTE;
  if (s == "lt") return LIBRADOS_CMPXATTR_OP_LT;
  if (s == "lte") return LIBRADOS_CMPXATTR_OP_LTE;
  ThrowError(env, "writeOp", -EINVAL, "unknown comparison " + s);
}

std::string Str(Napi::Env env, Napi::Object o, const char* key) {
  Napi::Value v = o.Get(key);
  if (v.IsBuffer()) {
    auto b = v.As<Napi::Buffer<char>>();
    return std::string(b.Data(), b.Length());
  }
  if (!v.IsString()) ThrowError(env, "writeOp", -EINVAL, std::string(key) + " must be a string or Buffer");
  std::string s = v.As<Napi::String>().Utf8Value();
  return s;
}

struct Step {
  enum Kind { Create, AssertExists, OmapSet, OmapRm, OmapClear, OmapCmp, SetXattr, RmXattr, CmpXattr, WriteFull, Remove } kind;
  bool exclusive = false;
  std::string key, value;
  uint8_t cmp = 0;
  Entries entries;
  std::vector<std::string> keys;
};

Step ParseStep(Napi::Env env, Napi::Value v) {
  if (!v.IsObject()) ThrowError(env, "writeOp", -EINVAL, "each step must be an object");
  Napi::Object o = v.As<Napi::Object>();
  std::string op = Str(env, o, "op");
  Step s{};
  if (op == "create") {
    s.kind = Step::Create;
    s.exclusive = o.Get("exclusive").ToBoolean();
  } else if (op == "assertExists") {
    s.kind = Step::AssertExists;
  } else if (op == "omapSet") {
    s.kind = Step::OmapSet;
    Napi::Value e = o.Get("entries");
    if (!e.IsObject()) ThrowError(env, "writeOp", -EINVAL, "omapSet needs entries");
    Napi::Object eo = e.As<Napi::Object>();
    Napi::Array names = eo.GetPropertyNames();
    for (uint32_t i = 0; i < names.Length(); i++) {
      std::string k = names.Get(i).ToString().Utf8Value();
      s.entries.emplace_back(k, Str(env, eo, k.c_str()));
    }
  } else if (op == "omapRm") {
    s.kind = Step::OmapRm;
    Napi::Value k = o.Get("keys");
    if (!k.IsArray()) ThrowError(env, "writeOp", -EINVAL, "omapRm needs keys");
    Napi::Array ka = k.As<Napi::Array>();
    for (uint32_t i = 0; i < ka.Length(); i++) s.keys.push_back(ka.Get(i).ToString().Utf8Value());
  } else if (op == "omapClear") {
    s.kind = Step::OmapClear;
  } else if (op == "omapCmp" || op == "cmpXattr") {
    s.kind = op == "omapCmp" ? Step::OmapCmp : Step::CmpXattr;
    s.key = Str(env, o, op == "omapCmp" ? "key" : "name");
    s.value = Str(env, o, "value");
    s.cmp = CmpOp(env, o.Has("cmp") ? Str(env, o, "cmp") : "eq");
  } else if (op == "setXattr") {
    s.kind = Step::SetXattr;
    s.key = Str(env, o, "name");
    s.value = Str(env, o, "value");
  } else if (op == "rmXattr") {
    s.kind = Step::RmXattr;
    s.key = Str(env, o, "name");
  } else if (op == "writeFull") {
    s.kind = Step::WriteFull;
    s.value = Str(env, o, "data");
  } else if (op == "remove") {
    s.kind = Step::Remove;
  } else {
    ThrowError(env, "writeOp", -EINVAL, "unknown step " + op);
  }
  return s;
}

}  // namespace

// omapGet(oid, { startAfter?, prefix?, max? }) -> { entries: [{ key, value }], more }
Napi::Value IoCtx::OmapGet(const Napi::CallbackInfo& info) {
  auto h = h_;
  std::string oid = StringArg(info, 0, "oid");
  std::string startAfter, prefix;
  uint64_t max = 1000;
  if (info.Length() > 1 && info[1].IsObject()) {
    Napi::Object o = info[1].As<Napi::Object>();
    if (o.Has("startAfter") && o.Get("startAfter").IsString()) startAfter = o.Get("startAfter").As<Napi::String>();
    if (o.Has("prefix") && o.Get("prefix").IsString()) prefix = o.Get("prefix").As<Napi::String>();
    if (o.Has("max") && o.Get("max").IsNumber()) max = o.Get("max").As<Napi::Number>().Int64Value();
  }
  struct Out {
    Entries entries;
    unsigned char more = 0;
  };
  auto out = std::make_shared<Out>();
  return Task::Run(
      info.Env(), "rados_read_op_omap_get_vals2",
      [h, oid, startAfter, prefix, max, out](std::string& detail) -> int {
        IOCTX_GUARD(h);
        detail = oid;
        rados_read_op_t op = rados_create_read_op();
        rados_omap_iter_t it = nullptr;
        int prval = 0;
        rados_read_op_omap_get_vals2(op, startAfter.empty() ? nullptr : startAfter.c_str(),
                                     prefix.empty() ? nullptr : prefix.c_str(), max, &it, &out->more, &prval);
        int rc = rados_read_op_operate(op, h->io, oid.c_str(), 0);
        if (rc >= 0) rc = prval;
        if (rc >= 0) rc = Drain(it, out->entries);
        if (it) rados_omap_get_end(it);
        rados_release_read_op(op);
        return rc;
      },
      [out](Napi::Env env) -> Napi::Value {
        Napi::Object o = Napi::Object::New(env);
        o.Set("entries", EntriesToJs(env, out->entries));
        o.Set("more", Napi::Boolean::New(env, out->more != 0));
        return o;
      });
}

// omapGetKeys(oid, keys) -> [{ key, value }] for the keys present
Napi::Value IoCtx::OmapGetKeys(const Napi::CallbackInfo& info) {
  auto h = h_;
  std::string oid = StringArg(info, 0, "oid");
  if (info.Length() < 2 || !info[1].IsArray()) ThrowError(info.Env(), "omapGetKeys", -EINVAL, "keys must be an array");
  Napi::Array ka = info[1].As<Napi::Array>();
  std::vector<std::string> keys;
  for (uint32_t i = 0; i < ka.Length(); i++) keys.push_back(ka.Get(i).ToString().Utf8Value());
  auto out = std::make_shared<Entries>();
  return Task::Run(
      info.Env(), "rados_read_op_omap_get_vals_by_keys2",
      [h, oid, keys, out](std::string& detail) -> int {
        IOCTX_GUARD(h);
        detail = oid;
        std::vector<const char*> ptrs;
        std::vector<size_t> lens;
        for (auto& k : keys) {
          ptrs.push_back(k.c_str());
          lens.push_back(k.size());
        }
        rados_read_op_t op = rados_create_read_op();
        rados_omap_iter_t it = nullptr;
        int prval = 0;
        rados_read_op_omap_get_vals_by_keys2(op, ptrs.data(), ptrs.size(), lens.data(), &it, &prval);
        int rc = rados_read_op_operate(op, h->io, oid.c_str(), 0);
        if (rc >= 0) rc = prval;
        if (rc >= 0) rc = Drain(it, *out);
        if (it) rados_omap_get_end(it);
        rados_release_read_op(op);
        return rc;
      },
      [out](Napi::Env env) -> Napi::Value { return EntriesToJs(env, *out); });
}

// writeOp(oid, steps): all steps or none. A failed comparison rejects with ECANCELED.
Napi::Value IoCtx::WriteOp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto h = h_;
  std::string oid = StringArg(info, 0, "oid");
  if (info.Length() < 2 || !info[1].IsArray()) ThrowError(env, "writeOp", -EINVAL, "steps must be an array");
  Napi::Array arr = info[1].As<Napi::Array>();
  auto steps = std::make_shared<std::vector<Step>>();
  for (uint32_t i = 0; i < arr.Length(); i++) steps->push_back(ParseStep(env, arr.Get(i)));
  return Task::Run(env, "rados_write_op_operate", [h, oid, steps](std::string& detail) -> int {
    IOCTX_GUARD(h);
    detail = oid;
    rados_write_op_t op = rados_create_write_op();
    std::vector<int> prvals(steps->size(), 0);
    for (size_t i = 0; i < steps->size(); i++) {
      Step& s = (*steps)[i];
      switch (s.kind) {
        case Step::Create:
          rados_write_op_create(op, s.exclusive ? LIBRADOS_CREATE_EXCLUSIVE : LIBRADOS_CREATE_IDEMPOTENT, nullptr);
          break;
        case Step::AssertExists:
          rados_write_op_assert_exists(op);
          break;
        case Step::OmapSet: {
          std::vector<const char*> k, v;
          std::vector<size_t> kl, vl;
          for (auto& e : s.entries) {
            k.push_back(e.first.c_str());
            kl.push_back(e.first.size());
            v.push_back(e.second.data());
            vl.push_back(e.second.size());
          }
          rados_write_op_omap_set2(op, k.data(), v.data(), kl.data(), vl.data(), k.size());
          break;
        }
        case Step::OmapRm: {
          std::vector<const char*> k;
          std::vector<size_t> kl;
          for (auto& key : s.keys) {
            k.push_back(key.c_str());
            kl.push_back(key.size());
          }
          rados_write_op_omap_rm_keys2(op, k.data(), kl.data(), k.size());
          break;
        }
        case Step::OmapClear:
          rados_write_op_omap_clear(op);
          break;
        case Step::OmapCmp:
          rados_write_op_omap_cmp2(op, s.key.c_str(), s.cmp, s.value.data(), s.key.size(), s.value.size(), &prvals[i]);
          break;
        case Step::SetXattr:
          rados_write_op_setxattr(op, s.key.c_str(), s.value.data(), s.value.size());
          break;
        case Step::RmXattr:
          rados_write_op_rmxattr(op, s.key.c_str());
          break;
        case Step::CmpXattr:
          rados_write_op_cmpxattr(op, s.key.c_str(), s.cmp, s.value.data(), s.value.size());
          break;
        case Step::WriteFull:
          rados_write_op_write_full(op, s.value.data(), s.value.size());
          break;
        case Step::Remove:
          rados_write_op_remove(op);
          break;
      }
    }
    int rc = rados_write_op_operate2(op, h->io, oid.c_str(), nullptr, 0);
    rados_release_write_op(op);
    for (size_t i = 0; rc < 0 && i < steps->size(); i++) {
      if (prvals[i] < 0) detail = oid + ": comparison on " + (*steps)[i].key + " failed";
    }
    return rc;
  });
}

}  // namespace corral
