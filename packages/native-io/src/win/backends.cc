// The backends of the Windows build (see common/backends.h).
#include "common/backends.h"
#include "win/iocp.h"
#include "win/rio.h"

namespace fastport {

size_t backend_kinds(const BackendKind** out) {
  static const BackendKind table[] = {
      {"iocp", new_iocp_backend},
      {"rio", new_rio_backend},
      // The rio backend on the emulated RIO table (tests without RIO; only
      // ever asked for by name, see lib/native-engine.ts).
      {"rio-emulated", new_rio_emulated_backend},
  };
  *out = table;
  return sizeof table / sizeof table[0];
}

}  // namespace fastport
