// The epoll backend: readiness emulating completions (see common/backend.h).
//
// Level-triggered, on purpose:
//  - one loop-wide receive buffer (uSockets-style): when it runs short we
//    simply stop reading for this turn and return kPollMore; level-triggered
//    epoll reports the still-readable sockets again, so nothing has to
//    remember "readable but not drained" connections;
//  - one recv() per readable connection per turn gives fairness among
//    connections without a round-robin list;
//  - EPOLLOUT is in the interest set only while a connection has unsent
//    bytes (armed after a partial write, disarmed when the queue empties),
//    so level-triggered costs no spurious wakeups for writes.
// After the peer's FIN the connection leaves the read set (EPOLLIN would stay
// readable forever); it is removed from the set entirely when nothing is
// left to watch.
// A paused connection (set_receiving(c, false)) stays in the set without
// EPOLLIN (with EPOLLOUT while a send waits), so EPOLLERR still reports a
// reset at once; EPOLLHUP while paused only means "FIN waiting behind unread
// bytes", so the connection leaves the set until the resume instead of
// waking every turn.
//
// Out of descriptors (EMFILE/ENFILE) or memory while accepting, the waiting
// connections keep a level-triggered listener readable, so "retry on the
// next turn" would spin the loop at 100% CPU. Such a listener leaves the set
// for kAcceptBackoffMs (one timerfd per loop, created at init because no fd
// can be had once they run out) and comes back early when this loop closes
// a connection (an fd was freed).
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "common/backend.h"
#include "common/sockets.h"

namespace fastport {
namespace {

constexpr uint32_t kFlagRegistered = 1u << 0;  // in the epoll set
constexpr uint32_t kFlagOut = 1u << 1;         // EPOLLOUT armed
constexpr uint32_t kFlagNoRead = 1u << 2;      // peer FIN seen: not reading
constexpr uint32_t kFlagConnecting = 1u << 3;
constexpr uint32_t kFlagDead = 1u << 4;        // error reported: no more callbacks but on_closed
constexpr uint32_t kFlagIn = 1u << 5;          // EPOLLIN in the set
constexpr uint32_t kFlagPaused = 1u << 6;      // set_receiving(false): no EPOLLIN
constexpr uint32_t kFlagHupPaused = 1u << 7;   // EPOLLHUP seen while paused: out of the set until resumed

constexpr uint64_t kTagConn = 0;
constexpr uint64_t kTagListener = 1;
constexpr uint64_t kTagWake = 2;
constexpr uint64_t kTagTimer = 3;

constexpr uint32_t kListenerPaused = 1u << 0;  // Listener::bflags: out of the set until the backoff ends
constexpr long kAcceptBackoffMs = 50;          // as the uring backend

constexpr size_t kMinRecvRoom = 16 * 1024;  // below this the batch goes to JS first
constexpr int kMaxEvents = 1024;
// Events per poll while the reads are small (see poll()): a batch of 32
// small messages goes to JS and its replies leave before the next 32 are
// read, so the peers work while we do; bulk reads take the whole batch.
constexpr int kSmallReadEvents = 32;
constexpr size_t kSmallReadBytes = 512;
constexpr int kAcceptsPerTurn = 128;
constexpr int kMaxIov = 64;
constexpr size_t kMaxWriteBytes = 4u << 20;

class EpollBackend final : public Backend {
 public:
  ~EpollBackend() override {
    if (wake_fd_ >= 0) ::close(wake_fd_);
    if (timer_fd_ >= 0) ::close(timer_fd_);
    if (ep_ >= 0) ::close(ep_);
    std::free(arena_);
  }

  const char* name() const override { return "epoll"; }

  void features(void (*add)(void*, const char*, const char*), void* ctx) const override {
    add(ctx, "levelTriggered", "true");
    add(ctx, "loopReceiveBuffer", arena_size_str_);
    add(ctx, "directSend", "true");
  }

  int init(const BackendConfig& config, CoreSink* sink) override {
    sink_ = sink;
    stats_ = config.stats;
    inline_ = config.inline_mode;
    // A fixed events-per-poll instead of the adaptive choice (for measuring it).
    if (const char* v = std::getenv("FASTPORT_EPOLL_MAX_EVENTS")) {
      const int k = std::atoi(v);
      if (k >= 1 && k <= kMaxEvents) {
        max_events_ = k;
        fixed_max_events_ = true;
      }
    }
    arena_size_ = config.recv_bytes < 64 * 1024 ? 64 * 1024 : config.recv_bytes;
    std::snprintf(arena_size_str_, sizeof arena_size_str_, "%zu", arena_size_);
    arena_ = static_cast<uint8_t*>(std::malloc(arena_size_));
    if (arena_ == nullptr) return -ENOMEM;
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    if (ep_ < 0) return -errno;
    wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd_ < 0) return -errno;
    epoll_event ev;
    ev.events = EPOLLIN;
    ev.data.u64 = kTagWake;
    if (epoll_ctl(ep_, EPOLL_CTL_ADD, wake_fd_, &ev) != 0) return -errno;
    timer_fd_ = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (timer_fd_ < 0) return -errno;
    ev.events = EPOLLIN;
    ev.data.u64 = kTagTimer;
    if (epoll_ctl(ep_, EPOLL_CTL_ADD, timer_fd_, &ev) != 0) return -errno;
    return 0;
  }

  SocketHandle wait_fd() const override { return ep_; }

  int poll(int timeout_ms) override {
    epoll_event evs[kMaxEvents];
    int n = epoll_wait(ep_, evs, max_events_, timeout_ms);
    if (n < 0) return errno == EINTR ? kPollDone : -errno;
    bool more = n == max_events_;
    const size_t cursor_before = cursor_;
    int reads = 0;
    for (int i = 0; i < n; ++i) {
      const uint64_t d = evs[i].data.u64;
      const uint32_t e = evs[i].events;
      const uint64_t tag = d & 3;
      if (tag == kTagWake) {
        uint64_t v;
        while (read(wake_fd_, &v, sizeof v) > 0) {
        }
        sink_->on_wake();
        continue;
      }
      if (tag == kTagTimer) {
        uint64_t expirations;
        while (read(timer_fd_, &expirations, sizeof expirations) > 0) {
        }
        timer_armed_ = false;
        resume_listeners();
        continue;
      }
      if (tag == kTagListener) {
        if (!accept_some(reinterpret_cast<Listener*>(d & ~uint64_t{3}))) more = true;
        continue;
      }
      Conn* c = reinterpret_cast<Conn*>(d);
      if (c->bflags & kFlagDead) continue;
      if (c->bflags & kFlagConnecting) {
        if (e & (EPOLLOUT | EPOLLERR | EPOLLHUP)) finish_connect(c);
        continue;
      }
      if (e & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        if ((c->bflags & kFlagPaused) && !(c->bflags & kFlagNoRead)) {
          if (e & EPOLLERR) {
            report_so_error(c);
          } else if ((e & EPOLLHUP) && !(c->bflags & kFlagOut)) {
            c->bflags |= kFlagHupPaused;
            set_events(c, 0);
          }
        } else if (!(c->bflags & kFlagNoRead)) {
          ++reads;
          if (!read_once(c)) more = true;
        } else if (e & EPOLLERR) {
          report_so_error(c);
        } else if ((e & EPOLLHUP) && !(c->bflags & kFlagOut)) {
          // Both directions are done and nothing is left to write: stop watching.
          set_events(c, 0);
        }
        if (c->bflags & kFlagDead) continue;
      }
      if ((e & EPOLLOUT) && (c->bflags & kFlagOut)) write_some(c);
    }
    // Request/response traffic (small reads, one message each) is latency
    // bound: smaller batches let the first replies go out while the peers'
    // next requests are still being read. Bulk or pipelined traffic (large
    // reads) is throughput bound: one JS crossing per big batch is cheaper.
    // Inline mode only: an I/O thread's kPollMore means "receive memory is
    // short" and makes it wait for JS, which a full small batch must not.
    if (inline_ && !fixed_max_events_ && reads > 0) {
      const size_t avg = (cursor_ - cursor_before) / static_cast<size_t>(reads);
      max_events_ = avg < kSmallReadBytes ? kSmallReadEvents : kMaxEvents;
    }
    return more ? kPollMore : kPollDone;
  }

  void submit() override {}

  void wake() override {
    uint64_t one = 1;
    ssize_t r = write(wake_fd_, &one, sizeof one);
    (void)r;  // EAGAIN: the counter is saturated, a wakeup is pending anyway
  }

  RecvRegion recv_region() const override { return RecvRegion{arena_, arena_size_}; }
  void recv_consumed() override { cursor_ = 0; }

  int add_listener(Listener* l) override {
    epoll_event ev;
    ev.events = EPOLLIN;
    ev.data.u64 = reinterpret_cast<uint64_t>(l) | kTagListener;
    if (epoll_ctl(ep_, EPOLL_CTL_ADD, l->fd, &ev) != 0) return -errno;
    return 0;
  }

  void remove_listener(Listener* l) override {
    if (l->bflags & kListenerPaused) {
      for (size_t i = 0; i < paused_.size(); ++i) {
        if (paused_[i] == l) {
          paused_[i] = paused_.back();
          paused_.pop_back();
          break;
        }
      }
      l->bflags &= ~kListenerPaused;
    } else {
      epoll_ctl(ep_, EPOLL_CTL_DEL, l->fd, nullptr);  // the fd is closed next anyway
    }
    sock_close(l->fd);
    l->fd = kInvalidSocket;
    sink_->on_listener_closed(l);
  }

  int start_connect(Conn* c, const sockaddr* addr, socklen_t addr_len) override {
    int r;
    do {
      r = ::connect(c->fd, addr, addr_len);
    } while (r != 0 && errno == EINTR);
    if (r != 0 && errno != EINPROGRESS) return -errno;
    c->bflags = kFlagConnecting;
    // Success or not, completion is reported from poll(): EPOLLOUT fires at once if connected.
    return set_events(c, EPOLLOUT);
  }

  long try_send_direct(Conn* c, const IoSlice* iov, int iov_count) override {
    if (c->bflags & (kFlagConnecting | kFlagDead)) return 0;
    msghdr msg;
    std::memset(&msg, 0, sizeof msg);
    msg.msg_iov = const_cast<IoSlice*>(iov);
    msg.msg_iovlen = static_cast<size_t>(iov_count);
    stats_->send_submissions++;
    ssize_t n;
    do {
      n = sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n >= 0) return static_cast<long>(n);
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    return -errno;
  }

  void send_ready(Conn* c) override {
    if (c->bflags & (kFlagConnecting | kFlagDead | kFlagOut)) return;  // EPOLLOUT will come
    write_some(c);
  }

  int shutdown_write(Conn* c) override {
    if (::shutdown(c->fd, SHUT_WR) != 0) return -errno;
    return 0;
  }

  void set_receiving(Conn* c, bool on) override {
    if (c->bflags & (kFlagConnecting | kFlagDead | kFlagNoRead)) return;
    if (on) {
      c->bflags &= ~(kFlagPaused | kFlagHupPaused);
    } else {
      c->bflags |= kFlagPaused;
    }
    // Level-triggered: bytes (and a FIN) that waited in the kernel show up as EPOLLIN on the next wait.
    int r = set_events(c, wanted(c, (c->bflags & kFlagOut) != 0));
    if (r < 0) fail(c, -r);
  }

  void close(Conn* c, CloseMode mode) override {
    if (c->bflags & kFlagRegistered) epoll_ctl(ep_, EPOLL_CTL_DEL, c->fd, nullptr);
    if (mode == CloseMode::kGraceful) {
      ::shutdown(c->fd, SHUT_WR);  // FIN (ENOTCONN after a peer reset is fine: closing anyway)
    } else if (mode == CloseMode::kAbort) {
      linger lg;
      lg.l_onoff = 1;
      lg.l_linger = 0;
      setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    sock_close(c->fd);
    c->fd = kInvalidSocket;
    c->bflags = kFlagDead;
    sink_->on_closed(c);
    if (!paused_.empty()) resume_listeners();  // an fd is free again
  }

 private:
  int set_events(Conn* c, uint32_t events) {
    epoll_event ev;
    ev.events = events;
    ev.data.u64 = reinterpret_cast<uint64_t>(c);  // Conn is 8-aligned: tag bits 0 = kTagConn
    int r;
    // A paused connection keeps its registration with no events (EPOLLERR is
    // always reported), unless EPOLLHUP made it leave the set.
    if (events == 0 && (!(c->bflags & kFlagPaused) || (c->bflags & kFlagHupPaused))) {
      if (!(c->bflags & kFlagRegistered)) return 0;
      r = epoll_ctl(ep_, EPOLL_CTL_DEL, c->fd, nullptr);
      c->bflags &= ~(kFlagRegistered | kFlagIn | kFlagOut);
    } else {
      r = epoll_ctl(ep_, (c->bflags & kFlagRegistered) ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &ev);
      if (r == 0) {
        c->bflags |= kFlagRegistered;
        c->bflags = (events & EPOLLIN) ? (c->bflags | kFlagIn) : (c->bflags & ~kFlagIn);
        c->bflags = (events & EPOLLOUT) ? (c->bflags | kFlagOut) : (c->bflags & ~kFlagOut);
      }
    }
    return r == 0 ? 0 : -errno;
  }

  uint32_t wanted(const Conn* c, bool out) const {
    uint32_t ev = 0;
    if (!(c->bflags & (kFlagNoRead | kFlagPaused))) ev |= EPOLLIN;
    if (out) ev |= EPOLLOUT;
    return ev;
  }

  void fail(Conn* c, int err) {
    if (c->bflags & kFlagDead) return;
    c->bflags |= kFlagDead;
    sink_->on_error(c, err);
  }

  // Returns false when it stopped early (table full, budget).
  bool accept_some(Listener* l) {
    for (int i = 0; i < kAcceptsPerTurn; ++i) {
      sockaddr_storage ss;
      socklen_t len = sizeof ss;
      int fd = accept4(l->fd, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        const int err = errno;
        if (err == EAGAIN || err == EWOULDBLOCK) return true;
        if (err == EINTR || err == ECONNABORTED || err == EPROTO) continue;
        sink_->on_listener_error(l, err);  // EMFILE, ENFILE, ENOBUFS, ENOMEM, ...
        pause_listener(l);
        return true;
      }
      Conn* c = sink_->on_accepted(l, fd, reinterpret_cast<sockaddr*>(&ss), len);
      if (c == nullptr) continue;
      c->bflags = 0;
      int r = set_events(c, EPOLLIN);
      if (r < 0) fail(c, -r);
    }
    return false;
  }

  // Takes l out of the set until the backoff timer (or a close) brings it back.
  void pause_listener(Listener* l) {
    if (l->bflags & kListenerPaused) return;
    if (epoll_ctl(ep_, EPOLL_CTL_DEL, l->fd, nullptr) != 0) return;  // cannot happen for a registered fd; keep it then
    l->bflags |= kListenerPaused;
    paused_.push_back(l);
    arm_timer();
  }

  void resume_listeners() {
    size_t kept = 0;
    for (size_t i = 0; i < paused_.size(); ++i) {
      Listener* l = paused_[i];
      epoll_event ev;
      ev.events = EPOLLIN;
      ev.data.u64 = reinterpret_cast<uint64_t>(l) | kTagListener;
      if (epoll_ctl(ep_, EPOLL_CTL_ADD, l->fd, &ev) == 0) {
        l->bflags &= ~kListenerPaused;
      } else {
        paused_[kept++] = l;  // ENOMEM/ENOSPC: try again after the next backoff
      }
    }
    paused_.resize(kept);
    if (!paused_.empty()) arm_timer();
  }

  void arm_timer() {
    if (timer_armed_) return;
    itimerspec ts;
    std::memset(&ts, 0, sizeof ts);
    ts.it_value.tv_nsec = kAcceptBackoffMs * 1000 * 1000;
    if (timerfd_settime(timer_fd_, 0, &ts, nullptr) == 0) timer_armed_ = true;
    // If arming fails the listener still comes back when this loop closes a connection.
  }

  void finish_connect(Conn* c) {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err != 0) {
      fail(c, err);
      return;
    }
    c->bflags &= ~kFlagConnecting;
    int r = set_events(c, wanted(c, c->queued > 0));
    if (r < 0) {
      fail(c, -r);
      return;
    }
    sink_->on_connected(c);
  }

  void report_so_error(Conn* c) {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err != 0) fail(c, err);
  }

  // One recv into the loop buffer. Returns false if the buffer is short (read skipped).
  bool read_once(Conn* c) {
    size_t room = arena_size_ - cursor_;
    if (room < kMinRecvRoom) return false;
    // One connection takes at most a quarter of the buffer per turn (fairness).
    if (room > arena_size_ / 4) room = arena_size_ / 4;
    stats_->recv_calls++;
    ssize_t n;
    do {
      n = recv(c->fd, arena_ + cursor_, room, 0);
    } while (n < 0 && errno == EINTR);
    if (n > 0) {
      const uint8_t* p = arena_ + cursor_;
      cursor_ += (static_cast<size_t>(n) + 7) & ~static_cast<size_t>(7);
      if (cursor_ > arena_size_) cursor_ = arena_size_;
      sink_->on_data(c, p, static_cast<size_t>(n));
      return true;
    }
    if (n == 0) {
      c->bflags |= kFlagNoRead;
      int r = set_events(c, (c->bflags & kFlagOut) ? static_cast<uint32_t>(EPOLLOUT) : 0u);
      if (r < 0) {
        fail(c, -r);
        return true;
      }
      sink_->on_peer_fin(c);
      return true;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
    fail(c, errno);
    return true;
  }

  void write_some(Conn* c) {
    for (;;) {
      IoSlice iov[kMaxIov];
      size_t bytes = 0;
      const int cnt = core_send_iov(c, iov, kMaxIov, kMaxWriteBytes, &bytes);
      if (cnt == 0) {
        if (c->bflags & kFlagOut) {
          int r = set_events(c, wanted(c, false));
          if (r < 0) fail(c, -r);
        }
        return;
      }
      msghdr msg;
      std::memset(&msg, 0, sizeof msg);
      msg.msg_iov = iov;
      msg.msg_iovlen = static_cast<size_t>(cnt);
      stats_->send_submissions++;
      ssize_t n;
      do {
        n = sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
      } while (n < 0 && errno == EINTR);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          if (!(c->bflags & kFlagOut)) {
            int r = set_events(c, wanted(c, true));
            if (r < 0) fail(c, -r);
          }
          return;
        }
        fail(c, errno);
        return;
      }
      sink_->on_sent(c, static_cast<size_t>(n));
      if (static_cast<size_t>(n) < bytes) {
        // The kernel buffer is full: wait for EPOLLOUT.
        if (!(c->bflags & kFlagOut)) {
          int r = set_events(c, wanted(c, true));
          if (r < 0) fail(c, -r);
        }
        return;
      }
    }
  }

  CoreSink* sink_ = nullptr;
  LoopStats* stats_ = nullptr;
  int ep_ = -1;
  int max_events_ = kMaxEvents;
  bool fixed_max_events_ = false;
  bool inline_ = false;
  int wake_fd_ = -1;
  int timer_fd_ = -1;
  bool timer_armed_ = false;
  std::vector<Listener*> paused_;  // listeners out of the set after an accept error
  uint8_t* arena_ = nullptr;
  size_t arena_size_ = 0;
  size_t cursor_ = 0;
  char arena_size_str_[24] = {0};
};

}  // namespace

Backend* new_epoll_backend() { return new (std::nothrow) EpollBackend(); }

}  // namespace fastport
