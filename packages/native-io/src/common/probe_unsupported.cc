// probe_platform() for operating systems with no native engine (macOS, the
// BSDs, ...): the addon still loads (version() works) and the probe says why
// there is nothing to use, so the `node` engine is picked.
#include "fastport.h"

namespace fastport {

PlatformProbe probe_platform() {
#if defined(__APPLE__)
  const char* platform = "darwin";
#elif defined(__FreeBSD__)
  const char* platform = "freebsd";
#elif defined(__OpenBSD__)
  const char* platform = "openbsd";
#elif defined(__NetBSD__)
  const char* platform = "netbsd";
#elif defined(__sun)
  const char* platform = "sunos";
#elif defined(_AIX)
  const char* platform = "aix";
#else
  const char* platform = "unknown";
#endif
  return unsupported_probe(platform, "native probe not built on this platform");
}

}  // namespace fastport
