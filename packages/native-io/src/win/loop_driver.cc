// The Windows loop driver (see binding/loop_driver.h). Node's Windows headers
// here have no uv.h, and libuv could not watch a completion port anyway
// (uv_poll takes sockets only), so everything goes through N-API
// thread-safe functions:
//  - I/O threads: notify() calls the thread-safe function (coalesced: one
//    call in the queue at most), which runs on_posted() on the JS thread;
//  - inline (ioThreads 0): a waiter thread blocks in iocp_wait_readiness()
//    (takes one packet from the port and posts it back, so every completion
//    is still handled by poll() on the JS thread), then calls the
//    thread-safe function and waits until JS has run on_ready(), which
//    drains the port, before it waits again (else it would take the same
//    packet back at once). When on_ready() stopped with work left
//    (kPollMore: receive memory short, or a ready list the port knows
//    nothing of) the waiter calls again without waiting. The housekeeping
//    timer is the waiter's wait timeout.
#include <windows.h>

#include <node_api.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <new>
#include <thread>

#include "binding/loop_driver.h"
#include "win/port_backend.h"

namespace fastport {
namespace {

class WinLoopDriver;

// The thread-safe function's context. It outlives the driver: calls still
// queued when the driver closes find driver == nullptr; the function's
// finalizer deletes it.
struct TsfnContext {
  WinLoopDriver* driver = nullptr;
};

class WinLoopDriver final : public LoopDriver {
 public:
  WinLoopDriver(napi_env env, const LoopDriverHooks& hooks) : env_(env), hooks_(hooks) {}
  ~WinLoopDriver() override { close(); }

  int start_inline(Backend* backend) override {
    int r = create_tsfn();
    if (r != 0) return r;
    backend_ = backend;
    inline_ = true;
    thread_ = std::thread([this] { waiter_main(); });
    return 0;
  }

  int start_threaded() override { return create_tsfn(); }

  void notify() override {
    if (posted_.exchange(true, std::memory_order_acq_rel)) return;  // a call is already queued
    if (napi_call_threadsafe_function(tsfn_, nullptr, napi_tsfn_nonblocking) != napi_ok)
      posted_.store(false, std::memory_order_release);  // closing
  }

  void set_ref(bool busy) override {
    if (tsfn_ == nullptr) return;
    if (busy) {
      napi_ref_threadsafe_function(env_, tsfn_);
    } else {
      napi_unref_threadsafe_function(env_, tsfn_);
    }
  }

  void schedule_maintenance(int ms) override {
    if (!inline_) return;
    std::unique_lock<std::mutex> lk(mu_);
    if (ms < 0) {
      due_ = 0;  // a waiter woken by the old deadline finds nothing due
      return;
    }
    const uint64_t due = GetTickCount64() + static_cast<uint64_t>(ms);
    if (due_ != 0 && due_ <= due) return;  // already due no later
    due_ = due;
    const bool waiting = !in_js_;
    lk.unlock();
    // The waiter may be blocked with a later (or no) deadline: a wake packet
    // makes it run JS once and wait again with this one.
    if (waiting) backend_->wake();
  }

  void close() override {
    hooks_ = LoopDriverHooks{};
    if (thread_.joinable()) {
      {
        std::lock_guard<std::mutex> g(mu_);
        stop_ = true;
      }
      cv_.notify_all();
      backend_->wake();  // returns the waiter from the port
      thread_.join();
    }
    if (tsfn_ != nullptr) {
      ctx_->driver = nullptr;
      napi_release_threadsafe_function(tsfn_, napi_tsfn_abort);
      tsfn_ = nullptr;
      ctx_ = nullptr;  // the finalizer frees it
    }
  }

 private:
  static constexpr uint32_t kReady = 1;
  static constexpr uint32_t kMaintenance = 2;

  int create_tsfn() {
    ctx_ = new (std::nothrow) TsfnContext();
    if (ctx_ == nullptr) return -ENOMEM;
    ctx_->driver = this;
    napi_value name;
    if (napi_create_string_utf8(env_, "FastPortLoopDriver", NAPI_AUTO_LENGTH, &name) != napi_ok) return -EINVAL;
    if (napi_create_threadsafe_function(env_, nullptr, nullptr, name, 0, 1, ctx_, Finalize, ctx_, CallJs, &tsfn_) !=
        napi_ok) {
      delete ctx_;
      ctx_ = nullptr;
      tsfn_ = nullptr;
      return -EINVAL;
    }
    // Like an unreferenced libuv handle until the engine has connections.
    napi_unref_threadsafe_function(env_, tsfn_);
    return 0;
  }

  static void Finalize(napi_env env, void* data, void* hint) {
    (void)env;
    (void)hint;
    delete static_cast<TsfnContext*>(data);
  }

  static void CallJs(napi_env env, napi_value js_cb, void* context, void* data) {
    (void)js_cb;
    (void)data;
    TsfnContext* ctx = static_cast<TsfnContext*>(context);
    if (env == nullptr || ctx == nullptr || ctx->driver == nullptr) return;  // torn down
    ctx->driver->on_js();
  }

  // JS thread.
  void on_js() {
    if (!inline_) {
      posted_.store(false, std::memory_order_release);
      if (hooks_.on_posted != nullptr) hooks_.on_posted(hooks_.ctx);
      return;
    }
    uint32_t what;
    {
      std::lock_guard<std::mutex> g(mu_);
      what = pending_;
      pending_ = 0;
      if (what & kMaintenance) due_ = 0;
    }
    bool more = false;
    if ((what & kMaintenance) && hooks_.on_maintenance != nullptr) hooks_.on_maintenance(hooks_.ctx);
    if ((what & kReady) && hooks_.on_ready != nullptr) more = hooks_.on_ready(hooks_.ctx);
    {
      std::lock_guard<std::mutex> g(mu_);
      in_js_ = false;
      again_ = more;
    }
    cv_.notify_all();
  }

  // Waiter thread (inline mode).
  void waiter_main() {
    std::unique_lock<std::mutex> lk(mu_);
    while (!stop_) {
      cv_.wait(lk, [&] { return stop_ || !in_js_; });
      if (stop_) break;
      uint32_t what = 0;
      if (again_) {
        again_ = false;
        what = kReady;
      } else {
        DWORD timeout = INFINITE;
        if (due_ != 0) {
          const uint64_t now = GetTickCount64();
          timeout = due_ <= now ? 0 : static_cast<DWORD>(due_ - now);
        }
        lk.unlock();
        const int r = port_wait_readiness(backend_, timeout);
        lk.lock();
        if (stop_) break;
        if (r != 0) {
          what = kReady;  // a failure too: poll() reports it
          if (r < 0) {
            // Do not spin on a port that keeps failing.
            lk.unlock();
            Sleep(10);
            lk.lock();
          }
        }
        if (due_ != 0 && GetTickCount64() >= due_) what |= kMaintenance;
        if (what == 0) continue;  // the deadline moved meanwhile
      }
      pending_ |= what;
      in_js_ = true;
      if (napi_call_threadsafe_function(tsfn_, nullptr, napi_tsfn_nonblocking) != napi_ok) break;  // closing
    }
  }

  napi_env env_;
  LoopDriverHooks hooks_;
  napi_threadsafe_function tsfn_ = nullptr;
  TsfnContext* ctx_ = nullptr;
  std::atomic<bool> posted_{false};
  bool inline_ = false;
  Backend* backend_ = nullptr;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool in_js_ = false;   // a call is queued or running: the port is JS's
  bool again_ = false;   // JS stopped with work left: call again without waiting
  uint32_t pending_ = 0; // kReady | kMaintenance for the queued call
  uint64_t due_ = 0;     // GetTickCount64() of the housekeeping deadline; 0 = none
};

}  // namespace

LoopDriver* new_loop_driver(napi_env env, const LoopDriverHooks& hooks) {
  return new (std::nothrow) WinLoopDriver(env, hooks);
}

}  // namespace fastport
