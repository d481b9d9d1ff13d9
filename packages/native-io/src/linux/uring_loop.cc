#include "linux/uring_loop.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "fastport.h"

namespace fastport {
namespace uring {
namespace {

// struct io_uring_probe / io_uring_probe_op (5.6), spelled out for old headers.
struct ProbeOp {
  uint8_t op;
  uint8_t resv;
  uint16_t flags;
  uint32_t resv2;
};
struct ProbeHdr {
  uint8_t last_op;
  uint8_t ops_len;
  uint16_t resv;
  uint32_t resv2[3];
  ProbeOp ops[256];
};

std::string step_error(const char* step, int neg) {
  std::string s(step);
  s += " failed: ";
  s += errno_name(-neg);
  return s;
}

bool is_pow2(unsigned v) { return v != 0 && (v & (v - 1)) == 0; }

}  // namespace

// Connection slots live in fixed blocks so a Conn never moves: SQEs point at
// its msghdr and sockaddr until the kernel has consumed them. (Not the send
// queue's kChunkSize of common/backend.h.)
static constexpr unsigned kConnBlockShift = 10;
static constexpr unsigned kConnBlockSlots = 1u << kConnBlockShift;

UringLoop::~UringLoop() { destroy(); }

int UringLoop::setup_ring(const UringOptions& opts, std::string* error) {
  const uint32_t d = opts.disable;
  std::vector<uint32_t> tries;
  const uint32_t base = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CQSIZE;
  if (!(d & kDisableSingleIssuer) && !(d & kDisableDeferTaskrun)) {
    // TASKRUN_FLAG with DEFER_TASKRUN (6.1+): the kernel raises IORING_SQ_TASKRUN
    // when completions wait as deferred work; flush() then runs them.
    tries.push_back(base | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG |
                    IORING_SETUP_R_DISABLED);
    tries.push_back(base | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_R_DISABLED);
  }
  if (!(d & kDisableCoopTaskrun)) {
    if (!(d & kDisableSingleIssuer)) {
      tries.push_back(base | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN |
                      IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_R_DISABLED);
    }
    tries.push_back(base | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG);
  }
  tries.push_back(base);
  tries.push_back(IORING_SETUP_CQSIZE);
  tries.push_back(0);

  int r = -EINVAL;
  io_uring_params p{};
  for (uint32_t flags : tries) {
    std::memset(&p, 0, sizeof(p));
    p.flags = flags;
    p.cq_entries = opts.cq_entries;
    r = ring_.init(opts.sq_entries, &p);
    if (r == 0) break;
    if (r != -EINVAL) break;  // EPERM, ENOSYS, ENOMEM: no point trying other flags
  }
  if (r < 0) {
    *error = step_error("io_uring_setup", r);
    return r;
  }
  if ((p.features & IORING_FEAT_FAST_POLL) == 0) {
    *error = "io_uring lacks IORING_FEAT_FAST_POLL (kernel < 5.7): socket ops would run in io-wq";
    ring_.destroy();
    return -EOPNOTSUPP;
  }
  features_.single_issuer = (p.flags & IORING_SETUP_SINGLE_ISSUER) != 0;
  features_.defer_taskrun = (p.flags & IORING_SETUP_DEFER_TASKRUN) != 0;
  features_.coop_taskrun = (p.flags & IORING_SETUP_COOP_TASKRUN) != 0;
  features_.taskrun_flag = (p.flags & IORING_SETUP_TASKRUN_FLAG) != 0;
  features_.submit_all = (p.flags & IORING_SETUP_SUBMIT_ALL) != 0;
  features_.ext_arg = (p.features & IORING_FEAT_EXT_ARG) != 0;
  features_.sq_entries = p.sq_entries;
  features_.cq_entries = p.cq_entries;
  enabled_ = (p.flags & IORING_SETUP_R_DISABLED) == 0;

  // Which ops this kernel has.
  auto probe = std::make_unique<ProbeHdr>();
  std::memset(probe.get(), 0, sizeof(ProbeHdr));
  int pr = ring_.register_op(kRegisterProbe, probe.get(), 256);
  auto has = [&](uint8_t op) {
    if (pr < 0) return true;  // no probe (< 5.6): assume, failures show up per op
    return op <= probe->last_op && (probe->ops[op].flags & IO_URING_OP_SUPPORTED) != 0;
  };
  const uint8_t needed[] = {kOpRecvOp, kOpSend, kOpSendmsg, kOpAcceptOp, kOpConnect, kOpAsyncCancelOp};
  for (uint8_t op : needed) {
    if (!has(op)) {
      *error = "io_uring lacks opcode " + std::to_string(op) + " (kernel too old)";
      ring_.destroy();
      return -EOPNOTSUPP;
    }
  }
  has_shutdown_op_ = has(kOpShutdown);
  has_provide_op_ = has(kOpProvideBuffers);
  return 0;
}

int UringLoop::setup_buffers(const UringOptions& opts, std::string* error) {
  unsigned count = opts.buf_count;
  if (!is_pow2(count) || count > 32768) {
    *error = "buf_count must be a power of two <= 32768";
    return -EINVAL;
  }
  const unsigned size = opts.buf_size;
  buf_len_ = static_cast<size_t>(count) * size;
  void* mem = mmap(nullptr, buf_len_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) {
    int e = -errno;
    *error = step_error("mmap of receive buffers", e);
    return e;
  }
  buf_base_ = static_cast<uint8_t*>(mem);
  features_.buf_count = count;
  features_.buf_size = size;
  buf_mask_ = count - 1;

  if (!(opts.disable & kDisableBufRing)) {
    bufring_len_ = static_cast<size_t>(count) * sizeof(Buf);
    void* ringmem =
        mmap(nullptr, bufring_len_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (ringmem == MAP_FAILED) {
      int e = -errno;
      *error = step_error("mmap of the buffer ring", e);
      return e;
    }
    bufring_ = ringmem;
    BufReg reg{};
    reg.ring_addr = reinterpret_cast<uint64_t>(ringmem);
    reg.ring_entries = count;
    reg.bgid = kBgid;
    int r = ring_.register_op(kRegisterPbufRing, &reg, 1);
    if (r == 0) {
      features_.buf_ring = true;
      for (unsigned i = 0; i < count; ++i) recycle(static_cast<uint16_t>(i));
      __atomic_store_n(reinterpret_cast<uint16_t*>(static_cast<char*>(bufring_) + kBufRingTailOffset),
                       buf_tail_, __ATOMIC_RELEASE);
      buf_published_ = buf_tail_;
      return 0;
    }
    munmap(bufring_, bufring_len_);
    bufring_ = nullptr;
    bufring_len_ = 0;
    if (r != -EINVAL && r != -ENOENT && r != -EOPNOTSUPP) {
      *error = step_error("IORING_REGISTER_PBUF_RING", r);
      return r;
    }
  }
  if (!has_provide_op_) {
    *error = "io_uring has neither buffer rings nor IORING_OP_PROVIDE_BUFFERS (kernel < 5.7)";
    return -EOPNOTSUPP;
  }
  // Legacy provided buffers: all of them in one PROVIDE_BUFFERS, submitted
  // with the first enter.
  features_.buf_ring = false;
  for (unsigned i = 0; i < count; ++i) provide_pending_.push_back(static_cast<uint16_t>(i));
  return 0;
}

int UringLoop::init(const UringOptions& opts, UringSink* sink, std::string* error) {
  sink_ = sink;
  int r = setup_ring(opts, error);
  if (r < 0) return r;
  r = setup_buffers(opts, error);
  if (r < 0) {
    destroy();
    return r;
  }
  features_.multishot_accept = !(opts.disable & kDisableMultishotAccept);
  features_.multishot_recv = !(opts.disable & kDisableMultishotRecv);
  features_.cancel_fd = !(opts.disable & kDisableCancelFd);
  if (opts.eventfd) {
    event_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (event_fd_ < 0) {
      r = -errno;
      *error = step_error("eventfd", r);
      destroy();
      return r;
    }
    r = ring_.register_op(kRegisterEventfd, &event_fd_, 1);
    if (r < 0) {
      *error = step_error("IORING_REGISTER_EVENTFD", r);
      destroy();
      return r;
    }
    features_.eventfd = true;
  }
  publish_features();
  return 0;
}

void UringLoop::publish_features() {
  std::lock_guard<std::mutex> g(features_mu_);
  features_pub_ = features_;
}

int UringLoop::enable() {
  if (enabled_) return 0;
  int r = ring_.enable();
  if (r < 0) return r;
  enabled_ = true;
  return 0;
}

void UringLoop::destroy() {
  // Closing the ring cancels everything in flight; then the fds can go.
  ring_.destroy();
  for (auto& chunk : conn_blocks_) {
    if (!chunk) continue;
    for (unsigned i = 0; i < kConnBlockSlots; ++i) {
      Conn& c = chunk[i];
      if (c.fd >= 0) ::close(c.fd);
      c.fd = -1;
      c.state = kFree;
    }
  }
  conn_blocks_.clear();
  for (auto& l : listeners_) {
    if (l.fd >= 0) ::close(l.fd);
    l.fd = -1;
  }
  listeners_.clear();
  if (event_fd_ >= 0) ::close(event_fd_);
  event_fd_ = -1;
  if (bufring_ != nullptr) munmap(bufring_, bufring_len_);
  bufring_ = nullptr;
  if (buf_base_ != nullptr) munmap(buf_base_, buf_len_);
  buf_base_ = nullptr;
  parked_.clear();
  retry_.clear();
  closed_ready_.clear();
  provide_pending_.clear();
}

// ------------------------------------------------------------ helpers

#if defined(FASTPORT_URING_TEST_HOOKS)
// Fault injection for the mechanics tests only (never in the addon build):
// FASTPORT_URING_FAULT_SQE=N makes every Nth get_sqe() find no SQE (after
// the first FASTPORT_URING_FAULT_SQE_AFTER calls);
// FASTPORT_URING_FAULT_CANCEL_EINVAL=1 makes the first CANCEL_FD cancel
// complete as -EINVAL (the < 5.19 run-time fallback).
static unsigned fault_every() {
  static const unsigned n = [] {
    const char* v = std::getenv("FASTPORT_URING_FAULT_SQE");
    return v != nullptr ? static_cast<unsigned>(std::strtoul(v, nullptr, 10)) : 0u;
  }();
  return n;
}
static bool fault_cancel_einval() {
  static bool armed = [] {
    const char* v = std::getenv("FASTPORT_URING_FAULT_CANCEL_EINVAL");
    return v != nullptr && *v == '1';
  }();
  if (!armed) return false;
  armed = false;
  return true;
}
#endif

io_uring_sqe* UringLoop::get_sqe() {
#if defined(FASTPORT_URING_TEST_HOOKS)
  static unsigned fault_count = 0;
  static const unsigned fault_after = [] {
    const char* v = std::getenv("FASTPORT_URING_FAULT_SQE_AFTER");
    return v != nullptr ? static_cast<unsigned>(std::strtoul(v, nullptr, 10)) : 0u;
  }();
  if (fault_every() > 0 && ++fault_count > fault_after && fault_count % fault_every() == 0) return nullptr;
#endif
  io_uring_sqe* sqe = ring_.next_sqe();
  if (sqe == nullptr) {
    // SQ full: hand what is queued to the kernel (no wait) and retry. Only
    // the buffer tail is published here: re-arming parked connections
    // (before_enter) would take SQEs itself and nest into this function.
    if (!enabled_) enable();
    publish_buffers();
    ring_.enter(0, false, 0);
    ++stats_.enters;
    sqe = ring_.next_sqe();
  }
  if (sqe != nullptr) ++stats_.sqes;
  return sqe;
}

UringLoop::Conn* UringLoop::conn(uint32_t slot) {
  const uint32_t ci = slot >> kConnBlockShift;
  if (ci >= conn_blocks_.size()) return nullptr;
  Conn* chunk = conn_blocks_[ci].get();
  return chunk == nullptr ? nullptr : &chunk[slot & (kConnBlockSlots - 1)];
}

UringLoop::Conn* UringLoop::conn_alloc(uint32_t slot) {
  const uint32_t ci = slot >> kConnBlockShift;
  if (ci >= conn_blocks_.size()) conn_blocks_.resize(ci + 1);
  if (!conn_blocks_[ci]) conn_blocks_[ci].reset(new Conn[kConnBlockSlots]);
  return &conn_blocks_[ci][slot & (kConnBlockSlots - 1)];
}

bool UringLoop::send_busy(uint32_t slot) const {
  const uint32_t ci = slot >> kConnBlockShift;
  if (ci >= conn_blocks_.size() || !conn_blocks_[ci]) return false;
  return conn_blocks_[ci][slot & (kConnBlockSlots - 1)].send_inflight;
}

void* UringLoop::user(uint32_t slot) const {
  const uint32_t ci = slot >> kConnBlockShift;
  if (ci >= conn_blocks_.size() || !conn_blocks_[ci]) return nullptr;
  return conn_blocks_[ci][slot & (kConnBlockSlots - 1)].user;
}

void UringLoop::set_user(uint32_t slot, void* p) {
  Conn* c = conn_alloc(slot);
  c->user = p;
}

void UringLoop::recycle(uint32_t bid) {
  if (features_.buf_ring) {
    Buf* bufs = static_cast<Buf*>(bufring_);
    Buf& b = bufs[buf_tail_ & buf_mask_];
    b.addr = reinterpret_cast<uint64_t>(buf_base_ + static_cast<size_t>(bid) * features_.buf_size);
    b.len = features_.buf_size;
    b.bid = static_cast<uint16_t>(bid);  // bufs[0].resv is the ring tail: never written here
    ++buf_tail_;
  } else {
    provide_pending_.push_back(static_cast<uint16_t>(bid));
  }
}

void UringLoop::release_buffer(uint32_t bid) {
  if (buf_base_ == nullptr || bid >= features_.buf_count) return;
  if (stats_.buffers_out > 0) --stats_.buffers_out;
  recycle(bid);
}

void UringLoop::flush_provide() {
  if (provide_pending_.empty()) return;
  std::sort(provide_pending_.begin(), provide_pending_.end());
  size_t i = 0;
  const size_t n = provide_pending_.size();
  while (i < n) {
    size_t j = i + 1;
    while (j < n && provide_pending_[j] == provide_pending_[j - 1] + 1) ++j;
    io_uring_sqe* sqe = ring_.next_sqe();
    if (sqe == nullptr) break;  // the rest goes with the next enter
    ++stats_.sqes;
    const uint16_t first = provide_pending_[i];
    sqe->opcode = kOpProvideBuffers;
    sqe->fd = static_cast<int32_t>(j - i);
    sqe->addr = reinterpret_cast<uint64_t>(buf_base_ + static_cast<size_t>(first) * features_.buf_size);
    sqe->len = features_.buf_size;
    sqe->off = first;
    sqe->buf_group = kBgid;
    sqe->user_data = ud(kUProvide, 0, 0);
    i = j;
  }
  provide_pending_.erase(provide_pending_.begin(), provide_pending_.begin() + static_cast<long>(i));
}

// Runs before every io_uring_enter: publish returned buffers, re-arm
// connections parked on ENOBUFS.
void UringLoop::publish_buffers() {
  if (features_.buf_ring && buf_tail_ != buf_published_) {
    __atomic_store_n(reinterpret_cast<uint16_t*>(static_cast<char*>(bufring_) + kBufRingTailOffset), buf_tail_,
                     __ATOMIC_RELEASE);
    buf_published_ = buf_tail_;
  }
}

void UringLoop::before_enter() {
  if (features_.buf_ring) {
    publish_buffers();
  } else if (!provide_pending_.empty()) {
    flush_provide();  // SQEs run in order: the buffers are back before the re-armed recvs
  }
  // Parked on ENOBUFS and buffers are free again (returned now or earlier:
  // an ENOBUFS can be reaped after its buffers came back): re-arm.
  if (!parked_.empty()) rearm_parked();
}

void UringLoop::rearm_parked() {
  // Re-arm about as many parked connections as there are free buffers (each
  // takes at least one); the rest wait, in order, for the next return.
  // The list is swapped out first: arm_recv may run out of SQEs and submit,
  // and nothing it calls may see (or change) a list being walked.
  if (in_rearm_) return;
  const uint64_t out = stats_.buffers_out;
  size_t budget = out >= features_.buf_count ? 0 : static_cast<size_t>(features_.buf_count - out);
  if (budget == 0) return;
  in_rearm_ = true;
  rearm_list_.clear();
  rearm_list_.swap(parked_);
  size_t i = 0;
  for (; i < rearm_list_.size() && budget > 0; ++i) {
    const uint32_t slot = rearm_list_[i];
    Conn* c = conn(slot);
    if (c == nullptr || !c->waiting_bufs) continue;
    c->waiting_bufs = false;
    if (c->state == kOpen && c->recv_wanted && !c->recv_armed) {
      arm_recv(slot, *c);
      --budget;
    }
  }
  // The rest stay parked, in order, ahead of anything parked meanwhile.
  rearm_list_.erase(rearm_list_.begin(), rearm_list_.begin() + static_cast<long>(i));
  rearm_list_.insert(rearm_list_.end(), parked_.begin(), parked_.end());
  parked_.swap(rearm_list_);
  rearm_list_.clear();
  in_rearm_ = false;
}

// ------------------------------------------------------------ listeners

void UringLoop::arm_accept(uint32_t listener) {
  Listener& l = listeners_[listener];
  if (l.arm_queued) return;
  io_uring_sqe* sqe = get_sqe();
  if (sqe == nullptr) {
    l.arm_queued = true;
    retry_.push_back(Retry{kRetryAccept, listener, 0});
    return;
  }
  sqe->opcode = kOpAcceptOp;
  sqe->fd = l.fd;
  sqe->accept_flags = SOCK_CLOEXEC | SOCK_NONBLOCK;
  if (features_.multishot_accept) sqe->ioprio = IORING_ACCEPT_MULTISHOT;
  sqe->user_data = ud(kUAccept, 0, listener);
  l.armed = true;
}

int UringLoop::add_listener(uint32_t listener, int fd) {
  if (listener >= listeners_.size()) listeners_.resize(listener + 1);
  Listener& l = listeners_[listener];
  if (l.active) return -EEXIST;
  l = Listener{};
  l.fd = fd;
  l.active = true;
  arm_accept(listener);
  return 0;
}

int UringLoop::remove_listener(uint32_t listener) {
  if (listener >= listeners_.size() || !listeners_[listener].active) return -ENOENT;
  Listener& l = listeners_[listener];
  if (l.removing) return 0;
  l.removing = true;
  if (!l.armed && !l.retry_pending) {
    // Nothing in the kernel (a queued arm or timer is dropped by its retry).
    ::close(l.fd);
    l.fd = -1;
    l.active = false;
    l.removing = false;
    l.arm_queued = l.timer_queued = false;
    closed_listeners_.push_back(listener);
    return 0;
  }
  if (!submit_listener_cancel(listener)) {
    l.cancel_queued = true;
    retry_.push_back(Retry{kRetryListenerCancel, listener, 0});
  }
  return 0;
}

bool UringLoop::submit_listener_cancel(uint32_t listener) {
  Listener& l = listeners_[listener];
  io_uring_sqe* sqe = get_sqe();
  if (sqe == nullptr) return false;
  sqe->opcode = kOpAsyncCancelOp;
  sqe->addr = l.retry_pending ? ud(kUAcceptRetry, 0, listener) : ud(kUAccept, 0, listener);
  sqe->user_data = ud(kUListenerCancel, 0, listener);
  return true;
}

bool UringLoop::arm_accept_timer(uint32_t listener) {
  Listener& l = listeners_[listener];
  io_uring_sqe* sqe = get_sqe();
  if (sqe == nullptr) return false;
  l.retry_ts.tv_sec = 0;
  l.retry_ts.tv_nsec = 50 * 1000 * 1000;
  sqe->opcode = kOpTimeout;
  sqe->addr = reinterpret_cast<uint64_t>(&l.retry_ts);
  sqe->len = 1;
  sqe->user_data = ud(kUAcceptRetry, 0, listener);
  l.retry_pending = true;
  return true;
}

// ------------------------------------------------------------ connections

int UringLoop::add_conn(uint32_t slot, uint32_t gen, int fd, bool recv) {
  Conn* c = conn_alloc(slot);
  if (c->state != kFree) return -EEXIST;
  c->fd = fd;
  c->gen = gen;
  c->inflight = 0;
  c->state = kOpen;
  c->recv_armed = c->waiting_bufs = c->send_inflight = false;
  c->close_mode = kCloseSilent;
  c->connecting = c->shutdown_inflight = c->cancel_inflight = false;
  c->recv_queued = c->send_queued = c->shutdown_queued = c->connect_queued = c->cancel_queued = false;
  c->cancel_keep_send = false;
  c->recv_wanted = recv;
  if (recv) arm_recv(slot, *c);
  return 0;
}

int UringLoop::start_recv(uint32_t slot) {
  Conn* c = conn(slot);
  if (c == nullptr || c->state != kOpen) return -ENOTCONN;
  c->recv_wanted = true;
  if (!c->recv_armed && !c->waiting_bufs) arm_recv(slot, *c);
  return 0;
}

// ---- read backpressure (pause / resume of receiving)

int UringLoop::stop_recv(uint32_t slot) {
  Conn* c = conn(slot);
  if (c == nullptr || c->state != kOpen) return -ENOTCONN;
  c->recv_wanted = false;  // no re-arm from handle_recv / rearm_parked from here
  c->waiting_bufs = false;  // dropped from parked_ lazily, as close() does
  if (!c->recv_armed) return 0;
  // Without an SQE the pause is retried after the next submit; until then
  // the recv runs on and JS holds what it brings (the engine's held list).
  if (!submit_recv_cancel(slot, *c)) retry_.push_back(Retry{kRetryRecvCancel, slot, c->gen});
  return 0;
}

bool UringLoop::submit_recv_cancel(uint32_t slot, Conn& c) {
  io_uring_sqe* sqe = get_sqe();
  if (sqe == nullptr) return false;
  sqe->opcode = kOpAsyncCancelOp;
  sqe->addr = ud(kURecv, c.gen, slot);
  sqe->user_data = ud(kUCancel, c.gen, slot);
  ++c.inflight;
  ++stats_.cancels;
  return true;
}

void UringLoop::arm_recv(uint32_t slot, Conn& c) {
  if (c.recv_queued) return;
  io_uring_sqe* sqe = get_sqe();
  if (sqe == nullptr) {
    c.recv_queued = true;
    retry_.push_back(Retry{kRetryRecv, slot, c.gen});
    return;
  }
  sqe->opcode = kOpRecvOp;
  sqe->fd = c.fd;
  sqe->flags = IOSQE_BUFFER_SELECT;
  sqe->buf_group = kBgid;
  if (features_.multishot_recv) sqe->ioprio = IORING_RECV_MULTISHOT;
  sqe->user_data = ud(kURecv, c.gen, slot);
  c.recv_armed = true;
  ++c.inflight;
  ++stats_.recv_arms;
}

int UringLoop::connect(uint32_t slot, uint32_t gen, int fd, const sockaddr* addr, socklen_t len,
                       bool recv_on_connect) {
  if (len > sizeof(sockaddr_storage)) return -EINVAL;
  Conn* c = conn_alloc(slot);
  if (c->state != kFree) return -EEXIST;
  c->fd = fd;
  c->gen = gen;
  c->inflight = 0;
  c->state = kConnecting;
  c->recv_armed = c->waiting_bufs = c->send_inflight = false;
  c->close_mode = kCloseSilent;
  c->shutdown_inflight = c->cancel_inflight = false;
  c->recv_wanted = false;
  c->recv_on_connect = recv_on_connect;
  c->recv_queued = c->send_queued = c->shutdown_queued = c->connect_queued = c->cancel_queued = false;
  c->cancel_keep_send = false;
  std::memcpy(&c->addr, addr, len);
  c->addr_len = len;
  c->connecting = true;
  ++c->inflight;
  if (!prep_connect(slot, *c)) {
    c->connect_queued = true;
    retry_.push_back(Retry{kRetryConnect, slot, gen});
  }
  return 0;
}

bool UringLoop::prep_connect(uint32_t slot, Conn& c) {
  io_uring_sqe* sqe = get_sqe();
  if (sqe == nullptr) return false;
  sqe->opcode = kOpConnect;
  sqe->fd = c.fd;
  sqe->addr = reinterpret_cast<uint64_t>(&c.addr);
  sqe->off = c.addr_len;
  sqe->user_data = ud(kUConnect, c.gen, slot);
  return true;
}

int UringLoop::send(uint32_t slot, const iovec* iov, int iovcnt) {
  Conn* c = conn(slot);
  if (c == nullptr || c->state != kOpen) return -ENOTCONN;
  if (c->send_inflight) return -EBUSY;
  if (iovcnt <= 0) return -EINVAL;
  // Kept in the Conn so a send that finds no SQE can be prepared later.
  c->iov.assign(iov, iov + iovcnt);
  c->send_inflight = true;
  ++c->inflight;
  if (!prep_send(slot, *c)) {
    c->send_queued = true;
    retry_.push_back(Retry{kRetrySend, slot, c->gen});
  }
  return 0;
}

bool UringLoop::prep_send(uint32_t slot, Conn& c) {
  io_uring_sqe* sqe = get_sqe();
  if (sqe == nullptr) return false;
  sqe->fd = c.fd;
  sqe->user_data = ud(kUSend, c.gen, slot);
  sqe->msg_flags = MSG_NOSIGNAL;
  if (c.iov.size() == 1) {
    sqe->opcode = kOpSend;
    sqe->addr = reinterpret_cast<uint64_t>(c.iov[0].iov_base);
    sqe->len = static_cast<uint32_t>(c.iov[0].iov_len);
  } else {
    std::memset(&c.msg, 0, sizeof(c.msg));
    c.msg.msg_iov = c.iov.data();
    c.msg.msg_iovlen = c.iov.size();
    sqe->opcode = kOpSendmsg;
    sqe->addr = reinterpret_cast<uint64_t>(&c.msg);
    sqe->len = 1;
  }
  return true;
}

int UringLoop::shutdown(uint32_t slot) {
  Conn* c = conn(slot);
  if (c == nullptr || c->state != kOpen) return -ENOTCONN;
  if (!has_shutdown_op_) {
    // < 5.11: the syscall, reported from the next process().
    int r = ::shutdown(c->fd, SHUT_WR) == 0 ? 0 : -errno;
    deferred_.push_back(Deferred{kUShutdown, slot, r});
    return 0;
  }
  if (c->shutdown_inflight) return 0;
  c->shutdown_inflight = true;
  ++c->inflight;
  if (!prep_shutdown(slot, *c)) {
    c->shutdown_queued = true;
    retry_.push_back(Retry{kRetryShutdown, slot, c->gen});
  }
  return 0;
}

bool UringLoop::prep_shutdown(uint32_t slot, Conn& c) {
  io_uring_sqe* sqe = get_sqe();
  if (sqe == nullptr) return false;
  sqe->opcode = kOpShutdown;
  sqe->fd = c.fd;
  sqe->len = SHUT_WR;
  sqe->user_data = ud(kUShutdown, c.gen, slot);
  return true;
}

bool UringLoop::submit_cancel(uint32_t slot, Conn& c) {
  c.cancel_inflight = true;
  if (features_.cancel_fd) {
    io_uring_sqe* sqe = get_sqe();
    if (sqe == nullptr) return false;
    sqe->opcode = kOpAsyncCancelOp;
    sqe->fd = c.fd;
    sqe->cancel_flags = IORING_ASYNC_CANCEL_FD | IORING_ASYNC_CANCEL_ALL;
    sqe->user_data = ud(kUCancel, c.gen, slot);
    ++c.inflight;
    ++stats_.cancels;
    return true;
  }
  // One cancel per op in flight, by user_data. If one finds no SQE the
  // whole set is retried: a second cancel of the same op only completes
  // with -ENOENT/-EALREADY.
  bool ok = true;
  auto cancel_ud = [&](uint64_t target) {
    io_uring_sqe* sqe = ok ? get_sqe() : nullptr;
    if (sqe == nullptr) {
      ok = false;
      return;
    }
    sqe->opcode = kOpAsyncCancelOp;
    sqe->addr = target;
    sqe->user_data = ud(kUCancel, c.gen, slot);
    ++c.inflight;
    ++stats_.cancels;
  };
  if (c.recv_armed) cancel_ud(ud(kURecv, c.gen, slot));
  if (c.send_inflight && !c.cancel_keep_send) cancel_ud(ud(kUSend, c.gen, slot));
  if (c.connecting) cancel_ud(ud(kUConnect, c.gen, slot));
  if (c.shutdown_inflight) cancel_ud(ud(kUShutdown, c.gen, slot));
  return ok;
}

int UringLoop::close(uint32_t slot, CloseMode mode) {
  Conn* c = conn(slot);
  if (c == nullptr || c->state == kFree) return -ENOENT;
  if (c->state == kClosing) {
    if (mode == kCloseAbort && c->close_mode != kCloseAbort) {
      c->close_mode = kCloseAbort;
      linger0(c->fd);
    }
    return 0;
  }
  c->state = kClosing;
  c->recv_wanted = false;
  c->close_mode = mode;
  if (mode == kCloseAbort) linger0(c->fd);
  c->waiting_bufs = false;  // dropped from parked_ lazily
  // Operations still waiting for an SQE never reached the kernel: drop them
  // (their retry entries see the flags cleared and do nothing).
  c->recv_queued = false;
  if (c->send_queued) {
    c->send_queued = false;
    c->send_inflight = false;
    --c->inflight;
  }
  if (c->shutdown_queued) {
    c->shutdown_queued = false;
    c->shutdown_inflight = false;
    --c->inflight;
  }
  if (c->connect_queued) {
    c->connect_queued = false;
    c->connecting = false;
    --c->inflight;
  }
  if (c->inflight == 0) {
    finish_close(slot, *c);
    // Nothing was in flight: report at once (outside dispatch) so the slot
    // does not wait for the next loop turn.
    if (!in_dispatch_) report_closed();
    return 0;
  }
  // Graceful with the last send in the kernel: it may finish; only the rest
  // is cancelled (by user_data, whatever cancel_fd says).
  c->cancel_keep_send = mode == kCloseGraceful && c->send_inflight;
  if (!(c->cancel_keep_send ? submit_graceful_cancel(slot, *c) : submit_cancel(slot, *c))) {
    // A close is never lost: without its cancel the fd, slot and chunks
    // would stay forever (and destroy() would wait for them).
    c->cancel_queued = true;
    retry_.push_back(Retry{kRetryCancel, slot, c->gen});
  }
  return 0;
}

bool UringLoop::submit_graceful_cancel(uint32_t slot, Conn& c) {
  const bool saved = features_.cancel_fd;
  features_.cancel_fd = false;  // by user_data: CANCEL_FD|ALL would take the send too
  const bool ok = submit_cancel(slot, c);
  features_.cancel_fd = saved;
  return ok;
}

void UringLoop::linger0(int fd) {
  linger lg{};
  lg.l_onoff = 1;
  lg.l_linger = 0;
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

void UringLoop::finish_close(uint32_t slot, Conn& c) {
  if (c.fd >= 0) {
    if (c.close_mode == kCloseGraceful) ::shutdown(c.fd, SHUT_WR);
    ::close(c.fd);
  }
  c.fd = -1;
  c.state = kFree;
  c.recv_armed = c.send_inflight = c.waiting_bufs = false;
  c.iov.clear();
  closed_ready_.push_back(slot);
}

void UringLoop::op_done(uint32_t slot, Conn& c) {
  if (c.inflight > 0) --c.inflight;
  if (c.inflight == 0 && c.state == kClosing) finish_close(slot, c);
}

int UringLoop::set_wakeup_fd(int fd) {
  wakeup_fd_ = fd;
  io_uring_sqe* sqe = get_sqe();
  if (sqe == nullptr) {
    retry_.push_back(Retry{kRetryWakeup, 0, 0});
    return 0;
  }
  sqe->opcode = kOpPollAdd;
  sqe->fd = fd;
  sqe->poll32_events = POLLIN;
  sqe->len = IORING_POLL_ADD_MULTI;
  sqe->user_data = ud(kUWakeup, 0, 0);
  return 0;
}

// ------------------------------------------------------------ completions

void UringLoop::handle_recv(uint32_t slot, Conn& c, const io_uring_cqe& cqe) {
  const bool more = (cqe.flags & IORING_CQE_F_MORE) != 0;
  if (!more) {
    c.recv_armed = false;
  }
  const int res = cqe.res;
  if (res > 0) {
    const uint32_t bid = cqe.flags >> IORING_CQE_BUFFER_SHIFT;
    if (c.state != kOpen) {
      recycle(bid);  // closing: the data has nowhere to go
    } else {
      ++stats_.buffers_out;
      sink_->on_data(slot, buf_base_ + static_cast<size_t>(bid) * features_.buf_size,
                     static_cast<uint32_t>(res), bid);
    }
    if (!more) {
      if (c.state == kOpen && c.recv_wanted && !c.recv_armed) arm_recv(slot, c);
      op_done(slot, c);
    }
    return;
  }
  // res <= 0 always ends the request (no F_MORE).
  if (res < 0 && (cqe.flags & IORING_CQE_F_BUFFER)) recycle(cqe.flags >> IORING_CQE_BUFFER_SHIFT);
  if (res == -ENOBUFS) {
    ++stats_.enobufs;
    if (c.state == kOpen && c.recv_wanted) {
      c.waiting_bufs = true;
      parked_.push_back(slot);
    }
  } else if (res == -EINVAL && features_.multishot_recv && !multishot_recv_confirmed_) {
    // A kernel without multishot recv (< 6.0) refuses the flag: degrade.
    features_.multishot_recv = false;
    publish_features();
    if (c.state == kOpen && c.recv_wanted) arm_recv(slot, c);
  } else if (c.state == kOpen) {
    if (res == 0) {
      c.recv_wanted = false;
      sink_->on_eof(slot);
    } else if (res == -ECANCELED || res == -EINTR) {
      if (c.recv_wanted) arm_recv(slot, c);
    } else {
      c.recv_wanted = false;
      sink_->on_recv_error(slot, res);
    }
  }
  op_done(slot, c);
}

void UringLoop::dispatch(const io_uring_cqe& cqe) {
  const uint64_t u = cqe.user_data;
  const Op op = static_cast<Op>(u >> 56);
  const uint32_t gen = static_cast<uint32_t>(u >> 32) & 0xffffffu;
  const uint32_t slot = static_cast<uint32_t>(u);

  switch (op) {
    case kUAccept: {
      if (slot >= listeners_.size()) return;
      Listener& l = listeners_[slot];
      const bool more = (cqe.flags & IORING_CQE_F_MORE) != 0;
      if (!more) l.armed = false;
      if (cqe.res >= 0) {
        if (l.removing) {
          ::close(cqe.res);
        } else {
          sink_->on_accept(slot, cqe.res);
        }
      } else if (cqe.res == -EINVAL && features_.multishot_accept && !multishot_accept_confirmed_) {
        features_.multishot_accept = false;  // < 5.19: single-shot accepts
        publish_features();
      } else if (cqe.res != -ECANCELED && !l.removing) {
        sink_->on_accept(slot, cqe.res);
        if (!more && (cqe.res == -EMFILE || cqe.res == -ENFILE || cqe.res == -ENOBUFS || cqe.res == -ENOMEM)) {
          // Out of fds/memory: retry in 50 ms instead of spinning.
          if (!arm_accept_timer(slot)) {
            l.timer_queued = true;
            retry_.push_back(Retry{kRetryAcceptTimer, slot, 0});
          }
          return;
        }
      }
      if (cqe.res >= 0 && features_.multishot_accept && more) multishot_accept_confirmed_ = true;
      if (!l.armed) {
        if (l.removing) {
          if (l.fd >= 0) ::close(l.fd);
          l.fd = -1;
          l.active = false;
          l.removing = false;
          sink_->on_listener_closed(slot);
        } else if (l.active) {
          arm_accept(slot);
        }
      }
      return;
    }
    case kUListenerCancel:
      return;  // the accept's own CQE does the rest
    case kUAcceptRetry: {
      if (slot >= listeners_.size()) return;
      Listener& l = listeners_[slot];
      l.retry_pending = false;
      if (l.removing) {
        if (l.fd >= 0) ::close(l.fd);
        l.fd = -1;
        l.active = false;
        l.removing = false;
        sink_->on_listener_closed(slot);
      } else if (l.active && !l.armed) {
        arm_accept(slot);
      }
      return;
    }
    case kUProvide:
      return;
    case kUWakeup:
      if ((cqe.flags & IORING_CQE_F_MORE) == 0 && wakeup_fd_ >= 0) set_wakeup_fd(wakeup_fd_);
      sink_->on_wakeup();
      return;
    default:
      break;
  }

  Conn* c = conn(slot);
  if (c == nullptr || c->state == kFree || (c->gen & 0xffffffu) != gen) {
    // Cannot happen while slots are reused only after on_closed; a buffer
    // still goes home.
    ++stats_.stale_cqes;
    if (op == kURecv && cqe.res > 0 && (cqe.flags & IORING_CQE_F_BUFFER)) {
      recycle(cqe.flags >> IORING_CQE_BUFFER_SHIFT);
    }
    return;
  }
  switch (op) {
    case kURecv:
      if (cqe.res > 0 && (cqe.flags & IORING_CQE_F_MORE)) multishot_recv_confirmed_ = true;
      handle_recv(slot, *c, cqe);
      return;
    case kUSend:
      c->send_inflight = false;
      c->iov.clear();
      sink_->on_sent(slot, cqe.res);
      op_done(slot, *c);
      return;
    case kUConnect:
      c->connecting = false;
      if (c->state == kConnecting) {
        if (cqe.res == 0) {
          c->state = kOpen;
          sink_->on_connect(slot, 0);
          if (c->state == kOpen && c->recv_on_connect && !c->recv_armed) {
            c->recv_wanted = true;
            arm_recv(slot, *c);
          }
        } else {
          sink_->on_connect(slot, cqe.res);
        }
      }
      op_done(slot, *c);
      return;
    case kUShutdown:
      c->shutdown_inflight = false;
      if (c->state == kOpen) sink_->on_shutdown(slot, cqe.res);
      op_done(slot, *c);
      return;
    case kUCancel: {
      int res = cqe.res;
#if defined(FASTPORT_URING_TEST_HOOKS)
      if (features_.cancel_fd && fault_cancel_einval()) res = -EINVAL;
#endif
      if (res == -EINVAL && features_.cancel_fd) {
        // < 5.19: no CANCEL_FD; cancel by user_data instead.
        features_.cancel_fd = false;
        publish_features();
        if (c->state == kClosing && !submit_cancel(slot, *c) && !c->cancel_queued) {
          c->cancel_queued = true;
          retry_.push_back(Retry{kRetryCancel, slot, c->gen});
        }
      }
      op_done(slot, *c);
      return;
    }
    default:
      return;
  }
}

void UringLoop::drain_retries() {
  if (retry_.empty()) return;
  retry_list_.clear();
  retry_list_.swap(retry_);
  for (const Retry& r : retry_list_) {
    if (r.op == kRetryWakeup) {
      if (wakeup_fd_ >= 0) set_wakeup_fd(wakeup_fd_);  // queues itself again on failure
      continue;
    }
    if (r.op == kRetryAccept || r.op == kRetryAcceptTimer || r.op == kRetryListenerCancel) {
      if (r.idx >= listeners_.size()) continue;
      Listener& l = listeners_[r.idx];
      if (r.op == kRetryAccept) {
        if (!l.arm_queued) continue;
        l.arm_queued = false;
        if (l.active && !l.removing && !l.armed && !l.retry_pending) arm_accept(r.idx);
      } else if (r.op == kRetryAcceptTimer) {
        if (!l.timer_queued) continue;
        if (!l.active || l.removing || arm_accept_timer(r.idx)) {
          l.timer_queued = false;
        } else {
          retry_.push_back(r);
        }
      } else {
        if (!l.cancel_queued) continue;
        if (!l.removing || (!l.armed && !l.retry_pending) || submit_listener_cancel(r.idx)) {
          l.cancel_queued = false;
        } else {
          retry_.push_back(r);
        }
      }
      continue;
    }
    Conn* c = conn(r.idx);
    if (c == nullptr || c->state == kFree || c->gen != r.gen) continue;
    switch (r.op) {
      case kRetryRecv:
        if (!c->recv_queued) break;
        c->recv_queued = false;
        if (c->state == kOpen && c->recv_wanted && !c->recv_armed && !c->waiting_bufs) arm_recv(r.idx, *c);
        break;
      case kRetrySend:
        if (c->send_queued && prep_send(r.idx, *c)) c->send_queued = false;
        if (c->send_queued) retry_.push_back(r);
        break;
      case kRetryShutdown:
        if (c->shutdown_queued && prep_shutdown(r.idx, *c)) c->shutdown_queued = false;
        if (c->shutdown_queued) retry_.push_back(r);
        break;
      case kRetryConnect:
        if (c->connect_queued && prep_connect(r.idx, *c)) c->connect_queued = false;
        if (c->connect_queued) retry_.push_back(r);
        break;
      case kRetryRecvCancel:
        // Still paused with a recv in the kernel: cancel it now.
        if (c->state == kOpen && !c->recv_wanted && c->recv_armed && !submit_recv_cancel(r.idx, *c)) retry_.push_back(r);
        break;
      case kRetryCancel: {
        if (!c->cancel_queued) break;
        if (c->state != kClosing || c->inflight == 0) {
          c->cancel_queued = false;
          break;
        }
        const bool keep = c->cancel_keep_send && c->send_inflight;
        if (keep ? submit_graceful_cancel(r.idx, *c) : submit_cancel(r.idx, *c)) {
          c->cancel_queued = false;
        } else {
          retry_.push_back(r);
        }
        break;
      }
      default:
        break;
    }
  }
  retry_list_.clear();
}

void UringLoop::report_closed() {
  while (!deferred_.empty()) {
    std::vector<Deferred> d;
    d.swap(deferred_);
    for (const Deferred& x : d) {
      Conn* c = conn(x.slot);
      if (c != nullptr && c->state == kOpen && x.op == kUShutdown) sink_->on_shutdown(x.slot, x.res);
    }
  }
  while (!closed_ready_.empty() || !closed_listeners_.empty()) {
    std::vector<uint32_t> closed;
    closed.swap(closed_ready_);
    for (uint32_t slot : closed) sink_->on_closed(slot);
    std::vector<uint32_t> ls;
    ls.swap(closed_listeners_);
    for (uint32_t l : ls) sink_->on_listener_closed(l);
  }
}

int UringLoop::process(int timeout_ms) {
  if (!enabled_) {
    int r = enable();
    if (r < 0) return r;
  }
  before_enter();
  // Wait only when nothing is ready already.
  const bool ready = ring_.cq_ready() > 0 || !closed_ready_.empty() || !deferred_.empty() ||
                     !closed_listeners_.empty() || !retry_.empty() || taskrun_pending();
  const unsigned wait_nr = (timeout_ms != 0 && !ready) ? 1 : 0;
  int r = ring_.enter(wait_nr, true, timeout_ms);
  ++stats_.enters;
  if (r < 0 && r != -EBADR) return r;
  // The SQ has room again: operations that found it full get their SQEs
  // (submitted with the next enter: the turn's submit() or poll()).
  drain_retries();
  in_dispatch_ = true;
  unsigned n = ring_.drain_cqes([this](const io_uring_cqe& cqe) { dispatch(cqe); });
  // A CQ that overflowed keeps the rest in the kernel: one more round.
  if (ring_.sq_flags() & IORING_SQ_CQ_OVERFLOW) {
    ring_.enter(0, true, 0);
    ++stats_.enters;
    n += ring_.drain_cqes([this](const io_uring_cqe& cqe) { dispatch(cqe); });
  }
  report_closed();
  in_dispatch_ = false;
  stats_.cqes += n;
  // The kernel runs a bounded amount of deferred work per enter, and signals
  // the eventfd only when that work list goes from empty to non-empty: with
  // work left over, no signal would ever come again. Keep the loop readable.
  // Connections parked while buffers are free (an ENOBUFS reaped after the
  // buffers came back) are re-armed by the next enter: make sure there is one.
  const bool rearm_due = !parked_.empty() && stats_.buffers_out < features_.buf_count;
  if (event_fd_ >= 0 && (taskrun_pending() || rearm_due)) {
    uint64_t one = 1;
    ssize_t w = ::write(event_fd_, &one, sizeof(one));
    (void)w;
  }
  return static_cast<int>(n);
}

int UringLoop::flush() {
  if (!enabled_) {
    int r = enable();
    if (r < 0) return r;
  }
  before_enter();
  int r = 0;
  if (ring_.sq_pending() > 0) {
    r = ring_.enter(0, false, 0);
    ++stats_.enters;
  }
  if (!retry_.empty()) {
    drain_retries();
    if (ring_.sq_pending() > 0) {
      int r2 = ring_.enter(0, false, 0);
      ++stats_.enters;
      if (r >= 0 && r2 < 0) r = r2;
    }
  }
  // TASKRUN_FLAG: completions wait as deferred task work (DEFER_TASKRUN runs
  // it only inside io_uring_enter with GETEVENTS). Run it now so they reach
  // the CQ and the eventfd below says so.
  if (taskrun_pending()) {
    ring_.enter(0, true, 0);
    ++stats_.enters;
  }
  // Completions that arrived inline (or closes waiting to be reported) must
  // wake the loop: make sure the eventfd is readable. (6.18 signals it for
  // inline CQEs by itself, but relying on that lost wakeups under
  // DEFER_TASKRUN in a test; the write is one cheap syscall per turn.)
  if (event_fd_ >= 0 && (ring_.cq_ready() > 0 || !closed_ready_.empty() || !deferred_.empty() ||
                         !closed_listeners_.empty() || !retry_.empty() || taskrun_pending())) {
    uint64_t one = 1;
    ssize_t w = ::write(event_fd_, &one, sizeof(one));
    (void)w;
  }
  return r < 0 ? r : 0;
}

void UringLoop::drain_event_fd() {
  if (event_fd_ < 0) return;
  uint64_t v;
  ssize_t r = ::read(event_fd_, &v, sizeof(v));
  (void)r;
}

}  // namespace uring
}  // namespace fastport
