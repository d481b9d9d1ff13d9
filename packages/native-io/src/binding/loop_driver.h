// How the binding gets the JS thread to run the engine: the one platform
// split of the binding, so engine_napi.cc has no #ifdef and no libuv.
//
//   binding/loop_driver_uv.cc  (Linux) uv_poll on the backend's wait_fd()
//                              (inline), uv_async (I/O threads), uv_timer
//                              (housekeeping)
//   win/loop_driver.cc         (Windows; Node's headers there have no uv.h
//                              and libuv cannot watch a completion port)
//                              N-API thread-safe functions, and for inline
//                              mode a waiter thread on the completion port
//
// Every method runs on the JS thread except notify(), which any thread may
// call. No hook runs after close() returned.
#ifndef FASTPORT_BINDING_LOOP_DRIVER_H_
#define FASTPORT_BINDING_LOOP_DRIVER_H_

#include <node_api.h>

#include "common/backend.h"

namespace fastport {

struct LoopDriverHooks {
  void* ctx = nullptr;
  // Inline mode: the backend (probably) has work; poll it. Returns true when
  // it stopped with work left (kPollMore): the driver then calls again soon
  // even if the backend's wait handle does not say so.
  bool (*on_ready)(void* ctx) = nullptr;
  // I/O threads: some loop posted records (notify() was called).
  void (*on_posted)(void* ctx) = nullptr;
  // The housekeeping timer set with schedule_maintenance() fired.
  void (*on_maintenance)(void* ctx) = nullptr;
};

class LoopDriver {
 public:
  virtual ~LoopDriver() = default;
  // One of the two, once. 0 or -errno.
  virtual int start_inline(Backend* backend) = 0;
  virtual int start_threaded() = 0;
  // Thread-safe: on_posted() runs soon on the JS thread (coalesced).
  virtual void notify() = 0;
  // Keeps Node's loop alive (busy: connections or listeners) or not.
  virtual void set_ref(bool busy) = 0;
  // on_maintenance() in `ms` ms (unless already due sooner); ms < 0 stops it.
  virtual void schedule_maintenance(int ms) = 0;
  // Stops every handle and thread; no hook runs afterwards. The driver is
  // deleted by the caller after this.
  virtual void close() = 0;
};

// nullptr when out of memory.
LoopDriver* new_loop_driver(napi_env env, const LoopDriverHooks& hooks);

}  // namespace fastport

#endif  // FASTPORT_BINDING_LOOP_DRIVER_H_
