#include "fastport.h"

// binding.gyp defines FASTPORT_VERSION from package.json.
#ifndef FASTPORT_VERSION
#define FASTPORT_VERSION "0.0.0-dev"
#endif

namespace fastport {

const char* version() { return FASTPORT_VERSION; }

}  // namespace fastport
