// The io_uring Backend (common/backend.h): one ring per I/O loop, raw
// syscalls only (linux/uring/ring.h), reporting straight to the core's
// CoreSink.
//
//   ring      SINGLE_ISSUER|DEFER_TASKRUN|TASKRUN_FLAG (else
//             COOP_TASKRUN|TASKRUN_FLAG, else plain), SUBMIT_ALL, a large CQ;
//             created R_DISABLED and enabled by the loop's thread on its first
//             turn (SINGLE_ISSUER binds the ring to the thread that enables it).
//   wait fd   inline mode: an eventfd registered with IORING_REGISTER_EVENTFD
//             (the ring fd never signals with DEFER_TASKRUN); it is also the
//             wake() fd. I/O threads: a plain eventfd for wake(), watched by a
//             multishot POLL_ADD, so poll(-1) blocks in io_uring_enter.
//   buffers   a provided buffer ring (IORING_REGISTER_PBUF_RING) of
//             buf_count x buf_size, the receive region the core hands to JS;
//             without it, IORING_OP_PROVIDE_BUFFERS. Every buffer reported with
//             on_data() goes back to the kernel on recv_consumed().
//   accept    multishot (else single-shot, re-armed).
//   recv      multishot with buffer selection (else single-shot, re-armed);
//             re-armed when F_MORE clears; ENOBUFS parks the connection until
//             buffers come back (recv_consumed() re-arms it).
//   send      IORING_OP_SEND for one slice, SENDMSG for several; one in flight
//             per connection (contract 3); try_send_direct() is a plain sendmsg.
//   close     ASYNC_CANCEL of everything on the fd (CANCEL_FD|CANCEL_ALL, else
//             one cancel per op by user_data), then close(2) once every op in
//             flight has completed; only then on_closed().
//
// Connections are the core's Conn: user_data = op (8 bits) | Conn::gen (low
// 24 bits) | Conn::slot (32 bits), so a completion finds its connection in a
// table indexed by the core's slot and a stale one (another occupant of the
// slot) is recognised by the generation. The per-connection ring state
// (flags, in-flight count, the send's iovec and msghdr, the connect address)
// is a UringConn reached through Conn::bptr; UringConns come from fixed
// blocks, so the memory SQEs point at never moves. Listeners: a UringListener
// through Listener::bptr, its index in Listener::bops goes into user_data.
//
// An operation that finds the SQ full even after a submit waits in a retry
// queue drained after the next io_uring_enter; a queued send/shutdown/connect
// counts as in flight, and close() drops what never reached the kernel, so a
// close is never lost. No IOSQE_ASYNC anywhere: sockets are driven by the
// kernel's fast poll. Everything runs on the loop's thread except wake() and
// features().
//
// Tuning by environment (tests and benchmarks), read at init():
//   FASTPORT_URING_BUF_COUNT   buffers in the ring (power of two), default from recv_bytes
//   FASTPORT_URING_BUF_SIZE    bytes per buffer, default 16384
//   FASTPORT_URING_SQ_ENTRIES  submission queue entries (the kernel rounds up to a power of two), default 2048
//   FASTPORT_URING_DISABLE     comma list: deferTaskrun,coopTaskrun,singleIssuer,
//                              bufRing,multishotRecv,multishotAccept,cancelFd
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include "common/backend.h"
#include "fastport.h"
#include "linux/uring/ring.h"

namespace fastport {
namespace uring {
namespace {

// ------------------------------------------------------------ configuration

// Features that can be turned off (tests of the fallbacks; old kernels turn
// them off by themselves).
enum DisableBit : uint32_t {
  kDisableDeferTaskrun = 1u << 0,
  kDisableCoopTaskrun = 1u << 1,
  kDisableSingleIssuer = 1u << 2,
  kDisableBufRing = 1u << 3,
  kDisableMultishotRecv = 1u << 4,
  kDisableMultishotAccept = 1u << 5,
  kDisableCancelFd = 1u << 6,
};

struct Tuning {
  unsigned sq_entries = 2048;
  unsigned cq_entries = 16384;
  unsigned buf_count = 2048;  // power of two, <= 32768
  unsigned buf_size = 16384;
  uint32_t disable = 0;       // DisableBit bits
  bool event_fd = true;       // register an eventfd for readiness (inline mode)
};

// What the ring runs with (after probing and fallbacks).
struct Features {
  bool single_issuer = false;
  bool defer_taskrun = false;
  bool coop_taskrun = false;
  bool taskrun_flag = false;      // IORING_SQ_TASKRUN tells when deferred work waits
  bool submit_all = false;
  bool buf_ring = false;          // else legacy provided buffers
  bool multishot_accept = false;
  bool multishot_recv = false;
  bool cancel_fd = false;         // IORING_ASYNC_CANCEL_FD|ALL (5.19)
  bool event_fd = false;
  bool ext_arg = false;
  unsigned buf_count = 0;
  unsigned buf_size = 0;
  unsigned sq_entries = 0;
  unsigned cq_entries = 0;
};

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
      {"deferTaskrun", kDisableDeferTaskrun},   {"coopTaskrun", kDisableCoopTaskrun},
      {"singleIssuer", kDisableSingleIssuer},   {"bufRing", kDisableBufRing},
      {"multishotRecv", kDisableMultishotRecv}, {"multishotAccept", kDisableMultishotAccept},
      {"cancelFd", kDisableCancelFd},
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

bool is_pow2(unsigned v) { return v != 0 && (v & (v - 1)) == 0; }

std::string step_error(const char* step, int neg) {
  std::string s(step);
  s += " failed: ";
  s += errno_name(-neg);
  return s;
}

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

#if defined(FASTPORT_URING_TEST_HOOKS)
// Fault injection for the mechanics tests only (never in the addon build):
// FASTPORT_URING_FAULT_SQE=N makes every Nth get_sqe() find no SQE (after
// the first FASTPORT_URING_FAULT_SQE_AFTER calls);
// FASTPORT_URING_FAULT_CANCEL_EINVAL=1 makes the first CANCEL_FD cancel
// complete as -EINVAL (the < 5.19 run-time fallback).
unsigned env_count(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? static_cast<unsigned>(std::strtoul(v, nullptr, 10)) : 0u;
}
bool fault_no_sqe() {
  static const unsigned every = env_count("FASTPORT_URING_FAULT_SQE");
  static const unsigned after = env_count("FASTPORT_URING_FAULT_SQE_AFTER");
  static unsigned calls = 0;
  return every > 0 && ++calls > after && calls % every == 0;
}
bool fault_cancel_einval() {
  static bool armed = [] {
    const char* v = std::getenv("FASTPORT_URING_FAULT_CANCEL_EINVAL");
    return v != nullptr && *v == '1';
  }();
  if (!armed) return false;
  armed = false;
  return true;
}
#endif

constexpr int kMaxIov = 64;
constexpr size_t kMaxSendBytes = 4 * 1024 * 1024;
constexpr uint16_t kBufGroup = 7;
constexpr long kAcceptPauseNs = 50L * 1000 * 1000;  // after EMFILE/ENFILE/ENOBUFS/ENOMEM
// UringConns come in blocks of this many (a block never moves or shrinks).
constexpr size_t kUringConnsPerBlock = 256;

// user_data tags (not kernel opcodes).
enum UdTag : uint8_t {
  kUdAccept = 1,
  kUdRecv,
  kUdSend,
  kUdConnect,
  kUdShutdown,
  kUdCancel,
  kUdProvide,
  kUdWakeup,
  kUdListenerCancel,
  kUdAcceptPause,
};

constexpr uint64_t user_data(UdTag tag, uint32_t gen, uint32_t index) {
  return (static_cast<uint64_t>(tag) << 56) | (static_cast<uint64_t>(gen & 0xffffffu) << 32) | index;
}

// The ring side of one connection (Conn::bptr).
struct UringConn {
  enum State : uint8_t { kUnused = 0, kConnecting, kOpen, kClosing, kClosed };
  Conn* conn = nullptr;
  int fd = -1;               // the backend's copy of conn->fd (closed here)
  uint16_t inflight = 0;     // SQEs submitted (or queued for retry) whose final CQE has not come
  State state = kUnused;
  CloseMode close_mode = CloseMode::kSilent;
  bool recv_armed = false;    // a recv (multishot or single) is in the kernel
  bool recv_wanted = false;   // receiving is on (re-arm when the recv ends)
  bool waiting_bufs = false;  // parked on ENOBUFS
  bool send_inflight = false;
  bool connecting = false;
  bool shutdown_inflight = false;
  // Operations that found no SQE and wait in the retry queue.
  bool recv_queued = false;
  bool send_queued = false;
  bool shutdown_queued = false;
  bool connect_queued = false;
  bool cancel_queued = false;
  bool cancel_keep_send = false;  // graceful close: the last send may finish
  // What the core was told: after on_error only on_closed follows, after
  // on_peer_fin no more data.
  bool errored = false;
  bool fin_seen = false;
  socklen_t addr_len = 0;
  msghdr msg{};
  std::vector<iovec> iov;     // the send in flight (kept for a retried prep)
  sockaddr_storage addr{};    // connect target
  UringConn* next_free = nullptr;
};

struct UringListener {
  Listener* owner = nullptr;
  int fd = -1;                // the backend's copy of owner->fd (closed here)
  uint32_t index = 0;
  bool armed = false;         // an accept is in the kernel
  bool removing = false;
  bool pause_armed = false;   // accept paused after EMFILE & co (timeout in the kernel)
  bool arm_queued = false;    // the accept waits for an SQE
  bool pause_queued = false;  // the pause timeout waits for an SQE
  bool cancel_queued = false; // remove_listener's cancel waits for an SQE
  KernelTimespec pause_ts{};
};

// An operation that found the SQ full even after a submit: retried after the
// next io_uring_enter. index is a core slot or a listener index; gen guards
// against a slot reused in between.
enum class RetryOp : uint8_t {
  kRecv, kSend, kShutdown, kConnect, kCancel, kRecvCancel, kAccept, kAcceptPause, kListenerCancel, kWakeup,
};
struct Retry {
  RetryOp op;
  uint32_t index;
  uint32_t gen;
};

class UringBackend final : public Backend {
 public:
  ~UringBackend() override { teardown(); }

  const char* name() const override { return "uring"; }

  void features(void (*add)(void*, const char*, const char*), void* ctx) const override {
    // Any thread (EngineInfo from JS while an I/O thread runs): a snapshot.
    Features f;
    {
      std::lock_guard<std::mutex> g(features_mu_);
      f = features_pub_;
    }
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
    b("registeredEventfd", f.event_fd);
    n("recvBuffers", f.buf_count);
    n("recvBufferSize", f.buf_size);
    n("sqEntries", f.sq_entries);
    n("cqEntries", f.cq_entries);
  }

  int init(const BackendConfig& config, CoreSink* sink) override;
  SocketHandle wait_fd() const override { return wake_fd_; }
  int poll(int timeout_ms) override;
  void submit() override { flush(); }

  void wake() override {
    woken_.store(true, std::memory_order_release);
    uint64_t one = 1;
    ssize_t w = ::write(wake_fd_, &one, sizeof(one));
    (void)w;  // EAGAIN: the counter is already non-zero, the wakeup is pending
  }

  RecvRegion recv_region() const override {
    RecvRegion r;
    r.base = buf_base_;
    r.size = buf_len_;
    return r;
  }

  void recv_consumed() override {
    for (uint16_t bid : out_bids_) release_buffer(bid);
    out_bids_.clear();
    // Connections parked on ENOBUFS wait for exactly these buffers. Re-arm
    // them now: no completion may be coming that would do it (inline mode
    // stops after 64 polls; if every busy connection is parked, nothing
    // else would ever enter the ring again).
    if (!parked_.empty()) flush();
  }

  int add_listener(Listener* l) override;
  void remove_listener(Listener* l) override;
  int start_connect(Conn* c, const sockaddr* addr, socklen_t addr_len) override;
  long try_send_direct(Conn* c, const IoSlice* iov, int iov_count) override;
  void send_ready(Conn* c) override {
    UringConn* u = of(c);
    if (u != nullptr) start_send(*u);
  }
  int shutdown_write(Conn* c) override;
  void close(Conn* c, CloseMode mode) override;
  void set_receiving(Conn* c, bool on) override;

 private:
  static UringConn* of(Conn* c) { return static_cast<UringConn*>(c->bptr); }

  // ---- setup / teardown
  int setup_ring(const Tuning& t, std::string* error);
  int setup_buffers(const Tuning& t, std::string* error);
  void teardown();
  void publish_features() {
    std::lock_guard<std::mutex> g(features_mu_);
    features_pub_ = features_;
  }
  int enable() {
    if (enabled_) return 0;
    int r = ring_.enable();
    if (r < 0) return r;
    enabled_ = true;
    return 0;
  }

  // ---- connection table
  UringConn* adopt(Conn* c, int fd, UringConn::State state);
  UringConn* find(uint32_t slot, uint32_t gen) const;
  void release_uring_conn(UringConn* u);

  // ---- submission
  io_uring_sqe* get_sqe();
  void kick() {
    // listen/connect/close_listener come straight from JS (inline mode) with
    // no submit() after them: hand the SQE to the kernel now. Inside poll()
    // (or on an I/O thread, between polls) the next enter takes it anyway.
    if (inline_ && !in_poll_) flush();
  }
  int flush();
  int process(int timeout_ms);
  bool taskrun_pending() const { return features_.taskrun_flag && (ring_.sq_flags() & IORING_SQ_TASKRUN) != 0; }
  bool work_ready() const {
    return ring_.cq_ready() > 0 || !closed_conns_.empty() || !closed_listeners_.empty() || !retry_.empty() ||
           taskrun_pending();
  }
  void signal_event_fd() {
    uint64_t one = 1;
    ssize_t w = ::write(event_fd_, &one, sizeof(one));
    (void)w;
  }
  void queue_retry(RetryOp op, uint32_t index, uint32_t gen) { retry_.push_back(Retry{op, index, gen}); }
  void drain_retries();
  void retry_conn_op(const Retry& r);
  void retry_listener_op(const Retry& r);

  // ---- buffers
  void recycle(uint32_t bid);
  void release_buffer(uint32_t bid);
  void publish_buffers();
  void flush_provide();
  void before_enter();
  void rearm_parked();

  // ---- listeners
  void arm_accept(UringListener& l);
  bool arm_accept_pause(UringListener& l);
  bool submit_listener_cancel(UringListener& l);
  void listener_gone(UringListener& l);

  // ---- connections
  void arm_recv(UringConn& u);
  bool submit_recv_cancel(UringConn& u);
  void start_send(UringConn& u);
  bool prep_send(UringConn& u);
  bool prep_shutdown(UringConn& u);
  bool prep_connect(UringConn& u);
  bool submit_cancel(UringConn& u, bool by_fd);
  bool submit_close_cancel(UringConn& u) {
    // Graceful with the last send in the kernel: it may finish, so only the
    // rest is cancelled, by user_data (CANCEL_FD|ALL would take the send too).
    return submit_cancel(u, features_.cancel_fd && !u.cancel_keep_send);
  }
  void op_done(UringConn& u);
  void finish_close(UringConn& u);
  void report_error(UringConn& u, int err) {
    if (u.errored) return;
    u.errored = true;
    sink_->on_error(u.conn, err);
  }

  // ---- completions
  void dispatch(const io_uring_cqe& cqe);
  void on_accept_cqe(uint32_t index, const io_uring_cqe& cqe);
  void on_recv_cqe(UringConn& u, const io_uring_cqe& cqe);
  void on_send_cqe(UringConn& u, int res);
  void on_connect_cqe(UringConn& u, int res);
  void on_cancel_cqe(UringConn& u, int res);
  void report_closed();
  void arm_wakeup();

  Ring ring_;
  CoreSink* sink_ = nullptr;
  LoopStats* stats_ = nullptr;
  bool inline_ = true;
  bool in_poll_ = false;
  bool enabled_ = false;
  bool in_dispatch_ = false;
  bool in_rearm_ = false;
  bool has_shutdown_op_ = true;
  bool has_provide_op_ = true;
  bool multishot_recv_confirmed_ = false;
  bool multishot_accept_confirmed_ = false;
  Features features_;                 // loop thread
  mutable std::mutex features_mu_;
  Features features_pub_;             // any thread, under features_mu_

  int event_fd_ = -1;  // registered with the ring (inline mode); == wake_fd_ then
  int wake_fd_ = -1;
  std::atomic<bool> woken_{false};

  // Receive buffers: one region of buf_count x buf_size; the ring entries apart.
  uint8_t* buf_base_ = nullptr;
  size_t buf_len_ = 0;
  void* bufring_ = nullptr;  // io_uring_buf_ring (buf ring mode)
  size_t bufring_len_ = 0;
  unsigned buf_mask_ = 0;
  uint16_t buf_tail_ = 0;        // local tail, published before each enter
  uint16_t buf_published_ = 0;
  uint64_t buffers_out_ = 0;     // handed to the core and not yet released
  std::vector<uint16_t> provide_pending_;  // legacy mode: bids to re-provide
  std::vector<uint16_t> out_bids_;         // reported since the last recv_consumed()

  std::vector<std::unique_ptr<UringConn[]>> conn_blocks_;
  UringConn* free_conns_ = nullptr;
  std::vector<UringConn*> by_slot_;  // indexed by the core's Conn::slot
  std::vector<UringListener*> listeners_;  // indexed by Listener::bops
  std::vector<uint32_t> free_listener_indexes_;

  std::vector<uint32_t> parked_;            // slots waiting for buffers
  std::vector<uint32_t> rearm_list_;        // parked_ swapped out while re-arming
  std::vector<Retry> retry_;                // operations waiting for an SQE
  std::vector<Retry> retry_list_;           // retry_ swapped out while draining
  std::vector<UringConn*> closed_conns_;    // to report with on_closed()
  std::vector<Listener*> closed_listeners_; // to report with on_listener_closed()
  IoSlice iov_[kMaxIov];
};

// ------------------------------------------------------------ setup

int UringBackend::init(const BackendConfig& config, CoreSink* sink) {
  sink_ = sink;
  stats_ = config.stats;
  inline_ = config.inline_mode;
  Tuning t;
  t.buf_size = env_uint("FASTPORT_URING_BUF_SIZE", 16384);
  // Receive memory: at least 16 MiB (1024 x 16 KiB) per loop: buffers are
  // only touched when data arrives, and an idle connection holds none.
  size_t want = config.recv_bytes < (16u << 20) ? (16u << 20) : config.recv_bytes;
  unsigned count = static_cast<unsigned>(want / t.buf_size);
  if (count > 32768) count = 32768;
  if (count < 8) count = 8;
  t.buf_count = floor_pow2(env_uint("FASTPORT_URING_BUF_COUNT", count));
  if (t.buf_count > 32768) t.buf_count = 32768;
  t.sq_entries = env_uint("FASTPORT_URING_SQ_ENTRIES", t.sq_entries);
  t.disable = env_disable();
  t.event_fd = inline_;
  std::string err;
  int r = setup_ring(t, &err);
  if (r == 0) r = setup_buffers(t, &err);
  if (r == 0) {
    features_.multishot_accept = !(t.disable & kDisableMultishotAccept);
    features_.multishot_recv = !(t.disable & kDisableMultishotRecv);
    features_.cancel_fd = !(t.disable & kDisableCancelFd);
    if (t.event_fd) {
      event_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
      if (event_fd_ < 0) {
        r = -errno;
      } else {
        r = ring_.register_op(kRegisterEventfd, &event_fd_, 1);
        features_.event_fd = r == 0;
      }
      wake_fd_ = event_fd_;
    } else {
      wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
      if (wake_fd_ < 0) {
        r = -errno;
      } else {
        arm_wakeup();
      }
    }
  }
  if (r < 0) {
    teardown();
    return r;
  }
  publish_features();
  return 0;
}

int UringBackend::setup_ring(const Tuning& t, std::string* error) {
  const uint32_t d = t.disable;
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
      tries.push_back(base | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG |
                      IORING_SETUP_R_DISABLED);
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
    p.cq_entries = t.cq_entries;
    r = ring_.init(t.sq_entries, &p);
    if (r == 0) break;
    if (r != -EINVAL) break;  // EPERM, ENOSYS, ENOMEM: no point trying other flags
  }
  if (r < 0) {
    *error = step_error("io_uring_setup", r);
    return r;
  }
  if ((p.features & IORING_FEAT_FAST_POLL) == 0) {
    *error = "io_uring lacks IORING_FEAT_FAST_POLL (kernel < 5.7): socket ops would run in io-wq";
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
  const uint8_t needed[] = {kOpRecv, kOpSend, kOpSendmsg, kOpAccept, kOpConnect, kOpAsyncCancel};
  for (uint8_t op : needed) {
    if (!has(op)) {
      *error = "io_uring lacks opcode " + std::to_string(op) + " (kernel too old)";
      return -EOPNOTSUPP;
    }
  }
  has_shutdown_op_ = has(kOpShutdown);
  has_provide_op_ = has(kOpProvideBuffers);
  return 0;
}

int UringBackend::setup_buffers(const Tuning& t, std::string* error) {
  const unsigned count = t.buf_count;
  if (!is_pow2(count) || count > 32768) {
    *error = "buf_count must be a power of two <= 32768";
    return -EINVAL;
  }
  const unsigned size = t.buf_size;
  buf_len_ = static_cast<size_t>(count) * size;
  void* mem = mmap(nullptr, buf_len_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) {
    int e = -errno;
    buf_len_ = 0;
    *error = step_error("mmap of receive buffers", e);
    return e;
  }
  buf_base_ = static_cast<uint8_t*>(mem);
  features_.buf_count = count;
  features_.buf_size = size;
  buf_mask_ = count - 1;

  if (!(t.disable & kDisableBufRing)) {
    bufring_len_ = static_cast<size_t>(count) * sizeof(Buf);
    void* ringmem = mmap(nullptr, bufring_len_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (ringmem == MAP_FAILED) {
      int e = -errno;
      bufring_len_ = 0;
      *error = step_error("mmap of the buffer ring", e);
      return e;
    }
    bufring_ = ringmem;
    BufReg reg{};
    reg.ring_addr = reinterpret_cast<uint64_t>(ringmem);
    reg.ring_entries = count;
    reg.bgid = kBufGroup;
    int r = ring_.register_op(kRegisterPbufRing, &reg, 1);
    if (r == 0) {
      features_.buf_ring = true;
      for (unsigned i = 0; i < count; ++i) recycle(static_cast<uint16_t>(i));
      __atomic_store_n(reinterpret_cast<uint16_t*>(static_cast<char*>(bufring_) + kBufRingTailOffset), buf_tail_,
                       __ATOMIC_RELEASE);
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

void UringBackend::teardown() {
  // Closing the ring cancels everything in flight; then the fds can go.
  ring_.destroy();
  for (auto& block : conn_blocks_) {
    for (size_t i = 0; i < kUringConnsPerBlock; ++i) {
      UringConn& u = block[i];
      if (u.fd >= 0) ::close(u.fd);
      u.fd = -1;
    }
  }
  conn_blocks_.clear();
  free_conns_ = nullptr;
  by_slot_.clear();
  for (UringListener* l : listeners_) {
    if (l == nullptr) continue;
    if (l->fd >= 0) ::close(l->fd);
    delete l;
  }
  listeners_.clear();
  if (wake_fd_ >= 0 && wake_fd_ != event_fd_) ::close(wake_fd_);
  wake_fd_ = -1;
  if (event_fd_ >= 0) ::close(event_fd_);
  event_fd_ = -1;
  if (bufring_ != nullptr) munmap(bufring_, bufring_len_);
  bufring_ = nullptr;
  if (buf_base_ != nullptr) munmap(buf_base_, buf_len_);
  buf_base_ = nullptr;
  parked_.clear();
  retry_.clear();
  closed_conns_.clear();
  closed_listeners_.clear();
  provide_pending_.clear();
}

// ------------------------------------------------------------ connection table

UringConn* UringBackend::adopt(Conn* c, int fd, UringConn::State state) {
  if (free_conns_ == nullptr) {
    std::unique_ptr<UringConn[]> block(new (std::nothrow) UringConn[kUringConnsPerBlock]);
    if (!block) return nullptr;
    for (size_t i = kUringConnsPerBlock; i-- > 0;) {
      block[i].next_free = free_conns_;
      free_conns_ = &block[i];
    }
    conn_blocks_.push_back(std::move(block));
  }
  if (c->slot >= by_slot_.size()) by_slot_.resize(static_cast<size_t>(c->slot) + 1, nullptr);
  UringConn* u = free_conns_;
  free_conns_ = u->next_free;
  u->next_free = nullptr;
  u->conn = c;
  u->fd = fd;
  u->state = state;
  c->bptr = u;
  by_slot_[c->slot] = u;
  return u;
}

UringConn* UringBackend::find(uint32_t slot, uint32_t gen) const {
  if (slot >= by_slot_.size()) return nullptr;
  UringConn* u = by_slot_[slot];
  if (u == nullptr || u->state == UringConn::kClosed || ((u->conn->gen ^ gen) & 0xffffffu) != 0) return nullptr;
  return u;
}

void UringBackend::release_uring_conn(UringConn* u) {
  Conn* c = u->conn;
  if (c->slot < by_slot_.size() && by_slot_[c->slot] == u) by_slot_[c->slot] = nullptr;
  c->bptr = nullptr;
  std::vector<iovec> iov;
  iov.swap(u->iov);  // the capacity is kept for the next occupant
  iov.clear();
  *u = UringConn{};
  u->iov.swap(iov);
  u->next_free = free_conns_;
  free_conns_ = u;
}

// ------------------------------------------------------------ submission

io_uring_sqe* UringBackend::get_sqe() {
#if defined(FASTPORT_URING_TEST_HOOKS)
  if (fault_no_sqe()) return nullptr;
#endif
  io_uring_sqe* sqe = ring_.next_sqe();
  if (sqe == nullptr) {
    // SQ full: hand what is queued to the kernel (no wait) and retry. Only
    // the buffer tail is published here: re-arming parked connections
    // (before_enter) would take SQEs itself and nest into this function.
    if (!enabled_) enable();
    publish_buffers();
    ring_.enter(0, false, 0);
    sqe = ring_.next_sqe();
  }
  return sqe;
}

int UringBackend::flush() {
  int r = enable();
  if (r < 0) return r;
  before_enter();
  if (ring_.sq_pending() > 0) r = ring_.enter(0, false, 0);
  if (!retry_.empty()) {
    drain_retries();
    if (ring_.sq_pending() > 0) {
      int r2 = ring_.enter(0, false, 0);
      if (r >= 0 && r2 < 0) r = r2;
    }
  }
  // TASKRUN_FLAG: completions wait as deferred task work (DEFER_TASKRUN runs
  // it only inside io_uring_enter with GETEVENTS). Run it now so they reach
  // the CQ and the eventfd below says so.
  if (taskrun_pending()) ring_.enter(0, true, 0);
  // Completions that arrived inline (or closes waiting to be reported) must
  // wake the loop: make sure the eventfd is readable. (6.18 signals it for
  // inline CQEs by itself, but relying on that lost wakeups under
  // DEFER_TASKRUN in a test; the write is one cheap syscall per turn.)
  if (event_fd_ >= 0 && work_ready()) signal_event_fd();
  return r < 0 ? r : 0;
}

int UringBackend::poll(int timeout_ms) {
  if (inline_) {
    uint64_t v;
    ssize_t rd = ::read(event_fd_, &v, sizeof(v));  // clears readiness; EAGAIN when already clear
    (void)rd;
  }
  if (woken_.exchange(false, std::memory_order_acq_rel)) sink_->on_wake();
  in_poll_ = true;
  int r = process(timeout_ms);
  in_poll_ = false;
  if (r < 0) return r;
  if (woken_.exchange(false, std::memory_order_acq_rel)) sink_->on_wake();
  const bool starved = !parked_.empty() && buffers_out_ >= features_.buf_count;
  return starved ? kPollMore : kPollDone;
}

// One loop turn: one io_uring_enter submitting everything queued and
// collecting completions (waiting up to timeout_ms for one when nothing is
// ready), then dispatching them. Returns the number of CQEs handled or -errno.
int UringBackend::process(int timeout_ms) {
  int r = enable();
  if (r < 0) return r;
  before_enter();
  const unsigned wait_nr = (timeout_ms != 0 && !work_ready()) ? 1 : 0;
  r = ring_.enter(wait_nr, true, timeout_ms);
  if (r < 0 && r != -EBADR) return r;
  // The SQ has room again: operations that found it full get their SQEs
  // (submitted with the next enter: the turn's submit() or poll()).
  drain_retries();
  in_dispatch_ = true;
  unsigned n = ring_.drain_cqes([this](const io_uring_cqe& cqe) { dispatch(cqe); });
  // A CQ that overflowed keeps the rest in the kernel: one more round.
  if (ring_.sq_flags() & IORING_SQ_CQ_OVERFLOW) {
    ring_.enter(0, true, 0);
    n += ring_.drain_cqes([this](const io_uring_cqe& cqe) { dispatch(cqe); });
  }
  report_closed();
  in_dispatch_ = false;
  // The kernel runs a bounded amount of deferred work per enter, and signals
  // the eventfd only when that work list goes from empty to non-empty: with
  // work left over, no signal would ever come again. Keep the loop readable.
  // Connections parked while buffers are free (an ENOBUFS reaped after the
  // buffers came back) are re-armed by the next enter: make sure there is one.
  const bool rearm_due = !parked_.empty() && buffers_out_ < features_.buf_count;
  if (event_fd_ >= 0 && (taskrun_pending() || rearm_due)) signal_event_fd();
  return static_cast<int>(n);
}

void UringBackend::drain_retries() {
  if (retry_.empty()) return;
  retry_list_.clear();
  retry_list_.swap(retry_);
  for (const Retry& r : retry_list_) {
    switch (r.op) {
      case RetryOp::kWakeup:
        arm_wakeup();  // queues itself again without an SQE
        break;
      case RetryOp::kAccept:
      case RetryOp::kAcceptPause:
      case RetryOp::kListenerCancel:
        retry_listener_op(r);
        break;
      default:
        retry_conn_op(r);
        break;
    }
  }
  retry_list_.clear();
}

void UringBackend::retry_listener_op(const Retry& r) {
  if (r.index >= listeners_.size() || listeners_[r.index] == nullptr) return;
  UringListener& l = *listeners_[r.index];
  if (r.op == RetryOp::kAccept) {
    if (!l.arm_queued) return;
    l.arm_queued = false;
    if (!l.removing && !l.armed && !l.pause_armed) arm_accept(l);
  } else if (r.op == RetryOp::kAcceptPause) {
    if (!l.pause_queued) return;
    if (l.removing || arm_accept_pause(l)) {
      l.pause_queued = false;
    } else {
      retry_.push_back(r);
    }
  } else {
    if (!l.cancel_queued) return;
    if (!l.removing || (!l.armed && !l.pause_armed) || submit_listener_cancel(l)) {
      l.cancel_queued = false;
    } else {
      retry_.push_back(r);
    }
  }
}

void UringBackend::retry_conn_op(const Retry& r) {
  UringConn* u = find(r.index, r.gen);
  if (u == nullptr) return;
  UringConn& c = *u;
  switch (r.op) {
    case RetryOp::kRecv:
      if (!c.recv_queued) break;
      c.recv_queued = false;
      if (c.state == UringConn::kOpen && c.recv_wanted && !c.recv_armed && !c.waiting_bufs) arm_recv(c);
      break;
    case RetryOp::kSend:
      if (c.send_queued && prep_send(c)) c.send_queued = false;
      if (c.send_queued) retry_.push_back(r);
      break;
    case RetryOp::kShutdown:
      if (c.shutdown_queued && prep_shutdown(c)) c.shutdown_queued = false;
      if (c.shutdown_queued) retry_.push_back(r);
      break;
    case RetryOp::kConnect:
      if (c.connect_queued && prep_connect(c)) c.connect_queued = false;
      if (c.connect_queued) retry_.push_back(r);
      break;
    case RetryOp::kRecvCancel:
      // Still paused with a recv in the kernel: cancel it now.
      if (c.state == UringConn::kOpen && !c.recv_wanted && c.recv_armed && !submit_recv_cancel(c)) retry_.push_back(r);
      break;
    case RetryOp::kCancel:
      if (!c.cancel_queued) break;
      if (c.state != UringConn::kClosing || c.inflight == 0) {
        c.cancel_queued = false;
        break;
      }
      c.cancel_keep_send = c.cancel_keep_send && c.send_inflight;
      if (submit_close_cancel(c)) {
        c.cancel_queued = false;
      } else {
        retry_.push_back(r);
      }
      break;
    default:
      break;
  }
}

// ------------------------------------------------------------ buffers

void UringBackend::recycle(uint32_t bid) {
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

void UringBackend::release_buffer(uint32_t bid) {
  if (buf_base_ == nullptr || bid >= features_.buf_count) return;
  if (buffers_out_ > 0) --buffers_out_;
  recycle(bid);
}

void UringBackend::flush_provide() {
  if (provide_pending_.empty()) return;
  std::sort(provide_pending_.begin(), provide_pending_.end());
  size_t i = 0;
  const size_t n = provide_pending_.size();
  while (i < n) {
    size_t j = i + 1;
    while (j < n && provide_pending_[j] == provide_pending_[j - 1] + 1) ++j;
    io_uring_sqe* sqe = ring_.next_sqe();
    if (sqe == nullptr) break;  // the rest goes with the next enter
    const uint16_t first = provide_pending_[i];
    sqe->opcode = kOpProvideBuffers;
    sqe->fd = static_cast<int32_t>(j - i);
    sqe->addr = reinterpret_cast<uint64_t>(buf_base_ + static_cast<size_t>(first) * features_.buf_size);
    sqe->len = features_.buf_size;
    sqe->off = first;
    sqe->buf_group = kBufGroup;
    sqe->user_data = user_data(kUdProvide, 0, 0);
    i = j;
  }
  provide_pending_.erase(provide_pending_.begin(), provide_pending_.begin() + static_cast<long>(i));
}

void UringBackend::publish_buffers() {
  if (features_.buf_ring && buf_tail_ != buf_published_) {
    __atomic_store_n(reinterpret_cast<uint16_t*>(static_cast<char*>(bufring_) + kBufRingTailOffset), buf_tail_,
                     __ATOMIC_RELEASE);
    buf_published_ = buf_tail_;
  }
}

// Runs before every io_uring_enter of a turn: returned buffers go back to the
// kernel, then connections parked on ENOBUFS are re-armed.
void UringBackend::before_enter() {
  if (features_.buf_ring) {
    publish_buffers();
  } else if (!provide_pending_.empty()) {
    flush_provide();  // SQEs run in order: the buffers are back before the re-armed recvs
  }
  // Parked on ENOBUFS and buffers are free again (returned now or earlier:
  // an ENOBUFS can be reaped after its buffers came back): re-arm.
  if (!parked_.empty()) rearm_parked();
}

void UringBackend::rearm_parked() {
  // Re-arm about as many parked connections as there are free buffers (each
  // takes at least one); the rest wait, in order, for the next return.
  // The list is swapped out first: arm_recv may run out of SQEs and submit,
  // and nothing it calls may see (or change) a list being walked.
  if (in_rearm_) return;
  size_t budget = buffers_out_ >= features_.buf_count ? 0 : static_cast<size_t>(features_.buf_count - buffers_out_);
  if (budget == 0) return;
  in_rearm_ = true;
  rearm_list_.clear();
  rearm_list_.swap(parked_);
  size_t i = 0;
  for (; i < rearm_list_.size() && budget > 0; ++i) {
    const uint32_t slot = rearm_list_[i];
    UringConn* u = slot < by_slot_.size() ? by_slot_[slot] : nullptr;
    if (u == nullptr || !u->waiting_bufs) continue;
    u->waiting_bufs = false;
    if (u->state == UringConn::kOpen && u->recv_wanted && !u->recv_armed) {
      arm_recv(*u);
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

int UringBackend::add_listener(Listener* owner) {
  UringListener* l = new (std::nothrow) UringListener();
  if (l == nullptr) return -ENOMEM;
  uint32_t index;
  if (!free_listener_indexes_.empty()) {
    index = free_listener_indexes_.back();
    free_listener_indexes_.pop_back();
  } else {
    index = static_cast<uint32_t>(listeners_.size());
    listeners_.push_back(nullptr);
  }
  l->owner = owner;
  l->fd = owner->fd;
  l->index = index;
  listeners_[index] = l;
  owner->bops = index;
  owner->bptr = l;
  arm_accept(*l);
  kick();
  return 0;
}

void UringBackend::remove_listener(Listener* owner) {
  UringListener* lp = static_cast<UringListener*>(owner->bptr);
  if (lp == nullptr || lp->removing) return;
  UringListener& l = *lp;
  l.removing = true;
  if (!l.armed && !l.pause_armed) {
    // Nothing in the kernel (a queued arm or pause is dropped by its retry).
    listener_gone(l);
  } else if (!submit_listener_cancel(l)) {
    l.cancel_queued = true;
    queue_retry(RetryOp::kListenerCancel, l.index, 0);
  }
  kick();
}

// The accept and its pause are gone: close the fd, report (from the end of
// the turn, or the next poll()).
void UringBackend::listener_gone(UringListener& l) {
  Listener* owner = l.owner;
  if (l.fd >= 0) ::close(l.fd);
  owner->fd = kInvalidSocket;
  owner->bptr = nullptr;
  listeners_[l.index] = nullptr;
  free_listener_indexes_.push_back(l.index);
  delete &l;
  closed_listeners_.push_back(owner);
}

void UringBackend::arm_accept(UringListener& l) {
  if (l.arm_queued) return;
  io_uring_sqe* sqe = get_sqe();
  if (sqe == nullptr) {
    l.arm_queued = true;
    queue_retry(RetryOp::kAccept, l.index, 0);
    return;
  }
  sqe->opcode = kOpAccept;
  sqe->fd = l.fd;
  sqe->accept_flags = SOCK_CLOEXEC | SOCK_NONBLOCK;
  if (features_.multishot_accept) sqe->ioprio = IORING_ACCEPT_MULTISHOT;
  sqe->user_data = user_data(kUdAccept, 0, l.index);
  l.armed = true;
}

bool UringBackend::submit_listener_cancel(UringListener& l) {
  io_uring_sqe* sqe = get_sqe();
  if (sqe == nullptr) return false;
  sqe->opcode = kOpAsyncCancel;
  sqe->addr = l.pause_armed ? user_data(kUdAcceptPause, 0, l.index) : user_data(kUdAccept, 0, l.index);
  sqe->user_data = user_data(kUdListenerCancel, 0, l.index);
  return true;
}

bool UringBackend::arm_accept_pause(UringListener& l) {
  io_uring_sqe* sqe = get_sqe();
  if (sqe == nullptr) return false;
  l.pause_ts.tv_sec = 0;
  l.pause_ts.tv_nsec = kAcceptPauseNs;
  sqe->opcode = kOpTimeout;
  sqe->addr = reinterpret_cast<uint64_t>(&l.pause_ts);  // UringListener is heap-allocated: stable
  sqe->len = 1;
  sqe->user_data = user_data(kUdAcceptPause, 0, l.index);
  l.pause_armed = true;
  return true;
}

void UringBackend::on_accept_cqe(uint32_t index, const io_uring_cqe& cqe) {
  UringListener* lp = index < listeners_.size() ? listeners_[index] : nullptr;
  if (lp == nullptr) {
    if (cqe.res >= 0) ::close(cqe.res);
    return;
  }
  UringListener& l = *lp;
  const bool more = (cqe.flags & IORING_CQE_F_MORE) != 0;
  if (!more) l.armed = false;
  if (cqe.res >= 0) {
    if (features_.multishot_accept && more) multishot_accept_confirmed_ = true;
    if (l.removing) {
      ::close(cqe.res);
    } else {
      Conn* c = sink_->on_accepted(l.owner, cqe.res, nullptr, 0);
      if (c != nullptr) {
        UringConn* u = adopt(c, cqe.res, UringConn::kOpen);
        if (u == nullptr) {
          // No memory for the ring state: the core closes it (close() without
          // a UringConn closes the fd and reports at once).
          sink_->on_error(c, ENOMEM);
        } else {
          u->recv_wanted = true;
          arm_recv(*u);
        }
      }
    }
  } else if (cqe.res == -EINVAL && features_.multishot_accept && !multishot_accept_confirmed_) {
    features_.multishot_accept = false;  // < 5.19: single-shot accepts
    publish_features();
  } else if (cqe.res != -ECANCELED && !l.removing) {
    sink_->on_listener_error(l.owner, -cqe.res);
    if (!more && (cqe.res == -EMFILE || cqe.res == -ENFILE || cqe.res == -ENOBUFS || cqe.res == -ENOMEM)) {
      // Out of fds/memory: accept again in 50 ms instead of spinning.
      if (!arm_accept_pause(l)) {
        l.pause_queued = true;
        queue_retry(RetryOp::kAcceptPause, l.index, 0);
      }
      return;
    }
  }
  if (!l.armed) {
    if (l.removing) {
      if (!l.pause_armed) listener_gone(l);
    } else if (!l.pause_armed && !l.pause_queued) {
      arm_accept(l);
    }
  }
}

// ------------------------------------------------------------ connections

int UringBackend::start_connect(Conn* c, const sockaddr* addr, socklen_t addr_len) {
  if (addr_len > sizeof(sockaddr_storage)) return -EINVAL;
  UringConn* u = adopt(c, c->fd, UringConn::kConnecting);
  if (u == nullptr) return -ENOMEM;
  std::memcpy(&u->addr, addr, addr_len);
  u->addr_len = addr_len;
  u->connecting = true;
  ++u->inflight;
  if (!prep_connect(*u)) {
    u->connect_queued = true;
    queue_retry(RetryOp::kConnect, c->slot, c->gen);
  }
  kick();
  return 0;
}

bool UringBackend::prep_connect(UringConn& u) {
  io_uring_sqe* sqe = get_sqe();
  if (sqe == nullptr) return false;
  sqe->opcode = kOpConnect;
  sqe->fd = u.fd;
  sqe->addr = reinterpret_cast<uint64_t>(&u.addr);
  sqe->off = u.addr_len;
  sqe->user_data = user_data(kUdConnect, u.conn->gen, u.conn->slot);
  return true;
}

long UringBackend::try_send_direct(Conn* c, const IoSlice* iov, int iov_count) {
  // Queue empty, nothing in flight (the core's promise; send_inflight checked
  // anyway): send straight from the command buffer, so the bytes are never
  // copied into chunks. What the socket does not take is queued by the core.
  UringConn* u = of(c);
  if (u == nullptr || u->state != UringConn::kOpen || u->errored || u->send_inflight || iov_count <= 0) return 0;
  msghdr m{};
  m.msg_iov = const_cast<IoSlice*>(iov);
  m.msg_iovlen = static_cast<size_t>(iov_count);
  ssize_t n;
  do {
    n = ::sendmsg(u->fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (stats_ != nullptr) ++stats_->send_submissions;
  if (n >= 0) return static_cast<long>(n);
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) return 0;
  return -errno;
}

void UringBackend::start_send(UringConn& u) {
  if (u.state != UringConn::kOpen || u.errored || u.send_inflight || u.conn->queued == 0) return;
  size_t bytes = 0;
  const int n = core_send_iov(u.conn, iov_, kMaxIov, kMaxSendBytes, &bytes);
  if (n <= 0 || bytes == 0) return;
  // Kept in the UringConn so a send that finds no SQE can be prepared later.
  u.iov.assign(iov_, iov_ + n);
  u.send_inflight = true;
  ++u.inflight;
  if (!prep_send(u)) {
    u.send_queued = true;
    queue_retry(RetryOp::kSend, u.conn->slot, u.conn->gen);
  }
  if (stats_ != nullptr) ++stats_->send_submissions;
}

bool UringBackend::prep_send(UringConn& u) {
  io_uring_sqe* sqe = get_sqe();
  if (sqe == nullptr) return false;
  sqe->fd = u.fd;
  sqe->user_data = user_data(kUdSend, u.conn->gen, u.conn->slot);
  sqe->msg_flags = MSG_NOSIGNAL;
  if (u.iov.size() == 1) {
    sqe->opcode = kOpSend;
    sqe->addr = reinterpret_cast<uint64_t>(u.iov[0].iov_base);
    sqe->len = static_cast<uint32_t>(u.iov[0].iov_len);
  } else {
    std::memset(&u.msg, 0, sizeof(u.msg));
    u.msg.msg_iov = u.iov.data();
    u.msg.msg_iovlen = u.iov.size();
    sqe->opcode = kOpSendmsg;
    sqe->addr = reinterpret_cast<uint64_t>(&u.msg);
    sqe->len = 1;
  }
  return true;
}

int UringBackend::shutdown_write(Conn* c) {
  UringConn* u = of(c);
  if (u == nullptr || u->state != UringConn::kOpen || u->errored) return -ENOTCONN;
  if (!has_shutdown_op_) return ::shutdown(u->fd, SHUT_WR) == 0 ? 0 : -errno;  // < 5.11
  if (u->shutdown_inflight) return 0;
  u->shutdown_inflight = true;
  ++u->inflight;
  if (!prep_shutdown(*u)) {
    u->shutdown_queued = true;
    queue_retry(RetryOp::kShutdown, c->slot, c->gen);
  }
  return 0;
}

bool UringBackend::prep_shutdown(UringConn& u) {
  io_uring_sqe* sqe = get_sqe();
  if (sqe == nullptr) return false;
  sqe->opcode = kOpShutdown;
  sqe->fd = u.fd;
  sqe->len = SHUT_WR;
  sqe->user_data = user_data(kUdShutdown, u.conn->gen, u.conn->slot);
  return true;
}

// Contract 10. Pausing cancels the recv in flight by user_data; its
// -ECANCELED end is not an error and is not re-armed. Completions that were
// already in the CQ (or raced the cancel) are still passed on (JS holds them
// until the resume). Resuming arms a recv again, or lets the cancelled one's
// completion re-arm it if it has not come back yet.
void UringBackend::set_receiving(Conn* c, bool on) {
  UringConn* u = of(c);
  if (u == nullptr || u->state != UringConn::kOpen || u->errored || u->fin_seen) return;
  if (on) {
    u->recv_wanted = true;
    if (!u->recv_armed && !u->waiting_bufs) arm_recv(*u);
    return;
  }
  u->recv_wanted = false;   // no re-arm from on_recv_cqe / rearm_parked from here
  u->waiting_bufs = false;  // dropped from parked_ lazily, as close() does
  // Without an SQE the pause is retried after the next submit; until then
  // the recv runs on and JS holds what it brings (the engine's held list).
  if (u->recv_armed && !submit_recv_cancel(*u)) queue_retry(RetryOp::kRecvCancel, c->slot, c->gen);
}

bool UringBackend::submit_recv_cancel(UringConn& u) {
  io_uring_sqe* sqe = get_sqe();
  if (sqe == nullptr) return false;
  sqe->opcode = kOpAsyncCancel;
  sqe->addr = user_data(kUdRecv, u.conn->gen, u.conn->slot);
  sqe->user_data = user_data(kUdCancel, u.conn->gen, u.conn->slot);
  ++u.inflight;
  return true;
}

void UringBackend::arm_recv(UringConn& u) {
  if (u.recv_queued) return;
  io_uring_sqe* sqe = get_sqe();
  if (sqe == nullptr) {
    u.recv_queued = true;
    queue_retry(RetryOp::kRecv, u.conn->slot, u.conn->gen);
    return;
  }
  sqe->opcode = kOpRecv;
  sqe->fd = u.fd;
  sqe->flags = IOSQE_BUFFER_SELECT;
  sqe->buf_group = kBufGroup;
  if (features_.multishot_recv) sqe->ioprio = IORING_RECV_MULTISHOT;
  sqe->user_data = user_data(kUdRecv, u.conn->gen, u.conn->slot);
  u.recv_armed = true;
  ++u.inflight;
}

bool UringBackend::submit_cancel(UringConn& u, bool by_fd) {
  const uint32_t gen = u.conn->gen;
  const uint32_t slot = u.conn->slot;
  if (by_fd) {
    io_uring_sqe* sqe = get_sqe();
    if (sqe == nullptr) return false;
    sqe->opcode = kOpAsyncCancel;
    sqe->fd = u.fd;
    sqe->cancel_flags = IORING_ASYNC_CANCEL_FD | IORING_ASYNC_CANCEL_ALL;
    sqe->user_data = user_data(kUdCancel, gen, slot);
    ++u.inflight;
    return true;
  }
  // One cancel per op in flight, by user_data. If one finds no SQE the
  // whole set is retried: a second cancel of the same op only completes
  // with -ENOENT/-EALREADY.
  bool ok = true;
  auto cancel = [&](UdTag target) {
    io_uring_sqe* sqe = ok ? get_sqe() : nullptr;
    if (sqe == nullptr) {
      ok = false;
      return;
    }
    sqe->opcode = kOpAsyncCancel;
    sqe->addr = user_data(target, gen, slot);
    sqe->user_data = user_data(kUdCancel, gen, slot);
    ++u.inflight;
  };
  if (u.recv_armed) cancel(kUdRecv);
  if (u.send_inflight && !u.cancel_keep_send) cancel(kUdSend);
  if (u.connecting) cancel(kUdConnect);
  if (u.shutdown_inflight) cancel(kUdShutdown);
  return ok;
}

void UringBackend::close(Conn* c, CloseMode mode) {
  UringConn* up = of(c);
  if (up == nullptr) {
    // Never adopted (no memory for its ring state): nothing is in the kernel.
    if (c->fd >= 0) ::close(c->fd);
    c->fd = kInvalidSocket;
    sink_->on_closed(c);
    return;
  }
  UringConn& u = *up;
  if (u.state == UringConn::kClosing || u.state == UringConn::kClosed) return;
  u.state = UringConn::kClosing;
  u.recv_wanted = false;
  u.close_mode = mode;
  if (mode == CloseMode::kAbort) {
    linger lg{};
    lg.l_onoff = 1;
    lg.l_linger = 0;
    setsockopt(u.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));  // best effort: RST instead of FIN
  }
  u.waiting_bufs = false;  // dropped from parked_ lazily
  // Operations still waiting for an SQE never reached the kernel: drop them
  // (their retry entries see the flags cleared and do nothing).
  u.recv_queued = false;
  if (u.send_queued) {
    u.send_queued = false;
    u.send_inflight = false;
    --u.inflight;
  }
  if (u.shutdown_queued) {
    u.shutdown_queued = false;
    u.shutdown_inflight = false;
    --u.inflight;
  }
  if (u.connect_queued) {
    u.connect_queued = false;
    u.connecting = false;
    --u.inflight;
  }
  if (u.inflight == 0) {
    finish_close(u);
    // Nothing was in flight: report at once (outside dispatch) so the slot
    // does not wait for the next loop turn.
    if (!in_dispatch_) report_closed();
    return;
  }
  u.cancel_keep_send = mode == CloseMode::kGraceful && u.send_inflight;
  if (!submit_close_cancel(u)) {
    // A close is never lost: without its cancel the fd, slot and chunks
    // would stay forever (and destroy() would wait for them).
    u.cancel_queued = true;
    queue_retry(RetryOp::kCancel, c->slot, c->gen);
  }
}

void UringBackend::finish_close(UringConn& u) {
  if (u.fd >= 0) {
    if (u.close_mode == CloseMode::kGraceful) ::shutdown(u.fd, SHUT_WR);
    ::close(u.fd);
  }
  u.fd = -1;
  u.conn->fd = kInvalidSocket;
  u.state = UringConn::kClosed;
  u.recv_armed = u.send_inflight = u.waiting_bufs = false;
  u.iov.clear();
  closed_conns_.push_back(&u);
}

void UringBackend::op_done(UringConn& u) {
  if (u.inflight > 0) --u.inflight;
  if (u.inflight == 0 && u.state == UringConn::kClosing) finish_close(u);
}

void UringBackend::arm_wakeup() {
  io_uring_sqe* sqe = get_sqe();
  if (sqe == nullptr) {
    queue_retry(RetryOp::kWakeup, 0, 0);
    return;
  }
  sqe->opcode = kOpPollAdd;
  sqe->fd = wake_fd_;
  sqe->poll32_events = POLLIN;
  sqe->len = IORING_POLL_ADD_MULTI;
  sqe->user_data = user_data(kUdWakeup, 0, 0);
}

// ------------------------------------------------------------ completions

void UringBackend::on_recv_cqe(UringConn& u, const io_uring_cqe& cqe) {
  const bool more = (cqe.flags & IORING_CQE_F_MORE) != 0;
  if (!more) u.recv_armed = false;
  const int res = cqe.res;
  if (res > 0) {
    const uint32_t bid = cqe.flags >> IORING_CQE_BUFFER_SHIFT;
    if (features_.multishot_recv && more) multishot_recv_confirmed_ = true;
    if (u.state != UringConn::kOpen) {
      recycle(bid);  // closing: the data has nowhere to go
    } else {
      ++buffers_out_;
      out_bids_.push_back(static_cast<uint16_t>(bid));
      if (stats_ != nullptr) ++stats_->recv_calls;
      if (!u.errored && !u.fin_seen) {
        sink_->on_data(u.conn, buf_base_ + static_cast<size_t>(bid) * features_.buf_size, static_cast<size_t>(res));
      }
    }
    if (!more) {
      if (u.state == UringConn::kOpen && u.recv_wanted && !u.recv_armed) arm_recv(u);
      op_done(u);
    }
    return;
  }
  // res <= 0 always ends the request (no F_MORE).
  if (res < 0 && (cqe.flags & IORING_CQE_F_BUFFER)) recycle(cqe.flags >> IORING_CQE_BUFFER_SHIFT);
  if (res == -ENOBUFS) {
    if (u.state == UringConn::kOpen && u.recv_wanted) {
      u.waiting_bufs = true;
      parked_.push_back(u.conn->slot);
    }
  } else if (res == -EINVAL && features_.multishot_recv && !multishot_recv_confirmed_) {
    // A kernel without multishot recv (< 6.0) refuses the flag: degrade.
    features_.multishot_recv = false;
    publish_features();
    if (u.state == UringConn::kOpen && u.recv_wanted) arm_recv(u);
  } else if (u.state == UringConn::kOpen) {
    if (res == 0) {
      u.recv_wanted = false;
      if (!u.errored && !u.fin_seen) {
        u.fin_seen = true;
        sink_->on_peer_fin(u.conn);
      }
    } else if (res == -ECANCELED || res == -EINTR) {
      if (u.recv_wanted) arm_recv(u);
    } else {
      u.recv_wanted = false;
      report_error(u, -res);
    }
  }
  op_done(u);
}

void UringBackend::on_send_cqe(UringConn& u, int res) {
  u.send_inflight = false;
  u.iov.clear();
  if (u.state == UringConn::kOpen && !u.errored) {
    if (res > 0) {
      sink_->on_sent(u.conn, static_cast<size_t>(res));
      // More queued (a short send, or writes while this one was out): go on.
      start_send(u);
    } else if (res < 0 && res != -ECANCELED) {
      report_error(u, -res);
    } else if (res == 0) {
      start_send(u);
    }
  }
  op_done(u);
}

void UringBackend::on_connect_cqe(UringConn& u, int res) {
  u.connecting = false;
  if (u.state == UringConn::kConnecting) {
    if (res == 0) {
      u.state = UringConn::kOpen;
      sink_->on_connected(u.conn);
      if (!u.recv_armed) {
        u.recv_wanted = true;
        arm_recv(u);
      }
    } else {
      report_error(u, -res);
    }
  }
  op_done(u);
}

void UringBackend::on_cancel_cqe(UringConn& u, int res) {
#if defined(FASTPORT_URING_TEST_HOOKS)
  if (features_.cancel_fd && fault_cancel_einval()) res = -EINVAL;
#endif
  if (res == -EINVAL && features_.cancel_fd) {
    // < 5.19: no CANCEL_FD; cancel by user_data instead.
    features_.cancel_fd = false;
    publish_features();
    if (u.state == UringConn::kClosing && !submit_close_cancel(u) && !u.cancel_queued) {
      u.cancel_queued = true;
      queue_retry(RetryOp::kCancel, u.conn->slot, u.conn->gen);
    }
  }
  op_done(u);
}

void UringBackend::dispatch(const io_uring_cqe& cqe) {
  const uint64_t ud = cqe.user_data;
  const UdTag tag = static_cast<UdTag>(ud >> 56);
  const uint32_t gen = static_cast<uint32_t>(ud >> 32) & 0xffffffu;
  const uint32_t index = static_cast<uint32_t>(ud);

  switch (tag) {
    case kUdAccept:
      on_accept_cqe(index, cqe);
      return;
    case kUdListenerCancel:
    case kUdProvide:
      return;  // the accept's own CQE does the rest; buffers need no answer
    case kUdAcceptPause: {
      UringListener* l = index < listeners_.size() ? listeners_[index] : nullptr;
      if (l == nullptr) return;
      l->pause_armed = false;
      if (l->removing) {
        if (!l->armed) listener_gone(*l);
      } else if (!l->armed) {
        arm_accept(*l);
      }
      return;
    }
    case kUdWakeup: {
      if ((cqe.flags & IORING_CQE_F_MORE) == 0) arm_wakeup();
      uint64_t v;
      ssize_t r = ::read(wake_fd_, &v, sizeof(v));
      (void)r;  // EAGAIN: another CQE of the same wakeup read it already
      return;
    }
    default:
      break;
  }

  UringConn* u = find(index, gen);
  if (u == nullptr) {
    // Cannot happen while the core reuses a slot only after on_closed; a
    // buffer still goes home.
    if (tag == kUdRecv && cqe.res > 0 && (cqe.flags & IORING_CQE_F_BUFFER)) recycle(cqe.flags >> IORING_CQE_BUFFER_SHIFT);
    return;
  }
  switch (tag) {
    case kUdRecv:
      on_recv_cqe(*u, cqe);
      return;
    case kUdSend:
      on_send_cqe(*u, cqe.res);
      return;
    case kUdConnect:
      on_connect_cqe(*u, cqe.res);
      return;
    case kUdShutdown:
      // A failed half-close (ENOTCONN after a reset) shows up on recv as well.
      u->shutdown_inflight = false;
      op_done(*u);
      return;
    case kUdCancel:
      on_cancel_cqe(*u, cqe.res);
      return;
    default:
      return;
  }
}

void UringBackend::report_closed() {
  while (!closed_conns_.empty() || !closed_listeners_.empty()) {
    std::vector<UringConn*> conns;
    conns.swap(closed_conns_);
    for (UringConn* u : conns) {
      Conn* c = u->conn;
      release_uring_conn(u);
      sink_->on_closed(c);
    }
    std::vector<Listener*> ls;
    ls.swap(closed_listeners_);
    for (Listener* l : ls) sink_->on_listener_closed(l);
  }
}

}  // namespace
}  // namespace uring

Backend* new_uring_backend() { return new (std::nothrow) uring::UringBackend(); }

}  // namespace fastport
