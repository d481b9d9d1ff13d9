// The IOCP backend (win/iocp.cc) beyond the common Backend contract.
#ifndef FASTPORT_WIN_IOCP_H_
#define FASTPORT_WIN_IOCP_H_

#include <cstddef>
#include <cstdint>

#include "common/backend.h"

namespace fastport {

// One completion port per loop. nullptr only when out of memory.
Backend* new_iocp_backend();

// Inline mode (ioThreads 0) on Node's loop: libuv cannot watch a completion
// port (uv_poll takes sockets only), so a helper thread calls this, blocking
// until the port has a packet, and then wakes the JS thread (uv_async_send).
// The packet is not consumed: it is posted back to the port, so every
// completion is still dequeued and handled by poll() on the loop thread and
// the backend keeps one thread's state. Returns 1 when work is ready, 0 on
// timeout, -errno on failure. The only method besides wake() that may run on
// another thread; the caller must not call it again before poll() ran.
int iocp_wait_readiness(Backend* backend, uint32_t timeout_ms);

// Debug counters: per-connection and per-listener contexts alive, and
// operations the kernel still owns. All zero once everything is closed.
struct IocpLive {
  size_t conns;
  size_t listeners;
  size_t ops;
};
IocpLive iocp_live(const Backend* backend);

}  // namespace fastport

#endif  // FASTPORT_WIN_IOCP_H_
