// probe_platform() for Windows: no io_uring or epoll (the common unsupported
// shape), plus whether the system has the RIO function table (the rio
// engine's precondition; Wine has none).
#include "fastport.h"
#include "win/rio_table.h"

namespace fastport {

PlatformProbe probe_platform() {
  PlatformProbe p = unsupported_probe("win32", "io_uring and epoll are Linux engines; Windows has iocp and rio");
  rio::FunctionTable table;
  int wsa = 0;
  const int r = rio::load_system_table(&table, &wsa);
  p.rio.available = r == 0;
  p.rio.error = r < 0 ? -r : 0;
  p.rio.wsa_error = wsa;
  return p;
}

}  // namespace fastport
