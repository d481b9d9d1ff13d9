// probe_platform() for Windows: a placeholder until the IOCP / RIO engines
// land. It must keep compiling with MSVC and with the mingw-w64 cross
// compiler, so it uses nothing beyond the C++ standard library for now.
#include "fastport.h"

namespace fastport {

PlatformProbe probe_platform() {
  return unsupported_probe("win32", "native probe not built on this platform yet (IOCP/RIO probes pending)");
}

}  // namespace fastport
