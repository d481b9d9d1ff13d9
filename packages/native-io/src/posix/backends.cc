// The backends of the Linux build (see common/backends.h). uring is listed
// only when linux/uring_backend.cc is linked in (new_uring_backend is weak).
#include "common/backends.h"

namespace fastport {

size_t backend_kinds(const BackendKind** out) {
  static BackendKind table[2];
  static size_t n = [] {
    size_t i = 0;
    table[i++] = BackendKind{"epoll", new_epoll_backend};
    if (&new_uring_backend != nullptr) table[i++] = BackendKind{"uring", new_uring_backend};
    return i;
  }();
  *out = table;
  return n;
}

}  // namespace fastport
