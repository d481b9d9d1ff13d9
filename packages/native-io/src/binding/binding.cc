// The thin N-API binding (node-addon-api, C++ exceptions disabled: errors are
// returned as values, and a failing N-API call leaves a pending JS exception
// that surfaces when the function returns). It only converts the core's
// portable structs (fastport.h) to JS values; no platform code lives here.
#include <napi.h>

#include <vector>

#include "common/wire.h"
#include "fastport.h"

namespace fastport {
void InitEngine(Napi::Env env, Napi::Object exports);
}

namespace {

Napi::Object FlagsObject(Napi::Env env, const std::vector<fastport::NamedFlag>& flags) {
  Napi::Object o = Napi::Object::New(env);
  for (const fastport::NamedFlag& f : flags) o.Set(f.name, Napi::Boolean::New(env, f.value));
  return o;
}

Napi::Object UringObject(Napi::Env env, const fastport::UringProbe& u) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("available", Napi::Boolean::New(env, u.available));
  if (!u.available) {
    o.Set("error", Napi::String::New(env, fastport::errno_name(u.error)));
    o.Set("errno", Napi::Number::New(env, u.error));
  }
  if (u.disabled_sysctl >= 0) {
    o.Set("disabledSysctl", Napi::Number::New(env, u.disabled_sysctl));
  } else {
    o.Set("disabledSysctl", env.Null());
  }
  o.Set("featuresMask", Napi::Number::New(env, u.features_mask));
  o.Set("features", FlagsObject(env, u.features));
  if (u.last_op >= 0) {
    o.Set("lastOp", Napi::Number::New(env, u.last_op));
  } else {
    o.Set("lastOp", env.Null());
  }
  o.Set("ops", FlagsObject(env, u.ops));
  o.Set("setupFlags", FlagsObject(env, u.setup_flags));
  o.Set("bufRing", Napi::Boolean::New(env, u.buf_ring));
  o.Set("bufRingIncremental", Napi::Boolean::New(env, u.buf_ring_incremental));
  o.Set("multishotAccept", Napi::Boolean::New(env, u.multishot_accept));
  o.Set("multishotRecv", Napi::Boolean::New(env, u.multishot_recv));
  Napi::Array notes = Napi::Array::New(env, u.notes.size());
  for (size_t i = 0; i < u.notes.size(); ++i) {
    notes.Set(static_cast<uint32_t>(i), Napi::String::New(env, u.notes[i]));
  }
  o.Set("notes", notes);
  return o;
}

Napi::Value Probe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const fastport::PlatformProbe p = fastport::probe_platform();
  Napi::Object o = Napi::Object::New(env);
  o.Set("platform", Napi::String::New(env, p.platform));
  o.Set("kernel", Napi::String::New(env, p.kernel));
  o.Set("uring", UringObject(env, p.uring));
  Napi::Object e = Napi::Object::New(env);
  e.Set("available", Napi::Boolean::New(env, p.epoll.available));
  if (!p.epoll.available) {
    e.Set("error", Napi::String::New(env, fastport::errno_name(p.epoll.error)));
    e.Set("errno", Napi::Number::New(env, p.epoll.error));
  }
  o.Set("epoll", e);
  Napi::Object rio = Napi::Object::New(env);
  rio.Set("available", Napi::Boolean::New(env, p.rio.available));
  if (!p.rio.available) {
    rio.Set("error", Napi::String::New(env, fastport::errno_name(p.rio.error)));
    rio.Set("errno", Napi::Number::New(env, p.rio.error));
    rio.Set("wsaError", Napi::Number::New(env, p.rio.wsa_error));
  }
  o.Set("rio", rio);
  if (!p.note.empty()) o.Set("note", Napi::String::New(env, p.note));
  return o;
}

Napi::Value Version(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), fastport::version());
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("probe", Napi::Function::New(env, Probe, "probe"));
  exports.Set("version", Napi::Function::New(env, Version, "version"));
  exports.Set("NAPI_VERSION", Napi::Number::New(env, NAPI_VERSION));
  exports.Set("WIRE_VERSION", Napi::String::New(env, fastport::kWireVersion));
  fastport::InitEngine(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(fastport_native, Init)
