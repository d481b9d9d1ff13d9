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
