#include "linux/uring/ring.h"

#include <sys/mman.h>

#include <cstring>

namespace fastport {
namespace uring {
namespace {

template <typename T>
T* at(void* base, uint32_t offset) {
  return reinterpret_cast<T*>(static_cast<char*>(base) + offset);
}

int map_region(int fd, size_t len, uint64_t offset, void** out) {
  void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd,
                 static_cast<off_t>(offset));
  if (p == MAP_FAILED) return -errno;
  *out = p;
  return 0;
}

int unmap_region(void* p, size_t len) {
  if (p == nullptr) return 0;
  return munmap(p, len) == 0 ? 0 : -errno;
}

}  // namespace

int Ring::init(unsigned entries, io_uring_params* params) {
  if (fd_.valid()) return -EBUSY;
  int fd = sys_setup(entries, params);
  if (fd < 0) return fd;
  fd_ = UniqueFd(fd);
  features_ = params->features;

  sq_map_len_ = params->sq_off.array + params->sq_entries * sizeof(unsigned);
  cq_map_len_ = params->cq_off.cqes + params->cq_entries * sizeof(io_uring_cqe);
  const bool single = (params->features & IORING_FEAT_SINGLE_MMAP) != 0;
  if (single && cq_map_len_ > sq_map_len_) sq_map_len_ = cq_map_len_;

  int r = map_region(fd, sq_map_len_, IORING_OFF_SQ_RING, &sq_map_);
  if (r < 0) {
    destroy();
    return r;
  }
  if (single) {
    cq_map_ = sq_map_;
  } else {
    r = map_region(fd, cq_map_len_, IORING_OFF_CQ_RING, &cq_map_);
    if (r < 0) {
      destroy();
      return r;
    }
  }
  sqes_len_ = params->sq_entries * sizeof(io_uring_sqe);
  void* sqes = nullptr;
  r = map_region(fd, sqes_len_, IORING_OFF_SQES, &sqes);
  if (r < 0) {
    destroy();
    return r;
  }
  sqes_ = static_cast<io_uring_sqe*>(sqes);

  sq_head_ = at<unsigned>(sq_map_, params->sq_off.head);
  sq_tail_ = at<unsigned>(sq_map_, params->sq_off.tail);
  sq_mask_ = *at<unsigned>(sq_map_, params->sq_off.ring_mask);
  sq_entries_ = *at<unsigned>(sq_map_, params->sq_off.ring_entries);
  sq_array_ = at<unsigned>(sq_map_, params->sq_off.array);
  sq_flags_ = at<unsigned>(sq_map_, params->sq_off.flags);
  // Identity SQ index array: SQE i always sits in slot i, so publishing is
  // one tail store (no per-SQE array write on the hot path).
  for (unsigned i = 0; i < sq_entries_; ++i) sq_array_[i] = i;
  sqe_head_ = sqe_tail_ = *sq_tail_;

  cq_head_ = at<unsigned>(cq_map_, params->cq_off.head);
  cq_tail_ = at<unsigned>(cq_map_, params->cq_off.tail);
  cq_mask_ = *at<unsigned>(cq_map_, params->cq_off.ring_mask);
  cqes_ = at<io_uring_cqe>(cq_map_, params->cq_off.cqes);
  return 0;
}

int Ring::destroy() {
  int first = 0;
  auto keep = [&first](int r) {
    if (first == 0 && r < 0) first = r;
  };
  if (sqes_ != nullptr) keep(unmap_region(sqes_, sqes_len_));
  if (cq_map_ != nullptr && cq_map_ != sq_map_) keep(unmap_region(cq_map_, cq_map_len_));
  if (sq_map_ != nullptr) keep(unmap_region(sq_map_, sq_map_len_));
  sqes_ = nullptr;
  cq_map_ = nullptr;
  sq_map_ = nullptr;
  sq_head_ = sq_tail_ = sq_array_ = sq_flags_ = cq_head_ = cq_tail_ = nullptr;
  cqes_ = nullptr;
  keep(fd_.reset());
  return first;
}

io_uring_sqe* Ring::next_sqe() {
  if (sqes_ == nullptr) return nullptr;
  const unsigned head = __atomic_load_n(sq_head_, __ATOMIC_ACQUIRE);
  if (sqe_tail_ - head >= sq_entries_) return nullptr;
  io_uring_sqe* sqe = &sqes_[sqe_tail_ & sq_mask_];
  ++sqe_tail_;
  std::memset(sqe, 0, sizeof(*sqe));
  return sqe;
}

int Ring::submit_and_wait(unsigned wait_nr, int timeout_ms) {
  if (!fd_.valid()) return -EBADF;
  // Publish the SQEs taken since the last submit.
  unsigned tail = *sq_tail_;
  const unsigned to_submit = sqe_tail_ - sqe_head_;
  for (; sqe_head_ != sqe_tail_; ++sqe_head_, ++tail) {
    sq_array_[tail & sq_mask_] = sqe_head_ & sq_mask_;
  }
  __atomic_store_n(sq_tail_, tail, __ATOMIC_RELEASE);

  unsigned flags = wait_nr > 0 ? IORING_ENTER_GETEVENTS : 0;
  KernelTimespec ts{};
  GeteventsArg arg{};
  const void* argp = nullptr;
  size_t argsz = 0;
  if (wait_nr > 0 && timeout_ms >= 0) {
    if ((features_ & IORING_FEAT_EXT_ARG) == 0) return -EOPNOTSUPP;
    ts.tv_sec = timeout_ms / 1000;
    ts.tv_nsec = static_cast<long long>(timeout_ms % 1000) * 1000000LL;
    arg.sigmask = 0;
    arg.sigmask_sz = _NSIG / 8;
    arg.ts = reinterpret_cast<uint64_t>(&ts);
    argp = &arg;
    argsz = sizeof(arg);
    flags |= IORING_ENTER_EXT_ARG;
  }

  unsigned submitted = 0;
  for (;;) {
    int r = sys_enter(fd_.get(), to_submit - submitted, wait_nr, flags, argp, argsz);
    if (r == -EINTR) continue;
    if (r == -ETIME) return static_cast<int>(submitted);  // bounded wait ran out
    if (r < 0) return r;
    submitted += static_cast<unsigned>(r);
    return static_cast<int>(submitted);
  }
}

int Ring::enable() { return sys_register(fd_.get(), kRegisterEnableRings, nullptr, 0); }

int Ring::enter(unsigned wait_nr, bool getevents, int timeout_ms) {
  if (!fd_.valid()) return -EBADF;
  if (sqe_tail_ != sqe_head_) {
    // sq_array_ is the identity map (set up in init), so publishing is the tail.
    sqe_head_ = sqe_tail_;
    __atomic_store_n(sq_tail_, sqe_tail_, __ATOMIC_RELEASE);
  }
  // Everything published and not yet consumed by the kernel (including SQEs
  // a previous partial submit left behind).
  const unsigned to_submit = sqe_tail_ - __atomic_load_n(sq_head_, __ATOMIC_ACQUIRE);
  unsigned flags = getevents ? IORING_ENTER_GETEVENTS : 0;
  KernelTimespec ts{};
  GeteventsArg arg{};
  const void* argp = nullptr;
  size_t argsz = 0;
  if (getevents && wait_nr > 0 && timeout_ms >= 0 && (features_ & IORING_FEAT_EXT_ARG) != 0) {
    ts.tv_sec = timeout_ms / 1000;
    ts.tv_nsec = static_cast<long long>(timeout_ms % 1000) * 1000000LL;
    arg.sigmask_sz = _NSIG / 8;
    arg.ts = reinterpret_cast<uint64_t>(&ts);
    argp = &arg;
    argsz = sizeof(arg);
    flags |= IORING_ENTER_EXT_ARG;
  }
  unsigned left = to_submit;
  for (;;) {
    int r = sys_enter(fd_.get(), left, getevents ? wait_nr : 0, flags, argp, argsz);
    if (r == -EINTR) continue;
    if (r == -ETIME || r == -EBUSY || r == -EAGAIN) return static_cast<int>(to_submit - left);
    if (r < 0) return r;
    left -= static_cast<unsigned>(r) <= left ? static_cast<unsigned>(r) : left;
    // SUBMIT_ALL or a full submit: done. A partial submit (an SQE failed to
    // prepare without SUBMIT_ALL) leaves the rest for the next call.
    return static_cast<int>(to_submit - left);
  }
}

bool Ring::pop_cqe(io_uring_cqe* out) {
  if (cqes_ == nullptr) return false;
  const unsigned head = *cq_head_;
  const unsigned tail = __atomic_load_n(cq_tail_, __ATOMIC_ACQUIRE);
  if (head == tail) return false;
  *out = cqes_[head & cq_mask_];
  __atomic_store_n(cq_head_, head + 1, __ATOMIC_RELEASE);
  return true;
}

}  // namespace uring
}  // namespace fastport
