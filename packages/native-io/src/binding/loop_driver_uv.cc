// The libuv loop driver (see binding/loop_driver.h): inline mode watches the
// backend's wait_fd() with a level-triggered uv_poll_t (an epoll fd, an
// io_uring eventfd), I/O threads post through one uv_async_t, housekeeping
// runs from an unreferenced uv_timer_t.
#include <uv.h>

#include <cerrno>
#include <new>

#include "binding/loop_driver.h"

namespace fastport {
namespace {

class UvLoopDriver final : public LoopDriver {
 public:
  UvLoopDriver(napi_env env, const LoopDriverHooks& hooks) : env_(env), hooks_(hooks) {}
  ~UvLoopDriver() override { close(); }

  int start_inline(Backend* backend) override {
    int r = loop(&loop_);
    if (r < 0) return r;
    poll_ = new (std::nothrow) uv_poll_t;
    if (poll_ == nullptr) return -ENOMEM;
    poll_->data = this;
    r = uv_poll_init(loop_, poll_, static_cast<int>(backend->wait_fd()));
    if (r != 0) {
      delete poll_;
      poll_ = nullptr;
      return r;
    }
    r = uv_poll_start(poll_, UV_READABLE, OnPoll);
    if (r != 0) return r;  // close() closes the initialised handle
    uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
    // An idle inline loop has no turns: this timer runs its housekeeping
    // (returning idle send slabs). Unreferenced: it never keeps Node alive.
    timer_ = new (std::nothrow) uv_timer_t;
    if (timer_ == nullptr) return -ENOMEM;
    r = uv_timer_init(loop_, timer_);
    if (r != 0) {
      delete timer_;
      timer_ = nullptr;
      return r;
    }
    timer_->data = this;
    uv_unref(reinterpret_cast<uv_handle_t*>(timer_));
    return 0;
  }

  int start_threaded() override {
    int r = loop(&loop_);
    if (r < 0) return r;
    async_ = new (std::nothrow) uv_async_t;
    if (async_ == nullptr) return -ENOMEM;
    async_->data = this;
    r = uv_async_init(loop_, async_, OnAsync);
    if (r != 0) {
      delete async_;
      async_ = nullptr;
      return r;
    }
    uv_unref(reinterpret_cast<uv_handle_t*>(async_));
    return 0;
  }

  void notify() override { uv_async_send(async_); }

  void set_ref(bool busy) override {
    uv_handle_t* h = async_ != nullptr ? reinterpret_cast<uv_handle_t*>(async_) : reinterpret_cast<uv_handle_t*>(poll_);
    if (h == nullptr) return;
    if (busy) {
      uv_ref(h);
    } else {
      uv_unref(h);
    }
  }

  void schedule_maintenance(int ms) override {
    if (timer_ == nullptr) return;
    if (ms < 0) {
      if (due_ != 0) uv_timer_stop(timer_);
      due_ = 0;
      return;
    }
    const uint64_t due = uv_now(loop_) + static_cast<uint64_t>(ms);
    if (due_ != 0 && due_ <= due) return;  // already due no later
    due_ = due;
    uv_timer_start(timer_, OnTimer, static_cast<uint64_t>(ms), 0);
  }

  void close() override {
    hooks_ = LoopDriverHooks{};
    if (async_ != nullptr) {
      async_->data = nullptr;
      uv_close(reinterpret_cast<uv_handle_t*>(async_), [](uv_handle_t* h) { delete reinterpret_cast<uv_async_t*>(h); });
      async_ = nullptr;
    }
    if (poll_ != nullptr) {
      uv_poll_stop(poll_);
      poll_->data = nullptr;
      uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
      poll_ = nullptr;
    }
    if (timer_ != nullptr) {
      uv_timer_stop(timer_);
      timer_->data = nullptr;
      uv_close(reinterpret_cast<uv_handle_t*>(timer_), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
      timer_ = nullptr;
    }
  }

 private:
  int loop(uv_loop_t** out) {
    if (napi_get_uv_event_loop(env_, out) != napi_ok || *out == nullptr) return -EINVAL;
    return 0;
  }

  static void OnPoll(uv_poll_t* h, int status, int events) {
    (void)status;
    (void)events;
    UvLoopDriver* self = static_cast<UvLoopDriver*>(h->data);
    // Level-triggered: work left after this run makes the fd fire again.
    if (self != nullptr && self->hooks_.on_ready != nullptr) self->hooks_.on_ready(self->hooks_.ctx);
  }

  static void OnAsync(uv_async_t* h) {
    UvLoopDriver* self = static_cast<UvLoopDriver*>(h->data);
    if (self != nullptr && self->hooks_.on_posted != nullptr) self->hooks_.on_posted(self->hooks_.ctx);
  }

  static void OnTimer(uv_timer_t* h) {
    UvLoopDriver* self = static_cast<UvLoopDriver*>(h->data);
    if (self == nullptr) return;
    self->due_ = 0;
    if (self->hooks_.on_maintenance != nullptr) self->hooks_.on_maintenance(self->hooks_.ctx);
  }

  napi_env env_;
  LoopDriverHooks hooks_;
  uv_loop_t* loop_ = nullptr;
  uv_poll_t* poll_ = nullptr;
  uv_async_t* async_ = nullptr;
  uv_timer_t* timer_ = nullptr;
  uint64_t due_ = 0;  // uv_now() at which the timer fires; 0 = stopped
};

}  // namespace

LoopDriver* new_loop_driver(napi_env env, const LoopDriverHooks& hooks) {
  return new (std::nothrow) UvLoopDriver(env, hooks);
}

}  // namespace fastport
