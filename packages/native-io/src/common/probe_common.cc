#include <cerrno>

#include "common/uring_tables.h"
#include "fastport.h"

namespace fastport {

void init_uring_probe(UringProbe* u) {
  *u = UringProbe{};
  for (const uring_tables::Bit& f : uring_tables::kFeatures) u->features.push_back({f.name, false});
  for (const char* name : uring_tables::kOps) u->ops.push_back({name, false});
  for (const uring_tables::Bit& s : uring_tables::kSetupFlags) u->setup_flags.push_back({s.name, false});
}

PlatformProbe unsupported_probe(const char* platform, const char* note) {
  PlatformProbe out;
  out.platform = platform;
  out.note = note;
  init_uring_probe(&out.uring);
  out.uring.available = false;
  out.uring.error = ENOSYS;
  out.epoll.available = false;
  out.epoll.error = ENOSYS;
  return out;
}

}  // namespace fastport
