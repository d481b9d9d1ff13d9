// The backends this build has, by name. The list is per platform
// (posix/backends.cc: epoll, uring; win/backends.cc: iocp, rio), so the core
// and the binding never name a platform's backend themselves.
#ifndef FASTPORT_COMMON_BACKENDS_H_
#define FASTPORT_COMMON_BACKENDS_H_

#include <cstddef>

#include "common/backend.h"

namespace fastport {

struct BackendKind {
  const char* name;
  // nullptr only when out of memory; init() reports what the kernel refuses.
  Backend* (*make)();
};

// The table of this build's backends (only those actually linked in);
// returns its length.
size_t backend_kinds(const BackendKind** out);

// A new backend by name; nullptr with *err = -EINVAL (unknown name) or -ENOMEM.
Backend* new_backend_named(const char* name, int* err);

}  // namespace fastport

#endif  // FASTPORT_COMMON_BACKENDS_H_
