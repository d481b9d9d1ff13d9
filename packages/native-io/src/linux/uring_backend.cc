// The io_uring Backend (common/backend.h) over UringLoop (linux/uring_loop.*).
//
// Slots: the loop indexes its connections by a dense local slot (own free
// list, own generation); the core's Conn* is kept as the slot's user pointer,
// and the local slot in Conn::bdata. Listeners: index in Listener::bops.
//
// Receive memory is the loop's buffer region (buf_count x buf_size); every
// buffer reported through on_data is remembered and handed back to the
// kernel's buffer ring on recv_consumed().
//
// Tuning by environment (tests and benchmarks):
//   FASTPORT_URING_BUF_COUNT   buffers in the ring (power of two), default from recv_bytes
//   FASTPORT_URING_BUF_SIZE    bytes per buffer, default 16384
//   FASTPORT_URING_SQ_ENTRIES  submission queue entries (the kernel rounds up to a power of two), default 2048
//   FASTPORT_URING_DISABLE     comma list: deferTaskrun,coopTaskrun,singleIssuer,
//                              bufRing,multishotRecv,multishotAccept,cancelFd
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "common/backend.h"
#include "linux/uring_loop.h"

namespace fastport {
namespace {

using uring::UringLoop;
using uring::UringOptions;

constexpr int kMaxIov = 64;
constexpr size_t kMaxSendBytes = 4 * 1024 * 1024;

// Local per-connection flags (Conn::bflags).
constexpr uint32_t kErrored = 1u << 0;   // on_error reported: nothing more but on_closed
constexpr uint32_t kClosing = 1u << 1;   // close() called
constexpr uint32_t kFinSeen = 1u << 2;

unsigned env_uint(const char* name, unsigned dflt) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return dflt;
  char* end = nullptr;
  unsigned long n = std::strtoul(v, &end, 10);
  return (end != v && n > 0 && n < (1ul << 30)) ? static_cast<unsigned>(n) : dflt;
}

uint32_t env_disable() {
  const char* v = std::getenv("FASTPORT_URING_DISABLE");
  if (v == nullptr) return 0;
  std::string s(v);
  uint32_t d = 0;
  struct {
    const char* name;
    uint32_t bit;
  } names[] = {
      {"deferTaskrun", uring::kDisableDeferTaskrun},       {"coopTaskrun", uring::kDisableCoopTaskrun},
      {"singleIssuer", uring::kDisableSingleIssuer},       {"bufRing", uring::kDisableBufRing},
      {"multishotRecv", uring::kDisableMultishotRecv},     {"multishotAccept", uring::kDisableMultishotAccept},
      {"cancelFd", uring::kDisableCancelFd},
  };
  for (auto& n : names) {
    if (s.find(n.name) != std::string::npos) d |= n.bit;
  }
  return d;
}

unsigned floor_pow2(unsigned v) {
  unsigned p = 1;
  while (p * 2 <= v) p *= 2;
  return p;
}

class UringBackend final : public Backend, private uring::UringSink {
 public:
  ~UringBackend() override {
    loop_.destroy();
    if (wake_fd_ >= 0 && wake_fd_ != loop_.event_fd()) ::close(wake_fd_);
  }

  const char* name() const override { return "uring"; }

  void features(void (*add)(void*, const char*, const char*), void* ctx) const override {
    // Any thread (EngineInfo from JS while an I/O thread runs): a snapshot.
    const uring::UringFeatures f = loop_.features_snapshot();
    auto b = [&](const char* k, bool v) { add(ctx, k, v ? "true" : "false"); };
    auto n = [&](const char* k, unsigned v) { add(ctx, k, std::to_string(v).c_str()); };
    b("singleIssuer", f.single_issuer);
    b("deferTaskrun", f.defer_taskrun);
    b("coopTaskrun", f.coop_taskrun);
    b("taskrunFlag", f.taskrun_flag);
    b("submitAll", f.submit_all);
    b("bufRing", f.buf_ring);
    b("providedBuffersLegacy", !f.buf_ring);
    b("multishotAccept", f.multishot_accept);
    b("multishotRecv", f.multishot_recv);
    b("cancelFd", f.cancel_fd);
    b("registeredEventfd", f.eventfd);
    n("recvBuffers", f.buf_count);
    n("recvBufferSize", f.buf_size);
    n("sqEntries", f.sq_entries);
    n("cqEntries", f.cq_entries);
  }

  int init(const BackendConfig& config, CoreSink* sink) override {
    sink_ = sink;
    stats_ = config.stats;
    inline_ = config.inline_mode;
    UringOptions o;
    o.buf_size = env_uint("FASTPORT_URING_BUF_SIZE", 16384);
    // Receive memory: at least 16 MiB (1024 x 16 KiB) per loop: buffers are
    // only touched when data arrives, and an idle connection holds none.
    size_t want = config.recv_bytes < (16u << 20) ? (16u << 20) : config.recv_bytes;
    unsigned count = static_cast<unsigned>(want / o.buf_size);
    if (count > 32768) count = 32768;
    if (count < 8) count = 8;
    o.buf_count = floor_pow2(env_uint("FASTPORT_URING_BUF_COUNT", count));
    if (o.buf_count > 32768) o.buf_count = 32768;
    o.sq_entries = env_uint("FASTPORT_URING_SQ_ENTRIES", o.sq_entries);
    o.disable = env_disable();
    o.eventfd = inline_;
    std::string err;
    int r = loop_.init(o, this, &err);
    if (r < 0) {
      error_ = err;
      return r;
    }
    if (inline_) {
      wake_fd_ = loop_.event_fd();
    } else {
      wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
      if (wake_fd_ < 0) return -errno;
      loop_.set_wakeup_fd(wake_fd_);
    }
    return 0;
  }

  SocketHandle wait_fd() const override { return wake_fd_; }

  int poll(int timeout_ms) override {
    if (inline_) loop_.drain_event_fd();
    if (woken_.exchange(false, std::memory_order_acq_rel)) sink_->on_wake();
    in_poll_ = true;
    int r = loop_.process(timeout_ms);
    in_poll_ = false;
    if (r < 0) return r;
    if (woken_.exchange(false, std::memory_order_acq_rel)) sink_->on_wake();
    return loop_.starved() ? kPollMore : kPollDone;
  }

  void submit() override { loop_.flush(); }

  void wake() override {
    woken_.store(true, std::memory_order_release);
    uint64_t one = 1;
    ssize_t w = ::write(wake_fd_, &one, sizeof(one));
    (void)w;
  }

  RecvRegion recv_region() const override {
    RecvRegion r;
    r.base = loop_.buffer_base();
    r.size = loop_.buffer_bytes();
    return r;
  }

  void recv_consumed() override {
    for (uint16_t bid : out_bids_) loop_.release_buffer(bid);
    out_bids_.clear();
    // Connections parked on ENOBUFS wait for exactly these buffers. Re-arm
    // them now: no completion may be coming that would do it (inline mode
    // stops after 64 polls; if every busy connection is parked, nothing
    // else would ever enter the ring again).
    if (loop_.parked() > 0) loop_.flush();
  }

  int add_listener(Listener* l) override {
    uint32_t idx;
    if (!free_listeners_.empty()) {
      idx = free_listeners_.back();
      free_listeners_.pop_back();
    } else {
      idx = static_cast<uint32_t>(listeners_.size());
      listeners_.push_back(nullptr);
    }
    listeners_[idx] = l;
    l->bops = idx;
    int r = loop_.add_listener(idx, l->fd);
    if (r < 0) {
      listeners_[idx] = nullptr;
      free_listeners_.push_back(idx);
      return r;
    }
    kick();
    return 0;
  }

  void remove_listener(Listener* l) override {
    loop_.remove_listener(l->bops);
    kick();
  }

  int start_connect(Conn* c, const sockaddr* addr, socklen_t addr_len) override {
    const uint32_t slot = alloc_slot(c);
    int r = loop_.connect(slot, gens_[slot], c->fd, addr, addr_len, true);
    if (r < 0) {
      free_slot(slot);
      return r;
    }
    kick();
    return 0;
  }

  long try_send_direct(Conn* c, const IoSlice* iov, int iov_count) override {
    // Queue empty, nothing in flight (the core's promise; send_busy checked
    // anyway): send straight from the command buffer, so the bytes are never
    // copied into chunks. What the socket does not take is queued by the core.
    if (c->bflags & (kClosing | kErrored)) return 0;
    if (iov_count <= 0 || loop_.send_busy(static_cast<uint32_t>(c->bdata))) return 0;
    msghdr m{};
    m.msg_iov = const_cast<IoSlice*>(iov);
    m.msg_iovlen = static_cast<size_t>(iov_count);
    ssize_t n;
    do {
      n = ::sendmsg(c->fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (stats_ != nullptr) ++stats_->send_submissions;
    if (n >= 0) return static_cast<long>(n);
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) return 0;
    return -errno;
  }

  void send_ready(Conn* c) override { start_send(c); }

  int shutdown_write(Conn* c) override {
    if (c->bflags & (kClosing | kErrored)) return -ENOTCONN;
    return loop_.shutdown(static_cast<uint32_t>(c->bdata));
  }

  void close(Conn* c, CloseMode mode) override {
    if (c->bflags & kClosing) return;
    c->bflags |= kClosing;
    UringLoop::CloseMode m = mode == CloseMode::kGraceful ? UringLoop::kCloseGraceful
                             : mode == CloseMode::kAbort  ? UringLoop::kCloseAbort
                                                          : UringLoop::kCloseSilent;
    loop_.close(static_cast<uint32_t>(c->bdata), m);
  }

  // Contract 10. Pausing cancels the multishot recv (UringLoop::stop_recv);
  // CQEs that raced the cancel are still passed on (JS holds them until the
  // resume). Resuming arms a recv again, or lets the cancelled one's
  // -ECANCELED completion re-arm it if it has not come back yet.
  void set_receiving(Conn* c, bool on) override {
    if (c->bflags & (kClosing | kErrored | kFinSeen)) return;
    const uint32_t slot = static_cast<uint32_t>(c->bdata);
    // -EBUSY (no SQE for the cancel even after an enter): the multishot recv
    // runs on until it ends by itself and is not re-armed; its bytes are held
    // by JS, never lost. -ENOTCONN cannot happen for a connected conn.
    int r = on ? loop_.start_recv(slot) : loop_.stop_recv(slot);
    (void)r;
  }

  const std::string& error() const { return error_; }

 private:
  // listen/connect/close_listener come straight from JS (inline mode) with no
  // submit() after them: hand the SQE to the kernel now. Inside poll() (or on
  // an I/O thread, between polls) the next enter takes it anyway.
  void kick() {
    if (inline_ && !in_poll_) loop_.flush();
  }

  uint32_t alloc_slot(Conn* c) {
    uint32_t slot;
    if (!free_slots_.empty()) {
      slot = free_slots_.back();
      free_slots_.pop_back();
    } else {
      slot = static_cast<uint32_t>(gens_.size());
      gens_.push_back(0);
    }
    ++gens_[slot];
    c->bdata = slot;
    c->bflags = 0;
    c->bops = 0;
    loop_.set_user(slot, c);
    return slot;
  }
  void free_slot(uint32_t slot) {
    loop_.set_user(slot, nullptr);
    free_slots_.push_back(slot);
  }
  Conn* of(uint32_t slot) const { return static_cast<Conn*>(loop_.user(slot)); }

  void start_send(Conn* c) {
    if (c->bflags & (kClosing | kErrored)) return;
    const uint32_t slot = static_cast<uint32_t>(c->bdata);
    if (loop_.send_busy(slot) || c->queued == 0) return;
    size_t bytes = 0;
    int n = core_send_iov(c, iov_, kMaxIov, kMaxSendBytes, &bytes);
    if (n <= 0 || bytes == 0) return;
    if (loop_.send(slot, iov_, n) == 0 && stats_ != nullptr) ++stats_->send_submissions;
  }

  // ---- UringSink
  void on_accept(uint32_t listener, int res) override {
    Listener* l = listener < listeners_.size() ? listeners_[listener] : nullptr;
    if (l == nullptr) {
      if (res >= 0) ::close(res);
      return;
    }
    if (res < 0) {
      sink_->on_listener_error(l, -res);
      return;
    }
    Conn* c = sink_->on_accepted(l, res, nullptr, 0);
    if (c == nullptr) return;  // refused; the core closed the fd
    const uint32_t slot = alloc_slot(c);
    loop_.add_conn(slot, gens_[slot], res, true);
  }
  void on_listener_closed(uint32_t listener) override {
    Listener* l = listener < listeners_.size() ? listeners_[listener] : nullptr;
    if (l == nullptr) return;
    listeners_[listener] = nullptr;
    free_listeners_.push_back(listener);
    sink_->on_listener_closed(l);
  }
  void on_connect(uint32_t slot, int res) override {
    Conn* c = of(slot);
    if (c == nullptr || (c->bflags & (kClosing | kErrored))) return;
    if (res == 0) {
      sink_->on_connected(c);
    } else {
      c->bflags |= kErrored;
      sink_->on_error(c, -res);
    }
  }
  void on_data(uint32_t slot, const uint8_t* data, uint32_t len, uint32_t bid) override {
    out_bids_.push_back(static_cast<uint16_t>(bid));
    if (stats_ != nullptr) ++stats_->recv_calls;
    Conn* c = of(slot);
    if (c == nullptr || (c->bflags & (kClosing | kErrored | kFinSeen))) return;
    sink_->on_data(c, data, len);
  }
  void on_eof(uint32_t slot) override {
    Conn* c = of(slot);
    if (c == nullptr || (c->bflags & (kClosing | kErrored | kFinSeen))) return;
    c->bflags |= kFinSeen;
    sink_->on_peer_fin(c);
  }
  void on_recv_error(uint32_t slot, int res) override {
    Conn* c = of(slot);
    if (c == nullptr || (c->bflags & (kClosing | kErrored))) return;
    c->bflags |= kErrored;
    sink_->on_error(c, -res);
  }
  void on_sent(uint32_t slot, int res) override {
    Conn* c = of(slot);
    if (c == nullptr || (c->bflags & (kClosing | kErrored))) return;
    if (res > 0) {
      sink_->on_sent(c, static_cast<size_t>(res));
      // More queued (a short send, or writes while this one was out): go on.
      if (c->queued > 0 && !(c->bflags & (kClosing | kErrored))) start_send(c);
    } else if (res < 0 && res != -ECANCELED) {
      c->bflags |= kErrored;
      sink_->on_error(c, -res);
    } else if (res == 0 && c->queued > 0) {
      start_send(c);
    }
  }
  void on_shutdown(uint32_t slot, int res) override {
    // A failed half-close (ENOTCONN after a reset) shows up on recv as well.
    (void)slot;
    (void)res;
  }
  void on_closed(uint32_t slot) override {
    Conn* c = of(slot);
    free_slot(slot);
    if (c != nullptr) sink_->on_closed(c);
  }
  void on_wakeup() override {
    uint64_t v;
    ssize_t r = ::read(wake_fd_, &v, sizeof(v));
    (void)r;
  }

  UringLoop loop_;
  CoreSink* sink_ = nullptr;
  LoopStats* stats_ = nullptr;
  bool inline_ = true;
  bool in_poll_ = false;
  int wake_fd_ = -1;
  std::atomic<bool> woken_{false};
  std::string error_;
  std::vector<uint16_t> out_bids_;
  std::vector<uint32_t> gens_;
  std::vector<uint32_t> free_slots_;
  std::vector<Listener*> listeners_;
  std::vector<uint32_t> free_listeners_;
  IoSlice iov_[kMaxIov];
};

}  // namespace

Backend* new_uring_backend() { return new UringBackend(); }

}  // namespace fastport
