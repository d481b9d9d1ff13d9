// A minimal io_uring ring over raw syscalls: setup, the three mmaps, SQE
// submission and CQE reaping. Used by the probe today; the uring engine
// builds on it. Not thread-safe: one ring, one submitting thread.
#ifndef FASTPORT_LINUX_URING_RING_H_
#define FASTPORT_LINUX_URING_RING_H_

#include <cstddef>
#include <cstdint>

#include "linux/uring_sys.h"

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

  // ---- engine fast path (uring_loop) ----

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
