// FastPort native core: the one internal header.
//
// Everything here is portable C++17 with no OS types, so the N-API binding
// (binding.cc) and the shared code (common/) need no #ifdef. Each platform
// folder (linux/, win/) provides the functions declared under "per platform".
#ifndef FASTPORT_H_
#define FASTPORT_H_

#include <cerrno>
#include <cstdint>
#include <string>
#include <vector>

namespace fastport {

// ---------------------------------------------------------------- common/

// The addon version (package.json "version", baked in at build time).
const char* version();

// POSIX name of an errno value ("EPERM", "ENOSYS", ...), "EUNKNOWN" if unknown.
const char* errno_name(int err);

// ---------------------------------------------------------------- probe

// One named capability bit, in a stable order (the binding turns a list of
// these into a JS object with boolean values).
struct NamedFlag {
  const char* name;
  bool value;
};

struct UringProbe {
  // io_uring_setup() worked. When false, `error` holds its errno.
  bool available = false;
  int error = 0;

  // kernel.io_uring_disabled (0 enabled, 1 privileged/group only, 2 off);
  // -1 when the sysctl does not exist (kernels before 6.6) or is unreadable.
  int disabled_sysctl = -1;

  // io_uring_params.features, raw and by name.
  uint32_t features_mask = 0;
  std::vector<NamedFlag> features;

  // IORING_REGISTER_PROBE: last opcode the kernel knows, -1 if the probe
  // itself is unsupported (kernels before 5.6) or failed.
  int last_op = -1;
  std::vector<NamedFlag> ops;

  // io_uring_setup() flags, each tried on a throwaway ring.
  std::vector<NamedFlag> setup_flags;

  // IORING_REGISTER_PBUF_RING (5.19) and IOU_PBUF_RING_INC (6.12).
  bool buf_ring = false;
  bool buf_ring_incremental = false;

  // Probed by submitting the operation on a throwaway ring; derived from the
  // kernel version only when the probe itself could not run (see notes).
  bool multishot_accept = false;
  bool multishot_recv = false;

  // Anything odd met while probing (probe steps that failed for reasons
  // other than "not supported").
  std::vector<std::string> notes;
};

struct EpollProbe {
  bool available = false;
  int error = 0;
};

// Registered I/O (Windows): the RIO function table could be fetched. When
// false, `error` holds the errno (ENOSYS off Windows, EOPNOTSUPP where
// WSAIoctl answers WSAEOPNOTSUPP, as under Wine) and wsa_error the Winsock
// code (0 off Windows).
struct RioProbe {
  bool available = false;
  int error = ENOSYS;
  int wsa_error = 0;
};

// Every platform reports the same shape: where there is no io_uring (or no
// epoll) the section says available = false, error ENOSYS.
struct PlatformProbe {
  std::string platform;  // Node's process.platform spelling: "linux", "win32", ...
  std::string kernel;    // uname release on POSIX; OS version elsewhere ("" if unknown)
  UringProbe uring;
  EpollProbe epoll;
  RioProbe rio;
  std::string note;      // set when this platform's probe is not built yet
};

// common/probe_common.cc: a UringProbe with every named capability present
// and false (the names come from common/uring_tables.h).
void init_uring_probe(UringProbe* u);

// common/probe_common.cc: the probe of a platform without native engines.
PlatformProbe unsupported_probe(const char* platform, const char* note);

// ---------------------------------------------------------------- per platform

// linux/probe_linux.cc, win/probe_win.cc, common/probe_unsupported.cc.
PlatformProbe probe_platform();

}  // namespace fastport

#endif  // FASTPORT_H_
