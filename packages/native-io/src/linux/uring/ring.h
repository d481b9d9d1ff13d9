// io_uring through raw syscalls (no liburing), Linux only: the kernel ABI
// (constants, structs and syscalls newer than the build host's header) and
// Ring, a minimal ring (setup, the three mmaps, SQE submission, CQE reaping).
// Used by the probe (linux/probe_linux.cc) and the uring backend
// (linux/uring/backend.cc). Not thread-safe: one ring, one submitting thread.
//
// Structures come from the kernel's uapi <linux/io_uring.h> (any header from
// 5.7 on has what this file uses). Anything newer than the build host's
// header is defined here: #define constants behind #ifndef, and enum values
// (opcodes, register codes, which #ifndef cannot see) as our own constexpr
// numbers, which are kernel ABI and never change.
#ifndef FASTPORT_LINUX_URING_RING_H_
#define FASTPORT_LINUX_URING_RING_H_

#include <linux/io_uring.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstddef>
#include <cstdint>

// ------------------------------------------------------------ syscall numbers
// Unified numbering since 5.1 on every architecture except alpha and mips.
#ifndef __NR_io_uring_setup
#if defined(__alpha__)
#define __NR_io_uring_setup 535
#define __NR_io_uring_enter 536
#define __NR_io_uring_register 537
#elif defined(__mips__)
#error "io_uring syscall numbers unknown for this mips ABI: use newer libc headers"
#else
#define __NR_io_uring_setup 425
#define __NR_io_uring_enter 426
#define __NR_io_uring_register 427
#endif
#endif

// ------------------------------------------------------------ setup flags
#ifndef IORING_SETUP_CQSIZE
#define IORING_SETUP_CQSIZE (1U << 3)
#endif
#ifndef IORING_SETUP_SUBMIT_ALL
#define IORING_SETUP_SUBMIT_ALL (1U << 7)
#endif
#ifndef IORING_SETUP_COOP_TASKRUN
#define IORING_SETUP_COOP_TASKRUN (1U << 8)
#endif
#ifndef IORING_SETUP_TASKRUN_FLAG
#define IORING_SETUP_TASKRUN_FLAG (1U << 9)
#endif
#ifndef IORING_SETUP_SINGLE_ISSUER
#define IORING_SETUP_SINGLE_ISSUER (1U << 12)
#endif
#ifndef IORING_SETUP_DEFER_TASKRUN
#define IORING_SETUP_DEFER_TASKRUN (1U << 13)
#endif
#ifndef IORING_SETUP_R_DISABLED
#define IORING_SETUP_R_DISABLED (1U << 6)
#endif
#ifndef IORING_SETUP_NO_SQARRAY
#define IORING_SETUP_NO_SQARRAY (1U << 16)
#endif

// ------------------------------------------------------------ features
#ifndef IORING_FEAT_SINGLE_MMAP
#define IORING_FEAT_SINGLE_MMAP (1U << 0)
#endif
#ifndef IORING_FEAT_NODROP
#define IORING_FEAT_NODROP (1U << 1)
#endif
#ifndef IORING_FEAT_SUBMIT_STABLE
#define IORING_FEAT_SUBMIT_STABLE (1U << 2)
#endif
#ifndef IORING_FEAT_RW_CUR_POS
#define IORING_FEAT_RW_CUR_POS (1U << 3)
#endif
#ifndef IORING_FEAT_CUR_PERSONALITY
#define IORING_FEAT_CUR_PERSONALITY (1U << 4)
#endif
#ifndef IORING_FEAT_FAST_POLL
#define IORING_FEAT_FAST_POLL (1U << 5)
#endif
#ifndef IORING_FEAT_POLL_32BITS
#define IORING_FEAT_POLL_32BITS (1U << 6)
#endif
#ifndef IORING_FEAT_SQPOLL_NONFIXED
#define IORING_FEAT_SQPOLL_NONFIXED (1U << 7)
#endif
#ifndef IORING_FEAT_EXT_ARG
#define IORING_FEAT_EXT_ARG (1U << 8)
#endif
#ifndef IORING_FEAT_NATIVE_WORKERS
#define IORING_FEAT_NATIVE_WORKERS (1U << 9)
#endif
#ifndef IORING_FEAT_RSRC_TAGS
#define IORING_FEAT_RSRC_TAGS (1U << 10)
#endif
#ifndef IORING_FEAT_CQE_SKIP
#define IORING_FEAT_CQE_SKIP (1U << 11)
#endif
#ifndef IORING_FEAT_LINKED_FILE
#define IORING_FEAT_LINKED_FILE (1U << 12)
#endif
#ifndef IORING_FEAT_REG_REG_RING
#define IORING_FEAT_REG_REG_RING (1U << 13)
#endif
#ifndef IORING_FEAT_RECVSEND_BUNDLE
#define IORING_FEAT_RECVSEND_BUNDLE (1U << 14)
#endif
#ifndef IORING_FEAT_MIN_TIMEOUT
#define IORING_FEAT_MIN_TIMEOUT (1U << 15)
#endif
#ifndef IORING_FEAT_RW_ATTR
#define IORING_FEAT_RW_ATTR (1U << 16)
#endif
#ifndef IORING_FEAT_NO_IOWAIT
#define IORING_FEAT_NO_IOWAIT (1U << 17)
#endif

// ------------------------------------------------------------ sqe / cqe / enter
#ifndef IOSQE_BUFFER_SELECT
#define IOSQE_BUFFER_SELECT (1U << 5)
#endif
#ifndef IORING_RECV_MULTISHOT
#define IORING_RECV_MULTISHOT (1U << 1)
#endif
#ifndef IORING_ACCEPT_MULTISHOT
#define IORING_ACCEPT_MULTISHOT (1U << 0)
#endif
#ifndef IORING_CQE_F_BUFFER
#define IORING_CQE_F_BUFFER (1U << 0)
#endif
#ifndef IORING_CQE_F_MORE
#define IORING_CQE_F_MORE (1U << 1)
#endif
#ifndef IORING_ENTER_GETEVENTS
#define IORING_ENTER_GETEVENTS (1U << 0)
#endif
#ifndef IORING_ENTER_EXT_ARG
#define IORING_ENTER_EXT_ARG (1U << 3)
#endif
#ifndef IORING_OFF_SQ_RING
#define IORING_OFF_SQ_RING 0ULL
#endif
#ifndef IORING_OFF_CQ_RING
#define IORING_OFF_CQ_RING 0x8000000ULL
#endif
#ifndef IORING_OFF_SQES
#define IORING_OFF_SQES 0x10000000ULL
#endif
#ifndef IORING_CQE_BUFFER_SHIFT
#define IORING_CQE_BUFFER_SHIFT 16
#endif
#ifndef IORING_CQE_F_SOCK_NONEMPTY
#define IORING_CQE_F_SOCK_NONEMPTY (1U << 2)
#endif
#ifndef IORING_SQ_NEED_WAKEUP
#define IORING_SQ_NEED_WAKEUP (1U << 0)
#endif
#ifndef IORING_SQ_CQ_OVERFLOW
#define IORING_SQ_CQ_OVERFLOW (1U << 1)
#endif
#ifndef IORING_SQ_TASKRUN
#define IORING_SQ_TASKRUN (1U << 2)
#endif
#ifndef IORING_ASYNC_CANCEL_ALL
#define IORING_ASYNC_CANCEL_ALL (1U << 0)
#endif
#ifndef IORING_ASYNC_CANCEL_FD
#define IORING_ASYNC_CANCEL_FD (1U << 1)
#endif
#ifndef IORING_ASYNC_CANCEL_ANY
#define IORING_ASYNC_CANCEL_ANY (1U << 2)
#endif
#ifndef IORING_RECVSEND_POLL_FIRST
#define IORING_RECVSEND_POLL_FIRST (1U << 0)
#endif
#ifndef IORING_POLL_ADD_MULTI
#define IORING_POLL_ADD_MULTI (1U << 0)
#endif
#ifndef IO_URING_OP_SUPPORTED
#define IO_URING_OP_SUPPORTED (1U << 0)
#endif

namespace fastport {
namespace uring {

// ------------------------------------------------------------ enum values (ABI)
// io_uring_register() opcodes.
constexpr unsigned kRegisterEventfd = 4;
constexpr unsigned kUnregisterEventfd = 5;
constexpr unsigned kRegisterProbe = 8;
constexpr unsigned kRegisterEnableRings = 12;
constexpr unsigned kRegisterPbufRing = 22;
constexpr unsigned kUnregisterPbufRing = 23;

// Flags of IORING_REGISTER_PBUF_RING.
constexpr uint16_t kPbufRingIncremental = 2;  // IOU_PBUF_RING_INC (6.12)

// SQE opcodes (enum io_uring_op, kernel ABI; the probe's names for them are
// in common/uring_tables.h). Spelled as numbers so an old header still builds.
constexpr uint8_t kOpNop = 0;
constexpr uint8_t kOpPollAdd = 6;
constexpr uint8_t kOpSendmsg = 9;
constexpr uint8_t kOpTimeout = 11;
constexpr uint8_t kOpAccept = 13;
constexpr uint8_t kOpAsyncCancel = 14;
constexpr uint8_t kOpConnect = 16;
constexpr uint8_t kOpClose = 19;
constexpr uint8_t kOpRead = 22;
constexpr uint8_t kOpSend = 26;
constexpr uint8_t kOpRecv = 27;
constexpr uint8_t kOpProvideBuffers = 31;
constexpr uint8_t kOpShutdown = 34;

// ------------------------------------------------------------ structs newer than 5.7
// struct io_uring_buf_reg (5.19); the tail of it changed names over time
// (resv[3] -> min_left + resv[5]) but not size or meaning: zero it.
struct BufReg {
  uint64_t ring_addr;
  uint32_t ring_entries;
  uint16_t bgid;
  uint16_t flags;
  uint64_t resv[3];
};
static_assert(sizeof(BufReg) == 40, "io_uring_buf_reg is 40 bytes");

// struct io_uring_buf (5.19). In a buffer ring the ring's tail overlays
// bufs[0].resv, so code writing bufs[0] must not touch `resv`.
struct Buf {
  uint64_t addr;
  uint32_t len;
  uint16_t bid;
  uint16_t resv;
};
static_assert(sizeof(Buf) == 16, "io_uring_buf is 16 bytes");
constexpr unsigned kBufRingTailOffset = 14;  // offsetof(io_uring_buf_ring, tail)

// struct __kernel_timespec and struct io_uring_getevents_arg (5.11).
struct KernelTimespec {
  int64_t tv_sec;
  long long tv_nsec;
};
struct GeteventsArg {
  uint64_t sigmask;
  uint32_t sigmask_sz;
  uint32_t pad;  // min_wait_usec on 6.12+; 0 = none
  uint64_t ts;
};
static_assert(sizeof(GeteventsArg) == 24, "io_uring_getevents_arg is 24 bytes");

// ------------------------------------------------------------ syscalls
// Each returns the result, or -errno on failure (never touches errno's meaning
// for the caller beyond that).

inline int sys_setup(unsigned entries, io_uring_params* p) {
  long r = syscall(__NR_io_uring_setup, entries, p);
  return r < 0 ? -errno : static_cast<int>(r);
}

inline int sys_enter(int fd, unsigned to_submit, unsigned min_complete, unsigned flags,
                     const void* arg, size_t argsz) {
  long r = syscall(__NR_io_uring_enter, fd, to_submit, min_complete, flags, arg, argsz);
  return r < 0 ? -errno : static_cast<int>(r);
}

inline int sys_register(int fd, unsigned opcode, const void* arg, unsigned nr_args) {
  long r = syscall(__NR_io_uring_register, fd, opcode, arg, nr_args);
  return r < 0 ? -errno : static_cast<int>(r);
}

}  // namespace uring

// ------------------------------------------------------------ fd ownership
// Owns one file descriptor; closes it exactly once.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = o.release();
    }
    return *this;
  }
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  // Closes the fd; returns 0 or -errno. EINTR still releases the fd on Linux,
  // so it is not retried.
  int reset() {
    if (fd_ < 0) return 0;
    int r = ::close(fd_);
    fd_ = -1;
    return (r < 0 && errno != EINTR) ? -errno : 0;
  }

 private:
  int fd_ = -1;
};

}  // namespace fastport

// ------------------------------------------------------------ the ring
namespace fastport {
namespace uring {

class Ring {
 public:
  Ring() = default;
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;
  ~Ring() { destroy(); }

  // Sets up the ring with `params` (flags etc. filled by the caller; the
  // kernel's answer is copied back). Returns 0 or -errno.
  int init(unsigned entries, io_uring_params* params);

  // Unmaps everything and closes the ring fd (which cancels what is still
  // in flight). Returns 0 or the first -errno met. Safe to call twice.
  int destroy();

  int fd() const { return fd_.get(); }
  uint32_t features() const { return features_; }

  // A zeroed SQE to fill, or nullptr if the submission queue is full.
  io_uring_sqe* next_sqe();

  // Submits the SQEs taken since the last call and waits for `wait_nr`
  // completions (0 = do not wait). With `timeout_ms` >= 0 the wait is bounded
  // (needs IORING_FEAT_EXT_ARG, else -EOPNOTSUPP). Returns the number of SQEs
  // submitted (a timed-out wait is not an error; check the CQ), or -errno.
  int submit_and_wait(unsigned wait_nr, int timeout_ms);

  // Copies the oldest CQE into *out and consumes it; false if the CQ is empty.
  bool pop_cqe(io_uring_cqe* out);

  // ---- engine fast path (uring/backend.cc) ----

  // SQEs taken with next_sqe() and not yet handed to the kernel.
  unsigned sq_pending() const { return sqe_tail_ - sqe_head_; }
  unsigned sq_entries() const { return sq_entries_; }
  unsigned cq_entries() const { return cq_mask_ + 1; }

  // Publishes the pending SQEs and calls io_uring_enter once: submit them
  // and, with `getevents`, run deferred task work (DEFER_TASKRUN) and wait
  // for `wait_nr` CQEs (0 = no wait; timeout_ms < 0 = no bound). Returns the
  // number submitted or -errno; EINTR is retried, ETIME/EBUSY/EAGAIN count
  // as "nothing more now" (0 or what was submitted).
  int enter(unsigned wait_nr, bool getevents, int timeout_ms);

  // Visits every ready CQE in place (no copy) and consumes them with one
  // release store. Returns how many were visited. `fn` may take SQEs but
  // must not reap the CQ.
  template <typename Fn>
  unsigned drain_cqes(Fn&& fn) {
    if (cqes_ == nullptr) return 0;
    unsigned head = *cq_head_;
    const unsigned tail = __atomic_load_n(cq_tail_, __ATOMIC_ACQUIRE);
    const unsigned n = tail - head;
    for (; head != tail; ++head) fn(cqes_[head & cq_mask_]);
    __atomic_store_n(cq_head_, tail, __ATOMIC_RELEASE);
    return n;
  }
  unsigned cq_ready() const {
    if (cqes_ == nullptr) return 0;
    return __atomic_load_n(cq_tail_, __ATOMIC_ACQUIRE) - *cq_head_;
  }
  // IORING_SQ_* flags the kernel sets (TASKRUN with COOP_TASKRUN|TASKRUN_FLAG,
  // CQ_OVERFLOW when the CQ overflowed and entries wait in the kernel).
  unsigned sq_flags() const { return sq_flags_ ? __atomic_load_n(sq_flags_, __ATOMIC_ACQUIRE) : 0; }
  // IORING_REGISTER_ENABLE_RINGS for a ring made with IORING_SETUP_R_DISABLED:
  // with SINGLE_ISSUER the calling thread becomes the ring's only submitter.
  int enable();
  int register_op(unsigned opcode, const void* arg, unsigned nr) { return sys_register(fd_.get(), opcode, arg, nr); }

 private:
  UniqueFd fd_;
  uint32_t features_ = 0;

  void* sq_map_ = nullptr;
  size_t sq_map_len_ = 0;
  void* cq_map_ = nullptr;  // == sq_map_ with IORING_FEAT_SINGLE_MMAP
  size_t cq_map_len_ = 0;
  io_uring_sqe* sqes_ = nullptr;
  size_t sqes_len_ = 0;

  unsigned* sq_head_ = nullptr;
  unsigned* sq_tail_ = nullptr;
  unsigned sq_mask_ = 0;
  unsigned sq_entries_ = 0;
  unsigned* sq_array_ = nullptr;
  unsigned* sq_flags_ = nullptr;
  unsigned sqe_head_ = 0;  // SQEs handed out but not yet published
  unsigned sqe_tail_ = 0;

  unsigned* cq_head_ = nullptr;
  unsigned* cq_tail_ = nullptr;
  unsigned cq_mask_ = 0;
  io_uring_cqe* cqes_ = nullptr;
};

}  // namespace uring
}  // namespace fastport

#endif  // FASTPORT_LINUX_URING_RING_H_
