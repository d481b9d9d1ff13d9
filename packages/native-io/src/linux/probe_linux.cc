// probe_platform() for Linux: what this kernel's io_uring can do, found by
// asking it (io_uring_setup, IORING_REGISTER_PROBE, throwaway rings and
// throwaway operations), plus epoll. Every fd and mapping opened here is
// closed before returning; every syscall result is checked.
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/utsname.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "common/uring_tables.h"
#include "fastport.h"
#include "linux/uring/ring.h"

namespace fastport {
namespace {

using uring::Ring;

// Bounded waits in the probes: every probe operation completes at once when
// supported (its data or connection is already there) and fails at once when
// not, so this only guards against a kernel that behaves unexpectedly.
constexpr int kProbeWaitMs = 1000;

// ------------------------------------------------------------ tables
// Names and ABI numbers live in common/uring_tables.h (every platform reports
// the same shape); check them against this host's header where it has them.
namespace t = uring_tables;

static_assert(t::kFeatures[0].bit == IORING_FEAT_SINGLE_MMAP, "feature table");
static_assert(t::kFeatures[5].bit == IORING_FEAT_FAST_POLL, "feature table");
static_assert(t::kFeatures[8].bit == IORING_FEAT_EXT_ARG, "feature table");
static_assert(t::kFeatures[14].bit == IORING_FEAT_RECVSEND_BUNDLE, "feature table");
static_assert(t::kFeatures[t::kFeatureCount - 1].bit == IORING_FEAT_NO_IOWAIT, "feature table");
static_assert(uring::kOpAccept == IORING_OP_ACCEPT, "opcode numbers (linux/uring/ring.h)");
static_assert(uring::kOpAsyncCancel == IORING_OP_ASYNC_CANCEL, "opcode numbers (linux/uring/ring.h)");
static_assert(uring::kOpRecv == IORING_OP_RECV, "opcode numbers (linux/uring/ring.h)");
static_assert(std::string_view(t::kOps[uring::kOpAccept]) == "accept", "opcode table");
static_assert(std::string_view(t::kOps[uring::kOpRecv]) == "recv", "opcode table");
static_assert(t::kSetupCqsize == IORING_SETUP_CQSIZE, "setup flag table");
static_assert(t::kSetupSubmitAll == IORING_SETUP_SUBMIT_ALL, "setup flag table");
static_assert(t::kSetupCoopTaskrun == IORING_SETUP_COOP_TASKRUN, "setup flag table");
static_assert(t::kSetupTaskrunFlag == IORING_SETUP_TASKRUN_FLAG, "setup flag table");
static_assert(t::kSetupSingleIssuer == IORING_SETUP_SINGLE_ISSUER, "setup flag table");
static_assert(t::kSetupDeferTaskrun == IORING_SETUP_DEFER_TASKRUN, "setup flag table");
static_assert(t::kSetupNoSqarray == IORING_SETUP_NO_SQARRAY, "setup flag table");
static_assert(t::kOpCount <= 256, "IORING_REGISTER_PROBE reports at most 256 opcodes");

// ------------------------------------------------------------ helpers
std::string err_text(const char* what, int neg_errno) {
  std::string s(what);
  s += ": ";
  s += errno_name(-neg_errno);
  return s;
}

struct KernelVersion {
  int major = 0, minor = 0, patch = 0;
  bool at_least(int ma, int mi) const { return major > ma || (major == ma && minor >= mi); }
};

KernelVersion parse_kernel(const std::string& release) {
  KernelVersion v;
  // "6.18.44-fc-v669" -> 6, 18, 44. Missing parts stay 0.
  if (std::sscanf(release.c_str(), "%d.%d.%d", &v.major, &v.minor, &v.patch) < 2) {
    v = KernelVersion{};
  }
  return v;
}

// Reads a small integer file such as /proc/sys/kernel/io_uring_disabled.
// Returns -1 if it is missing or unreadable.
int read_int_file(const char* path) {
  UniqueFd fd(::open(path, O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return -1;
  char buf[32];
  ssize_t n;
  do {
    n = ::read(fd.get(), buf, sizeof(buf) - 1);
  } while (n < 0 && errno == EINTR);
  if (n <= 0) return -1;
  buf[n] = '\0';
  char* end = nullptr;
  long v = std::strtol(buf, &end, 10);
  if (end == buf) return -1;
  return static_cast<int>(v);
}

// io_uring_setup with `flags`, then close. Returns 0 or -errno.
int try_setup(uint32_t flags) {
  io_uring_params p;
  std::memset(&p, 0, sizeof(p));
  p.flags = flags;
  if (flags & IORING_SETUP_CQSIZE) p.cq_entries = 64;
  int fd = uring::sys_setup(4, &p);
  if (fd < 0) return fd;
  UniqueFd owned(fd);
  return owned.reset();
}

// Registers / unregisters a provided-buffer ring. Returns 0 or -errno.
int register_buf_ring(int ring_fd, void* mem, unsigned entries, uint16_t bgid, uint16_t flags) {
  uring::BufReg reg;
  std::memset(&reg, 0, sizeof(reg));
  reg.ring_addr = reinterpret_cast<uint64_t>(mem);
  reg.ring_entries = entries;
  reg.bgid = bgid;
  reg.flags = flags;
  return uring::sys_register(ring_fd, uring::kRegisterPbufRing, &reg, 1);
}

int unregister_buf_ring(int ring_fd, uint16_t bgid) {
  uring::BufReg reg;
  std::memset(&reg, 0, sizeof(reg));
  reg.bgid = bgid;
  return uring::sys_register(ring_fd, uring::kUnregisterPbufRing, &reg, 1);
}

// Page-sized anonymous mapping, unmapped on scope exit.
class PageBuffer {
 public:
  PageBuffer() {
    long ps = sysconf(_SC_PAGESIZE);
    len_ = ps > 0 ? static_cast<size_t>(ps) : 4096;
    void* p = mmap(nullptr, len_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      error_ = -errno;
    } else {
      mem_ = p;
    }
  }
  PageBuffer(const PageBuffer&) = delete;
  PageBuffer& operator=(const PageBuffer&) = delete;
  ~PageBuffer() { release(); }
  int release() {
    if (mem_ == nullptr) return 0;
    int r = munmap(mem_, len_) == 0 ? 0 : -errno;
    mem_ = nullptr;
    return r;
  }
  void* get() const { return mem_; }
  size_t size() const { return len_; }
  int error() const { return error_; }

 private:
  void* mem_ = nullptr;
  size_t len_ = 0;
  int error_ = 0;
};

// Waits (bounded) for the CQE of `user_data`. Returns true and fills *out if
// it came; CQEs of other requests are dropped.
bool wait_for_cqe(Ring& ring, uint64_t user_data, io_uring_cqe* out, std::string* err) {
  for (int round = 0; round < 4; ++round) {
    io_uring_cqe cqe;
    while (ring.pop_cqe(&cqe)) {
      if (cqe.user_data == user_data) {
        *out = cqe;
        return true;
      }
    }
    int r = ring.submit_and_wait(1, kProbeWaitMs);
    if (r < 0) {
      *err = err_text("io_uring_enter", r);
      return false;
    }
  }
  *err = "no completion within the probe's wait";
  return false;
}

// Cancels a still-armed multishot request and reaps both completions, so
// nothing is left in flight when the ring, the sockets and the buffer ring
// go away. Returns "" or what went wrong.
std::string cancel_multishot(Ring& ring, uint64_t target) {
  constexpr uint64_t kCancelTag = 0xCA4CE1ULL;
  io_uring_sqe* sqe = ring.next_sqe();
  if (sqe == nullptr) return "cancel: submission queue full";
  sqe->opcode = uring::kOpAsyncCancel;
  sqe->fd = -1;
  sqe->addr = target;
  sqe->user_data = kCancelTag;
  bool cancel_done = false;
  bool target_done = false;
  for (int round = 0; round < 4 && !(cancel_done && target_done); ++round) {
    int r = ring.submit_and_wait(1, kProbeWaitMs);
    if (r < 0) return err_text("cancel: io_uring_enter", r);
    io_uring_cqe cqe;
    while (ring.pop_cqe(&cqe)) {
      if (cqe.user_data == kCancelTag) cancel_done = true;
      if (cqe.user_data == target && (cqe.flags & IORING_CQE_F_MORE) == 0) target_done = true;
    }
  }
  if (!cancel_done || !target_done) return "cancel: completions did not arrive";
  return "";
}

// Result of one operation probe.
enum class OpProbe { kSupported, kUnsupported, kCouldNotRun };

// Multishot accept (5.19): on an abstract AF_UNIX listener with a connection
// already queued, an ACCEPT with IORING_ACCEPT_MULTISHOT completes at once
// with the new fd and IORING_CQE_F_MORE. Older kernels answer -EINVAL (or,
// when they ignore the flag, complete without F_MORE).
OpProbe probe_multishot_accept(std::string* note) {
  UniqueFd lfd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!lfd.valid()) {
    *note = err_text("socket", -errno);
    return OpProbe::kCouldNotRun;
  }
  sockaddr_un addr;
  std::memset(&addr, 0, sizeof(addr));
  addr.sun_family = AF_UNIX;
  // Binding only the family autobinds a unique abstract address.
  if (::bind(lfd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(sa_family_t)) != 0) {
    *note = err_text("bind", -errno);
    return OpProbe::kCouldNotRun;
  }
  if (::listen(lfd.get(), 4) != 0) {
    *note = err_text("listen", -errno);
    return OpProbe::kCouldNotRun;
  }
  socklen_t alen = sizeof(addr);
  if (::getsockname(lfd.get(), reinterpret_cast<sockaddr*>(&addr), &alen) != 0) {
    *note = err_text("getsockname", -errno);
    return OpProbe::kCouldNotRun;
  }
  UniqueFd cfd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!cfd.valid()) {
    *note = err_text("socket", -errno);
    return OpProbe::kCouldNotRun;
  }
  if (::connect(cfd.get(), reinterpret_cast<sockaddr*>(&addr), alen) != 0) {
    *note = err_text("connect", -errno);
    return OpProbe::kCouldNotRun;
  }

  Ring ring;  // declared after the sockets: torn down before them
  io_uring_params p;
  std::memset(&p, 0, sizeof(p));
  int r = ring.init(4, &p);
  if (r < 0) {
    *note = err_text("io_uring_setup", r);
    return OpProbe::kCouldNotRun;
  }
  constexpr uint64_t kTag = 0xACCE97ULL;
  io_uring_sqe* sqe = ring.next_sqe();
  if (sqe == nullptr) {
    *note = "submission queue full";
    return OpProbe::kCouldNotRun;
  }
  sqe->opcode = uring::kOpAccept;
  sqe->fd = lfd.get();
  sqe->ioprio = IORING_ACCEPT_MULTISHOT;
  sqe->accept_flags = SOCK_CLOEXEC;
  sqe->user_data = kTag;

  io_uring_cqe cqe;
  std::string err;
  if (!wait_for_cqe(ring, kTag, &cqe, &err)) {
    *note = err;
    return OpProbe::kCouldNotRun;
  }
  if (cqe.res < 0) {
    if (cqe.res == -EINVAL || cqe.res == -EOPNOTSUPP) return OpProbe::kUnsupported;
    *note = err_text("accept", cqe.res);
    return OpProbe::kCouldNotRun;
  }
  UniqueFd accepted(cqe.res);
  const bool more = (cqe.flags & IORING_CQE_F_MORE) != 0;
  if (more) {
    std::string c = cancel_multishot(ring, kTag);
    if (!c.empty()) *note = c;
  }
  int cr = accepted.reset();
  if (cr < 0 && note->empty()) *note = err_text("close", cr);
  cr = ring.destroy();
  if (cr < 0 && note->empty()) *note = err_text("ring teardown", cr);
  return more ? OpProbe::kSupported : OpProbe::kUnsupported;
}

// Provided buffer rings (5.19), incremental consumption (6.12) and multishot
// recv (6.0), on one throwaway ring: a socketpair with one byte waiting, a
// buffer ring with two buffers, and a RECV with IORING_RECV_MULTISHOT +
// IOSQE_BUFFER_SELECT must complete at once with that byte and F_MORE.
void probe_buffers_and_recv(UringProbe* u, OpProbe* recv, std::string* recv_note) {
  *recv = OpProbe::kCouldNotRun;
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) != 0) {
    *recv_note = err_text("socketpair", -errno);
    // The buffer-ring checks below do not need the sockets.
    sv[0] = sv[1] = -1;
  }
  UniqueFd a(sv[0]);
  UniqueFd b(sv[1]);

  PageBuffer page;
  if (page.get() == nullptr) {
    u->notes.push_back(err_text("bufRing probe: mmap", page.error()));
    return;
  }
  Ring ring;  // after the page and sockets: torn down first
  io_uring_params p;
  std::memset(&p, 0, sizeof(p));
  int r = ring.init(4, &p);
  if (r < 0) {
    u->notes.push_back(err_text("bufRing probe: io_uring_setup", r));
    return;
  }

  // Incremental consumption, on its own group so it cannot disturb group 0.
  constexpr uint16_t kIncGroup = 1;
  r = register_buf_ring(ring.fd(), page.get(), 4, kIncGroup, uring::kPbufRingIncremental);
  if (r == 0) {
    u->buf_ring_incremental = true;
    int ur = unregister_buf_ring(ring.fd(), kIncGroup);
    if (ur < 0) u->notes.push_back(err_text("bufRing probe: unregister", ur));
  } else if (r != -EINVAL) {
    u->notes.push_back(err_text("bufRing incremental probe: register", r));
  }

  // The ring of group 0: 4 entries of 16 bytes at the start of the page,
  // buffer memory from the page's second half.
  constexpr uint16_t kGroup = 0;
  constexpr unsigned kEntries = 4;
  r = register_buf_ring(ring.fd(), page.get(), kEntries, kGroup, 0);
  if (r < 0) {
    if (r != -EINVAL) u->notes.push_back(err_text("bufRing probe: register", r));
    // No buffer rings: multishot recv (newer still) cannot be there either.
    *recv = OpProbe::kUnsupported;
    return;
  }
  u->buf_ring = true;

  if (a.valid()) {
    char* base = static_cast<char*>(page.get());
    uring::Buf* bufs = reinterpret_cast<uring::Buf*>(base);
    const size_t half = page.size() / 2;
    const uint32_t buf_len = 64;
    for (uint16_t i = 0; i < 2; ++i) {
      bufs[i].addr = reinterpret_cast<uint64_t>(base + half + i * buf_len);
      bufs[i].len = buf_len;
      bufs[i].bid = i;  // bufs[0].resv is the ring tail: left alone
    }
    uint16_t* tail = reinterpret_cast<uint16_t*>(base + uring::kBufRingTailOffset);
    __atomic_store_n(tail, static_cast<uint16_t>(2), __ATOMIC_RELEASE);

    ssize_t w;
    do {
      w = ::write(b.get(), "x", 1);
    } while (w < 0 && errno == EINTR);
    if (w != 1) {
      *recv_note = err_text("write", w < 0 ? -errno : -EIO);
    } else {
      constexpr uint64_t kTag = 0x4ECFULL;
      io_uring_sqe* sqe = ring.next_sqe();
      if (sqe == nullptr) {
        *recv_note = "submission queue full";
      } else {
        sqe->opcode = uring::kOpRecv;
        sqe->fd = a.get();
        sqe->flags = IOSQE_BUFFER_SELECT;
        sqe->ioprio = IORING_RECV_MULTISHOT;
        sqe->buf_group = kGroup;
        sqe->len = 0;
        sqe->user_data = kTag;
        io_uring_cqe cqe;
        std::string err;
        if (!wait_for_cqe(ring, kTag, &cqe, &err)) {
          *recv_note = err;
        } else if (cqe.res < 0) {
          if (cqe.res == -EINVAL || cqe.res == -EOPNOTSUPP) {
            *recv = OpProbe::kUnsupported;
          } else {
            *recv_note = err_text("recv", cqe.res);
          }
        } else {
          const bool more = (cqe.flags & IORING_CQE_F_MORE) != 0;
          const bool buffer = (cqe.flags & IORING_CQE_F_BUFFER) != 0;
          *recv = (more && buffer && cqe.res == 1) ? OpProbe::kSupported : OpProbe::kUnsupported;
          if (more) {
            std::string c = cancel_multishot(ring, kTag);
            if (!c.empty()) u->notes.push_back("multishotRecv probe: " + c);
          }
        }
      }
    }
  }

  int ur = unregister_buf_ring(ring.fd(), kGroup);
  if (ur < 0) u->notes.push_back(err_text("bufRing probe: unregister", ur));
  int dr = ring.destroy();
  if (dr < 0) u->notes.push_back(err_text("bufRing probe: ring teardown", dr));
  int pr = page.release();
  if (pr < 0) u->notes.push_back(err_text("bufRing probe: munmap", pr));
}

void probe_uring(UringProbe* u, const KernelVersion& kv) {
  // Everything false, in the stable order, so a refusing kernel still yields
  // the full shape.
  init_uring_probe(u);
  u->disabled_sysctl = read_int_file("/proc/sys/kernel/io_uring_disabled");

  // 1. Can we have a ring at all?
  io_uring_params p;
  std::memset(&p, 0, sizeof(p));
  int fd = uring::sys_setup(4, &p);
  if (fd < 0) {
    u->available = false;
    u->error = -fd;
    return;
  }
  UniqueFd ring_fd(fd);
  u->available = true;
  u->features_mask = p.features;
  for (size_t i = 0; i < u->features.size(); ++i) {
    u->features[i].value = (p.features & t::kFeatures[i].bit) != 0;
  }

  // 2. Which opcodes (5.6+).
  {
    const size_t n = 256;
    const size_t size = sizeof(io_uring_probe) + n * sizeof(io_uring_probe_op);
    io_uring_probe* probe = static_cast<io_uring_probe*>(std::calloc(1, size));
    if (probe == nullptr) {
      u->notes.push_back("ops probe: out of memory");
    } else {
      int r = uring::sys_register(ring_fd.get(), uring::kRegisterProbe, probe, n);
      if (r < 0) {
        if (r != -EINVAL) u->notes.push_back(err_text("ops probe: io_uring_register", r));
      } else {
        u->last_op = probe->last_op;
        for (unsigned i = 0; i < probe->ops_len && i < n; ++i) {
          const io_uring_probe_op& op = probe->ops[i];
          if (op.op < t::kOpCount && (op.flags & IO_URING_OP_SUPPORTED)) {
            u->ops[op.op].value = true;
          }
        }
      }
      std::free(probe);
    }
  }
  int cr = ring_fd.reset();
  if (cr < 0) u->notes.push_back(err_text("close", cr));

  // 3. Setup flags, each on its own throwaway ring.
  for (size_t i = 0; i < u->setup_flags.size(); ++i) {
    int r = try_setup(t::kSetupFlags[i].bit);
    u->setup_flags[i].value = (r == 0);
    if (r < 0 && r != -EINVAL) {
      u->notes.push_back(err_text(t::kSetupFlags[i].name, r));
    }
  }

  // 4. Buffer rings and multishot operations, by doing them. A probe that
  // could not run (no sockets, no memory, ...) falls back to the kernel
  // version, and says so.
  OpProbe recv = OpProbe::kCouldNotRun;
  std::string recv_note;
  probe_buffers_and_recv(u, &recv, &recv_note);

  std::string accept_note;
  OpProbe accept = OpProbe::kCouldNotRun;
  if ((u->features_mask & IORING_FEAT_EXT_ARG) == 0) {
    // Kernels before 5.11: no bounded waits, and far older than multishot.
    accept = OpProbe::kUnsupported;
    if (recv == OpProbe::kCouldNotRun) recv = OpProbe::kUnsupported;
  } else {
    accept = probe_multishot_accept(&accept_note);
  }

  const bool accept_by_version = u->ops[uring::kOpAccept].value && kv.at_least(5, 19);
  const bool recv_by_version = u->buf_ring && kv.at_least(6, 0);
  if (accept == OpProbe::kCouldNotRun) {
    u->multishot_accept = accept_by_version;
    u->notes.push_back("multishotAccept probe could not run (" + accept_note +
                       "); derived from the kernel version");
  } else {
    u->multishot_accept = (accept == OpProbe::kSupported);
    if (!accept_note.empty()) u->notes.push_back("multishotAccept probe: " + accept_note);
  }
  if (recv == OpProbe::kCouldNotRun) {
    u->multishot_recv = recv_by_version;
    u->notes.push_back("multishotRecv probe could not run (" + recv_note +
                       "); derived from the kernel version");
  } else {
    u->multishot_recv = (recv == OpProbe::kSupported);
  }
}

void probe_epoll(EpollProbe* e) {
  UniqueFd fd(::epoll_create1(EPOLL_CLOEXEC));
  if (!fd.valid()) {
    e->available = false;
    e->error = errno;
    return;
  }
  e->available = true;
  int r = fd.reset();
  if (r < 0) {
    e->available = false;
    e->error = -r;
  }
}

}  // namespace

PlatformProbe probe_platform() {
  PlatformProbe out;
  out.platform = "linux";
  struct utsname un;
  if (::uname(&un) == 0) out.kernel = un.release;
  const KernelVersion kv = parse_kernel(out.kernel);

  probe_uring(&out.uring, kv);
  probe_epoll(&out.epoll);
  return out;
}

}  // namespace fastport
