// What every Windows backend (iocp, rio) is besides the common contract: a
// completion port that the inline-mode loop driver (win/loop_driver.cc) can
// wait on from a helper thread.
#ifndef FASTPORT_WIN_PORT_BACKEND_H_
#define FASTPORT_WIN_PORT_BACKEND_H_

#include <cstdint>

#include "common/backend.h"

namespace fastport {

class PortBackend : public Backend {
 public:
  // Blocks until the port has a packet, which it leaves for poll() (takes
  // it and posts it back). 1 = work ready, 0 = timeout, -errno on failure.
  // Besides wake() the only method another thread may call; not again
  // before poll() ran.
  virtual int wait_readiness(uint32_t timeout_ms) = 0;
};

// Every backend of the Windows build is a PortBackend (win/backends.cc).
inline int port_wait_readiness(Backend* backend, uint32_t timeout_ms) {
  return static_cast<PortBackend*>(backend)->wait_readiness(timeout_ms);
}

}  // namespace fastport

#endif  // FASTPORT_WIN_PORT_BACKEND_H_
