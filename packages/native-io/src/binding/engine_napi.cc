// N-API surface of the native engines (used by lib/native-engine.ts).
//
//   new NativeEngine(backend: 'epoll'|'uring'|'iocp', ioThreads, maxPendingBytes, recvBytes, onBatch)
//     throws an Error with .errno (negative) when the backend cannot start
//   buffers(): { events, commands, regions[], eventCapacity, recordWords, commandBytes }
//   flush(commandBytes, deliver): number     runs the command stream; with deliver,
//                                            copies pending records to `events`, returns their count
//   listen(host, port, backlog, reusePort, ipv6Only, opts[8]): number[] | number (-errno)
//   closeListener(id): number (0 | -errno)
//   connect(host, port, localAddress, opts[8]): [slot, gen]
//   setSocketOptions(slot, gen, opts[8]): number (0 | -errno)
//   counters(): number[]                     [sendSubmissions, recvCalls, sendChunkBytesHeld, sendSlabBytes]
//   features(): Record<string, string>
//   destroy()
//
// The engine crosses into JS once per batch: onBatch(count) with `count`
// records in `events` (see common/engine_core.h). JS runs its handlers and
// then calls flush(len, true) itself, which hands the gathered commands to
// the core (writes go out right there) and returns the records produced.
#include <napi.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <functional>
#include <vector>


#include "binding/loop_driver.h"
#include "common/backends.h"
#include "common/engine_core.h"
#include "fastport.h"

namespace fastport {
namespace {

constexpr uint32_t kEventCapacity = 4096;
constexpr size_t kCommandBytes = 1u << 20;

SockOpts OptsFrom(const Napi::Value& v) {
  SockOpts o;
  if (!v.IsArray()) return o;
  Napi::Array a = v.As<Napi::Array>();
  int* fields[8] = {&o.no_delay, &o.keep_alive, &o.keep_idle, &o.keep_intvl, &o.keep_cnt, &o.user_timeout_ms, &o.sndbuf, &o.rcvbuf};
  for (uint32_t i = 0; i < 8 && i < a.Length(); ++i) {
    Napi::Value e = a.Get(i);
    if (e.IsNumber()) *fields[i] = e.As<Napi::Number>().Int32Value();
  }
  return o;
}

class NativeEngine : public Napi::ObjectWrap<NativeEngine> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeEngine",
                       {
                           InstanceMethod("buffers", &NativeEngine::Buffers),
                           InstanceMethod("flush", &NativeEngine::Flush),
                           InstanceMethod("sendNow", &NativeEngine::SendNow),
                           InstanceMethod("listen", &NativeEngine::Listen),
                           InstanceMethod("closeListener", &NativeEngine::CloseListener),
                           InstanceMethod("connect", &NativeEngine::Connect),
                           InstanceMethod("setSocketOptions", &NativeEngine::SetSocketOptions),
                           InstanceMethod("counters", &NativeEngine::Counters),
                           InstanceMethod("features", &NativeEngine::Features),
                           InstanceMethod("destroy", &NativeEngine::Destroy),
                       });
  }

  explicit NativeEngine(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeEngine>(info) {
    Napi::Env env = info.Env();
    env_ = env;
    if (info.Length() < 5 || !info[0].IsString() || !info[4].IsFunction()) {
      Napi::TypeError::New(env, "NativeEngine(backend, ioThreads, maxPendingBytes, recvBytes, onBatch)").ThrowAsJavaScriptException();
      return;
    }
    backend_ = info[0].As<Napi::String>().Utf8Value();
    const uint32_t threads = info[1].As<Napi::Number>().Uint32Value();
    EngineLimits limits;
    limits.max_pending = static_cast<uint64_t>(info[2].As<Napi::Number>().Int64Value());
    const size_t recv_bytes = static_cast<size_t>(info[3].As<Napi::Number>().Int64Value());
    int r = core_.init(backend_, threads, limits, recv_bytes);
    if (r < 0) {
      core_.destroy();
      ThrowErrno(env, r, (backend_ + " backend failed to start").c_str());
      return;
    }
    on_batch_ = Napi::Persistent(info[4].As<Napi::Function>());
    napi_value resource_name;
    napi_create_string_utf8(env, "FastPortEngine", NAPI_AUTO_LENGTH, &resource_name);
    napi_async_init(env, info.This(), resource_name, &async_ctx_);

    events_ = static_cast<uint8_t*>(std::calloc(kEventCapacity, sizeof(Rec)));
    commands_ = static_cast<uint8_t*>(std::calloc(1, kCommandBytes));
    if (events_ == nullptr || commands_ == nullptr) {
      ThrowErrno(env, -ENOMEM, "out of memory");
      return;
    }
    LoopDriverHooks hooks;
    hooks.ctx = this;
    hooks.on_ready = [](void* p) { return static_cast<NativeEngine*>(p)->RunInline(); };
    hooks.on_posted = [](void* p) { static_cast<NativeEngine*>(p)->RunAsync(); };
    hooks.on_maintenance = [](void* p) { static_cast<NativeEngine*>(p)->RunMaintenance(); };
    driver_ = new_loop_driver(env, hooks);
    if (driver_ == nullptr) {
      ThrowErrno(env, -ENOMEM, "out of memory");
      return;
    }
    threaded_ = threads > 0;
    if (threaded_) {
      r = driver_->start_threaded();
      if (r != 0) {
        ThrowErrno(env, r, "loop driver failed to start");
        return;
      }
      taken_seq_.assign(core_.nloops(), 0);
      for (uint32_t i = 0; i < core_.nloops(); ++i) core_.loop(i)->start_thread(NotifyDriver, driver_);
    } else {
      r = driver_->start_inline(core_.loop(0)->backend());
      if (r != 0) {
        ThrowErrno(env, r, "loop driver failed to start");
        return;
      }
    }
    napi_add_env_cleanup_hook(env, CleanupHook, this);
    hook_added_ = true;
    ok_ = true;
  }

  ~NativeEngine() override { Teardown(false); }

 private:
  static void ThrowErrno(Napi::Env env, int neg_errno, const char* what) {
    const int e = neg_errno < 0 ? -neg_errno : neg_errno;
    std::string msg = std::string(what) + ": " + errno_name(e) + " (" + std::strerror(e) + ")";
    Napi::Error err = Napi::Error::New(env, msg);
    err.Set("errno", Napi::Number::New(env, -e));
    err.Set("code", Napi::String::New(env, errno_name(e)));
    err.ThrowAsJavaScriptException();
  }

  static void CleanupHook(void* arg) {
    NativeEngine* self = static_cast<NativeEngine*>(arg);
    self->hook_added_ = false;
    self->Teardown(true);
  }

  void RunMaintenance() {
    if (!ok_) return;
    core_.loop(0)->maintain();
    ScheduleMaintenance();
  }

  // Inline mode: (re)arms the housekeeping timer for what the loop asks.
  void ScheduleMaintenance() {
    if (threaded_ || driver_ == nullptr || !ok_) return;
    driver_->schedule_maintenance(core_.loop(0)->maintenance_wait_ms());
  }
  static void NotifyDriver(void* ctx) { static_cast<LoopDriver*>(ctx)->notify(); }

  // Threads: gather what every loop posted, hand it to JS, release the
  // receive memory those records pointed into.
  void RunAsync() {
    if (!ok_) return;
    for (uint32_t i = 0; i < core_.nloops(); ++i) taken_seq_[i] = core_.loop(i)->take_posted(&js_fifo_);
    napi_handle_scope scope;
    if (napi_open_handle_scope(env_, &scope) != napi_ok) return;
    Deliver();
    napi_close_handle_scope(env_, scope);
    if (!ok_) return;
    ReleaseIfDrained();
    UpdateRef();
  }

  void ReleaseIfDrained() {
    if (!threaded_ || rec_head_ != 0 || !js_fifo_.empty()) return;
    for (uint32_t i = 0; i < core_.nloops(); ++i) core_.loop(i)->release(taken_seq_[i]);
  }

  std::vector<Rec>& Fifo() { return threaded_ ? js_fifo_ : core_.loop(0)->records(); }

  // Returns true when the backend stopped with work left.
  bool RunInline() {
    if (!ok_) return false;
    Loop* loop = core_.loop(0);
    napi_handle_scope scope;
    if (napi_open_handle_scope(env_, &scope) != napi_ok) return false;
    bool more = false;
    for (int i = 0; i < 64 && ok_; ++i) {
      const int r = loop->poll_once(0);
      Deliver();
      if (!ok_) break;
      loop->backend()->recv_consumed();
      more = r == kPollMore;
      if (!more) break;
    }
    napi_close_handle_scope(env_, scope);
    if (ok_) {
      UpdateRef();
      ScheduleMaintenance();
    }
    return more && ok_;
  }

  // Copies up to kEventCapacity pending records into the events window.
  uint32_t TakeRecords() {
    std::vector<Rec>& q = Fifo();
    const size_t avail = q.size() - rec_head_;
    const uint32_t n = static_cast<uint32_t>(avail < kEventCapacity ? avail : kEventCapacity);
    if (n > 0) std::memcpy(events_, q.data() + rec_head_, n * sizeof(Rec));
    rec_head_ += n;
    if (rec_head_ == q.size()) {
      q.clear();
      rec_head_ = 0;
      // A burst (a connection flood) must not keep its record memory.
      if (q.capacity() > kEventCapacity * 4) std::vector<Rec>().swap(q);
    }
    return n;
  }

  // Hands every pending record to JS, one call per window (normally one).
  void Deliver() {
    while (ok_) {
      const uint32_t n = TakeRecords();
      if (n == 0) return;
      napi_value fn, argv[1], global, result;
      napi_get_reference_value(env_, on_batch_.operator napi_ref(), &fn);
      napi_create_uint32(env_, n, &argv[0]);
      napi_get_global(env_, &global);
      napi_status st = napi_make_callback(env_, async_ctx_, global, fn, 1, argv, &result);
      if (st != napi_ok) {
        bool pending = false;
        napi_is_exception_pending(env_, &pending);
        if (pending) {
          napi_value exc;
          napi_get_and_clear_last_exception(env_, &exc);
          napi_fatal_exception(env_, exc);
        }
        return;
      }
    }
  }

  void UpdateRef() {
    if (driver_ == nullptr) return;
    bool busy = false;
    for (uint32_t i = 0; i < core_.nloops() && !busy; ++i) busy = core_.loop(i)->keeps_js_alive();
    const size_t want = busy ? 1 : 0;
    if (want != last_busy_) driver_->set_ref(busy);
    last_busy_ = want;
  }

  Napi::Value Buffers(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!ok_) return env.Undefined();
    Napi::Object o = Napi::Object::New(env);
    Napi::ArrayBuffer ev = Napi::ArrayBuffer::New(env, events_, kEventCapacity * sizeof(Rec));
    Napi::ArrayBuffer cmd = Napi::ArrayBuffer::New(env, commands_, kCommandBytes);
    buffer_refs_.push_back(Napi::Persistent(ev));
    buffer_refs_.push_back(Napi::Persistent(cmd));
    Napi::Array regions = Napi::Array::New(env, core_.nloops());
    for (uint32_t i = 0; i < core_.nloops(); ++i) {
      RecvRegion r = core_.loop(i)->region();
      Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, r.base, r.size);
      buffer_refs_.push_back(Napi::Persistent(ab));
      regions.Set(i, ab);
    }
    o.Set("events", ev);
    o.Set("commands", cmd);
    o.Set("regions", regions);
    o.Set("eventCapacity", Napi::Number::New(env, kEventCapacity));
    o.Set("recordWords", Napi::Number::New(env, kRecWords));
    o.Set("commandBytes", Napi::Number::New(env, static_cast<double>(kCommandBytes)));
    o.Set("sendChunkBytes", Napi::Number::New(env, static_cast<double>(kChunkSize)));
    o.Set("sendSlabReserveBytes", Napi::Number::New(env, static_cast<double>(kSlabReserve * kSlabBytes)));
    return o;
  }

  Napi::Value Flush(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!ok_) return Napi::Number::New(env, 0);
    uint32_t len = 0;
    bool deliver = true;
    if (info.Length() > 0) napi_get_value_uint32(env, info[0], &len);
    if (info.Length() > 1) napi_get_value_bool(env, info[1], &deliver);
    if (len > kCommandBytes) len = 0;
    if (deliver) ReleaseIfDrained();  // JS is done with everything handed over before this call
    if (len > 0) core_.run_commands(commands_, len);
    uint32_t n = deliver ? TakeRecords() : 0;
    UpdateRef();
    ScheduleMaintenance();
    napi_value out;
    napi_create_uint32(env, n, &out);
    return Napi::Value(env, out);
  }

  // sendNow(slot, gen, bytes): a large send without the command buffer copy
  // (inline mode). JS flushes its pending commands first, so order holds.
  Napi::Value SendNow(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!ok_ || threaded_ || info.Length() < 3 || !info[2].IsTypedArray()) return Napi::Boolean::New(env, false);
    const uint32_t slot = info[0].As<Napi::Number>().Uint32Value();
    const uint32_t gen = info[1].As<Napi::Number>().Uint32Value();
    Napi::Uint8Array a = info[2].As<Napi::Uint8Array>();
    const bool ok = core_.loop(0)->send_now(slot, gen, a.Data(), a.ByteLength());
    return Napi::Boolean::New(env, ok);
  }

  Napi::Value Listen(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!ok_) return Napi::Number::New(env, -EBADF);
    std::string host = info[0].As<Napi::String>().Utf8Value();
    const int port = info[1].As<Napi::Number>().Int32Value();
    const int backlog = info[2].As<Napi::Number>().Int32Value();
    const bool reuse_port = info[3].ToBoolean().Value();
    const bool v6only = info[4].ToBoolean().Value();
    const SockOpts o = OptsFrom(info[5]);
    sockaddr_storage ss;
    socklen_t sl = 0;
    int r = sock_resolve(host.c_str(), port, &ss, &sl);
    if (r < 0) return Napi::Number::New(env, r);
    uint32_t w[6];
    const uint32_t id = core_.next_listener_id();
    // One listening socket per loop (SO_REUSEPORT spreads accepts over the threads).
    const bool spread = core_.nloops() > 1;
    if (spread && !reuse_port && port != 0) {
      // The user did not ask for SO_REUSEPORT: a port already held (even by
      // our own reuseport group) must still say EADDRINUSE. A plain bind tells.
      SocketHandle probe = kInvalidSocket;
      int pr = sock_listen(reinterpret_cast<sockaddr*>(&ss), sl, -1, false, v6only, &probe, false);
      if (pr < 0) return Napi::Number::New(env, pr);
      sock_close(probe);
    }
    for (uint32_t i = 0; i < core_.nloops(); ++i) {
      Loop* lp = core_.loop(i);
      int rr = 0;
      uint32_t ww[6];
      const std::function<void()> task = [&] {
        rr = lp->listen(reinterpret_cast<sockaddr*>(&ss), sl, backlog, reuse_port || spread, v6only, o, id, ww);
      };
      lp->run_sync(task);
      if (rr < 0) {
        for (uint32_t j = 0; j < i; ++j) {
          Loop* lj = core_.loop(j);
          const std::function<void()> undo = [&] { lj->close_listener(id); };
          lj->run_sync(undo);
        }
        return Napi::Number::New(env, rr);
      }
      if (i == 0) {
        std::memcpy(w, ww, sizeof w);
        // The other loops bind the port the first one got (port 0 asks for one).
        sock_set_port(&ss, static_cast<uint16_t>(w[1]));
      }
    }
    UpdateRef();
    Napi::Array a = Napi::Array::New(env, 7);
    a.Set(0u, Napi::Number::New(env, id));
    for (uint32_t i = 0; i < 6; ++i) a.Set(i + 1, Napi::Number::New(env, w[i]));
    return a;
  }

  Napi::Value CloseListener(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!ok_) return Napi::Number::New(env, -EBADF);
    const uint32_t id = info[0].As<Napi::Number>().Uint32Value();
    int r = 0;
    for (uint32_t i = 0; i < core_.nloops(); ++i) {
      Loop* lp = core_.loop(i);
      int rr = 0;
      const std::function<void()> task = [&] { rr = lp->close_listener(id); };
      lp->run_sync(task);
      if (rr < 0) r = rr;
    }
    UpdateRef();
    return Napi::Number::New(env, r);
  }

  Napi::Value Connect(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!ok_) {
      ThrowErrno(env, -EBADF, "engine destroyed");
      return env.Undefined();
    }
    std::string host = info[0].As<Napi::String>().Utf8Value();
    const int port = info[1].As<Napi::Number>().Int32Value();
    std::string local = info[2].IsString() ? info[2].As<Napi::String>().Utf8Value() : std::string();
    const SockOpts o = OptsFrom(info[3]);
    sockaddr_storage rs, ls;
    socklen_t rl = 0, ll = 0;
    uint32_t slot = 0, gen = 0;
    int r = sock_resolve(host.c_str(), port, &rs, &rl);
    if (r == 0 && !local.empty()) r = sock_resolve(local.c_str(), 0, &ls, &ll);
    Loop* loop = core_.next_connect_loop();
    const int resolved = r;
    const std::function<void()> task = [&] {
      if (resolved < 0) {
        r = loop->connect_failed(resolved == kErrResolveFailed ? kErrNotFound : -resolved, &slot, &gen);
      } else {
        r = loop->connect(reinterpret_cast<sockaddr*>(&rs), rl, local.empty() ? nullptr : reinterpret_cast<sockaddr*>(&ls), ll,
                          o, &slot, &gen);
      }
    };
    loop->run_sync(task);
    if (r < 0) {
      ThrowErrno(env, r, "connect");
      return env.Undefined();
    }
    UpdateRef();
    Napi::Array a = Napi::Array::New(env, 2);
    a.Set(0u, Napi::Number::New(env, slot));
    a.Set(1u, Napi::Number::New(env, gen));
    return a;
  }

  Napi::Value SetSocketOptions(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!ok_) return Napi::Number::New(env, -EBADF);
    const uint32_t slot = info[0].As<Napi::Number>().Uint32Value();
    const uint32_t gen = info[1].As<Napi::Number>().Uint32Value();
    Loop* lp = core_.loop_of_slot(slot);
    const SockOpts o = OptsFrom(info[2]);
    int r = 0;
    const std::function<void()> task = [&] { r = lp->set_options(slot, gen, o); };
    lp->run_sync(task);
    return Napi::Number::New(env, r);
  }

  Napi::Value Counters(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    double subs = 0, recvs = 0, chunks = 0, slabs = 0;
    if (ok_) {
      for (uint32_t i = 0; i < core_.nloops(); ++i) {
        Loop* lp = core_.loop(i);
        subs += static_cast<double>(threaded_ ? lp->stat_submissions() : lp->stats().send_submissions);
        recvs += static_cast<double>(threaded_ ? lp->stat_recv_calls() : lp->stats().recv_calls);
        chunks += static_cast<double>(lp->send_chunk_bytes());
        slabs += static_cast<double>(lp->send_slab_bytes());
      }
    }
    Napi::Array a = Napi::Array::New(env, 4);
    a.Set(0u, Napi::Number::New(env, subs));
    a.Set(1u, Napi::Number::New(env, recvs));
    a.Set(2u, Napi::Number::New(env, chunks));
    a.Set(3u, Napi::Number::New(env, slabs));
    return a;
  }

  Napi::Value Features(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    if (!ok_) return o;
    struct Ctx {
      Napi::Env env;
      Napi::Object o;
    } ctx{env, o};
    core_.loop(0)->backend()->features(
        [](void* p, const char* k, const char* v) {
          Ctx* c = static_cast<Ctx*>(p);
          c->o.Set(k, Napi::String::New(c->env, v));
        },
        &ctx);
    return o;
  }

  Napi::Value Destroy(const Napi::CallbackInfo& info) {
    Teardown(false);
    return info.Env().Undefined();
  }

  // Closes everything without calling JS. Detaches the ArrayBuffers over
  // native memory first, so a view kept by mistake reads as empty instead
  // of freed memory.
  void Teardown(bool from_cleanup_hook) {
    if (torn_down_) return;
    torn_down_ = true;
    ok_ = false;
    if (hook_added_) {
      napi_remove_env_cleanup_hook(env_, CleanupHook, this);
      hook_added_ = false;
    }
    for (uint32_t i = 0; i < core_.nloops(); ++i) core_.loop(i)->stop_thread();
    if (driver_ != nullptr) {
      driver_->close();
      delete driver_;
      driver_ = nullptr;
    }
    if (!from_cleanup_hook) {
      for (Napi::Reference<Napi::ArrayBuffer>& ref : buffer_refs_) {
        if (!ref.IsEmpty()) {
          Napi::ArrayBuffer ab = ref.Value();
          if (!ab.IsEmpty() && !ab.IsDetached()) ab.Detach();
        }
        ref.Reset();
      }
    }
    buffer_refs_.clear();
    core_.destroy();
    std::free(events_);
    events_ = nullptr;
    std::free(commands_);
    commands_ = nullptr;
    // References can be deleted from a cleanup hook too (the env is still alive).
    on_batch_.Reset();
    if (async_ctx_ != nullptr) napi_async_destroy(env_, async_ctx_);
    async_ctx_ = nullptr;
  }

  napi_env env_ = nullptr;
  std::string backend_;
  EngineCore core_;
  Napi::FunctionReference on_batch_;
  napi_async_context async_ctx_ = nullptr;
  std::vector<Napi::Reference<Napi::ArrayBuffer>> buffer_refs_;
  uint8_t* events_ = nullptr;
  uint8_t* commands_ = nullptr;
  size_t rec_head_ = 0;
  LoopDriver* driver_ = nullptr;
  size_t last_busy_ = static_cast<size_t>(-1);  // forces the first set_ref
  bool threaded_ = false;
  std::vector<Rec> js_fifo_;
  std::vector<uint64_t> taken_seq_;
  bool ok_ = false;
  bool torn_down_ = false;
  bool hook_added_ = false;
};

}  // namespace

void InitEngine(Napi::Env env, Napi::Object exports) {
  exports.Set("NativeEngine", NativeEngine::Define(env));
  const BackendKind* kinds = nullptr;
  const size_t n = backend_kinds(&kinds);
  Napi::Array backends = Napi::Array::New(env, n);
  for (size_t i = 0; i < n; ++i) backends.Set(static_cast<uint32_t>(i), Napi::String::New(env, kinds[i].name));
  exports.Set("backends", backends);
}

}  // namespace fastport
