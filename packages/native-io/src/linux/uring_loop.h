// The io_uring mechanics of the uring engine: one UringLoop per I/O loop
// (the JS thread's loop, or one native I/O thread), raw syscalls only.
//
//   ring      SINGLE_ISSUER|DEFER_TASKRUN (else COOP_TASKRUN|TASKRUN_FLAG,
//             else plain), SUBMIT_ALL, a large CQ; created R_DISABLED and
//             enabled by the owning thread (SINGLE_ISSUER binds the ring to
//             the thread that enables it).
//   eventfd   registered with IORING_REGISTER_EVENTFD: the loop's readiness
//             for uv_poll / epoll (the ring fd never signals with DEFER_TASKRUN).
//   buffers   a provided buffer ring (IORING_REGISTER_PBUF_RING) of
//             buf_count x buf_size; without it, IORING_OP_PROVIDE_BUFFERS.
//             A recv hands its buffer to the sink, which gives it back with
//             release_buffer() when JS has seen the data.
//   accept    multishot (else single-shot, re-armed).
//   recv      multishot with buffer selection (else single-shot with buffer
//             selection, re-armed); re-armed when F_MORE clears; ENOBUFS
//             parks the connection until buffers come back.
//   send      IORING_OP_SEND for one chunk, SENDMSG for an iovec list; one
//             outstanding per connection (the caller guarantees it).
//   close     ASYNC_CANCEL of everything on the fd (CANCEL_FD|CANCEL_ALL, else
//             by user_data), then close(2) once every in-flight op has
//             completed; only then is the slot reported closed.
//
// user_data = op (8 bits) | generation (24 bits) | slot (32 bits).
// No IOSQE_ASYNC anywhere: sockets are driven by the kernel's fast poll.
// Not thread-safe: every call on the owning thread.
#ifndef FASTPORT_LINUX_URING_LOOP_H_
#define FASTPORT_LINUX_URING_LOOP_H_

#include <sys/socket.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "linux/uring_ring.h"

namespace fastport {
namespace uring {

// Features that can be turned off (tests of the fallbacks; old kernels turn
// them off by themselves).
enum UringDisable : uint32_t {
  kDisableDeferTaskrun = 1u << 0,
  kDisableCoopTaskrun = 1u << 1,
  kDisableSingleIssuer = 1u << 2,
  kDisableBufRing = 1u << 3,
  kDisableMultishotRecv = 1u << 4,
  kDisableMultishotAccept = 1u << 5,
  kDisableCancelFd = 1u << 6,
};

struct UringOptions {
  unsigned sq_entries = 2048;
  unsigned cq_entries = 16384;
  unsigned buf_count = 2048;  // power of two, <= 32768
  unsigned buf_size = 16384;
  uint32_t disable = 0;       // UringDisable bits
  bool eventfd = true;        // register an eventfd for readiness
};

// What the loop runs with (after probing and fallbacks).
struct UringFeatures {
  bool single_issuer = false;
  bool defer_taskrun = false;
  bool coop_taskrun = false;
  bool taskrun_flag = false;      // IORING_SQ_TASKRUN tells when deferred work waits
  bool submit_all = false;
  bool buf_ring = false;          // else legacy provided buffers
  bool multishot_accept = false;
  bool multishot_recv = false;
  bool cancel_fd = false;         // IORING_ASYNC_CANCEL_FD|ALL (5.19)
  bool eventfd = false;
  bool ext_arg = false;
  unsigned buf_count = 0;
  unsigned buf_size = 0;
  unsigned sq_entries = 0;
  unsigned cq_entries = 0;
};

// Receives the loop's completions. Called only from inside process()/wait()
// (never from inside a call the sink makes on the loop), on the owning thread.
class UringSink {
 public:
  virtual ~UringSink() = default;
  // A listener accepted `fd` (now owned by the sink), or failed with -errno
  // (`res` < 0; the loop re-arms unless the listener is being removed).
  virtual void on_accept(uint32_t listener, int res) = 0;
  // The listener's accept is gone and its fd closed (after remove_listener).
  virtual void on_listener_closed(uint32_t listener) = 0;
  // connect() finished: 0 or -errno.
  virtual void on_connect(uint32_t slot, int res) = 0;
  // Bytes arrived in buffer `bid`; valid until release_buffer(bid).
  virtual void on_data(uint32_t slot, const uint8_t* data, uint32_t len, uint32_t bid) = 0;
  // The peer sent FIN (recv returned 0). Receiving stops.
  virtual void on_eof(uint32_t slot) = 0;
  // Receiving failed with -errno (ECONNRESET, ...). Receiving stops.
  virtual void on_recv_error(uint32_t slot, int res) = 0;
  // The outstanding send finished: bytes sent (may be short) or -errno
  // (-ECANCELED after close()). The send memory may be reused from here.
  virtual void on_sent(uint32_t slot, int res) = 0;
  // shutdown(SHUT_WR) finished: 0 or -errno.
  virtual void on_shutdown(uint32_t slot, int res) = 0;
  // Every op of the slot has completed and its fd is closed: the slot may be reused.
  virtual void on_closed(uint32_t slot) = 0;
  // The wakeup fd given to set_wakeup_fd() became readable (it is not read).
  virtual void on_wakeup() {}
};

struct UringStats {
  uint64_t enters = 0;
  uint64_t cqes = 0;
  uint64_t sqes = 0;
  uint64_t recv_arms = 0;
  uint64_t enobufs = 0;
  uint64_t stale_cqes = 0;
  uint64_t cancels = 0;
  uint64_t buffers_out = 0;  // buffers handed to the sink and not yet released
};

class UringLoop {
 public:
  UringLoop() = default;
  UringLoop(const UringLoop&) = delete;
  UringLoop& operator=(const UringLoop&) = delete;
  ~UringLoop();

  // Sets up the ring, eventfd and buffers; 0 or -errno (`error` says which
  // step failed). Call enable() on the owning thread before anything else.
  int init(const UringOptions& opts, UringSink* sink, std::string* error);
  // Binds the ring to the calling thread (R_DISABLED -> enabled). Idempotent.
  int enable();
  // Closes every fd still open (listeners, connections), the ring and the
  // eventfd; frees the buffers. No sink calls.
  void destroy();

  // Owning thread only (the loop changes features_ when it falls back at run time).
  const UringFeatures& features() const { return features_; }
  // Any thread: a copy taken under a lock, updated at every fallback.
  UringFeatures features_snapshot() const {
    std::lock_guard<std::mutex> g(features_mu_);
    return features_pub_;
  }
  // The registered eventfd (nonblocking): readable when CQEs or deferred task
  // work wait. -1 without it.
  int event_fd() const { return event_fd_; }

  // ---- listeners (fd: a listening socket; the loop owns it from here)
  int add_listener(uint32_t listener, int fd);
  // Cancels the accept; on_listener_closed follows once it is gone.
  int remove_listener(uint32_t listener);

  // ---- connections. `slot` is the caller's index (dense, reused only
  // after on_closed), `gen` its generation (checked on every CQE).
  // Adopts an open socket (accepted or connected) and starts receiving
  // unless `recv` is false (start_recv later).
  int add_conn(uint32_t slot, uint32_t gen, int fd, bool recv = true);
  int start_recv(uint32_t slot);
  // Read backpressure: receiving off (start_recv turns it on again). The
  // recv in flight is cancelled by user_data; its -ECANCELED end is not an
  // error and is not re-armed. Completions that were already in the CQ (or
  // raced the cancel) are still delivered through on_data / on_eof.
  int stop_recv(uint32_t slot);
  // Starts a connect on `fd` (a new nonblocking-or-not socket, owned by the
  // loop from here). `addr` is copied. on_connect follows; receiving starts
  // on success only when start_recv is called (or recv_on_connect).
  int connect(uint32_t slot, uint32_t gen, int fd, const sockaddr* addr, socklen_t len,
              bool recv_on_connect = true);
  // One send of `iovcnt` chunks; the memory stays valid until on_sent. The
  // iovec array itself is copied.
  int send(uint32_t slot, const iovec* iov, int iovcnt);
  // shutdown(SHUT_WR) through the ring; on_shutdown follows.
  int shutdown(uint32_t slot);
  // Cancels what is in flight and closes the fd when all of it has
  // completed. kCloseGraceful: shutdown(SHUT_WR) then close (FIN);
  // kCloseAbort: SO_LINGER 0 first (RST); kCloseSilent: just close.
  // on_closed follows exactly once: synchronously from close() when nothing
  // was in flight, else from a later process().
  enum CloseMode { kCloseGraceful = 0, kCloseAbort = 1, kCloseSilent = 2 };
  int close(uint32_t slot, CloseMode mode);
  bool send_busy(uint32_t slot) const;
  void* user(uint32_t slot) const;
  void set_user(uint32_t slot, void* p);

  uint8_t* buffer_base() const { return buf_base_; }
  size_t buffer_bytes() const { return buf_len_; }
  // Gives buffer `bid` back to the kernel (after on_data).
  void release_buffer(uint32_t bid);

  // A fd (e.g. the core's cross-thread wakeup eventfd) watched by a
  // multishot poll: on_wakeup when readable. For I/O threads.
  int set_wakeup_fd(int fd);

  // One loop turn: one io_uring_enter submitting everything queued and
  // collecting completions (waiting up to timeout_ms for one: 0 = poll,
  // -1 = forever), then dispatching them to the sink. Returns the number of
  // CQEs handled or -errno.
  int process(int timeout_ms);
  // Submits what is queued (one enter, no dispatch). For the end of a batch.
  int flush();
  // Reads the eventfd (clears readiness). Call when uv_poll reports it.
  void drain_event_fd();
  // Connections parked on ENOBUFS (receive memory all handed out).
  size_t parked() const { return parked_.size(); }
  // Parked connections that cannot be re-armed until buffers come back.
  bool starved() const { return !parked_.empty() && stats_.buffers_out >= features_.buf_count; }

 private:
  // user_data op tags (not kernel opcodes).
  enum Op : uint8_t {
    kUAccept = 1,
    kURecv,
    kUSend,
    kUConnect,
    kUShutdown,
    kUCancel,
    kUProvide,
    kUWakeup,
    kUListenerCancel,
    kUAcceptRetry,
  };
  enum ConnState : uint8_t { kFree = 0, kOpen, kConnecting, kClosing };

  struct Conn {
    int fd = -1;
    uint32_t gen = 0;
    uint16_t inflight = 0;  // SQEs submitted whose final CQE has not come
    ConnState state = kFree;
    bool recv_armed = false;     // a recv (multishot or single) is in flight
    bool recv_wanted = false;    // receiving is on (re-arm when it ends)
    bool waiting_bufs = false;   // parked on ENOBUFS
    bool send_inflight = false;
    bool connecting = false;
    bool shutdown_inflight = false;
    bool cancel_inflight = false;
    bool recv_on_connect = false;
    // Operations that found no SQE and wait in retry_ (see Retry). A queued
    // send/shutdown/connect counts in `inflight` (the caller sees it as
    // started); close() drops it, since it never reached the kernel.
    bool recv_queued = false;
    bool send_queued = false;
    bool shutdown_queued = false;
    bool connect_queued = false;
    bool cancel_queued = false;
    bool cancel_keep_send = false;  // graceful close: the last send may finish
    socklen_t addr_len = 0;
    CloseMode close_mode = kCloseSilent;
    void* user = nullptr;
    msghdr msg{};
    std::vector<iovec> iov;
    sockaddr_storage addr{};     // connect target
  };
  struct Listener {
    int fd = -1;
    bool armed = false;
    bool removing = false;
    bool active = false;
    bool retry_pending = false;  // accept paused after EMFILE/ENFILE (timer armed)
    bool arm_queued = false;     // accept waits in retry_ for an SQE
    bool timer_queued = false;   // the pause timer waits in retry_ for an SQE
    bool cancel_queued = false;  // remove_listener's cancel waits in retry_
    KernelTimespec retry_ts{};
  };

  static uint64_t ud(Op op, uint32_t gen, uint32_t slot) {
    return (static_cast<uint64_t>(op) << 56) | (static_cast<uint64_t>(gen & 0xffffffu) << 32) | slot;
  }

  // An operation that found the SQ full even after a submit: retried after
  // the next io_uring_enter (drain_retries). idx is a slot or listener;
  // gen guards against a slot reused in between.
  enum RetryOp : uint8_t { kRetryRecv, kRetrySend, kRetryShutdown, kRetryConnect, kRetryCancel,
                           kRetryAccept, kRetryAcceptTimer, kRetryListenerCancel, kRetryWakeup, kRetryRecvCancel };
  struct Retry {
    RetryOp op;
    uint32_t idx;
    uint32_t gen;
  };

  struct Deferred {
    Op op;
    uint32_t slot;
    int res;
  };

  io_uring_sqe* get_sqe();
  bool submit_recv_cancel(uint32_t slot, Conn& c);  // false: no SQE
  // Deferred task work waits in the kernel (IORING_SQ_TASKRUN, TASKRUN_FLAG rings).
  bool taskrun_pending() const { return features_.taskrun_flag && (ring_.sq_flags() & IORING_SQ_TASKRUN) != 0; }
  Conn* conn(uint32_t slot);
  Conn* conn_alloc(uint32_t slot);
  void before_enter();
  static void linger0(int fd);
  void arm_accept(uint32_t listener);
  bool arm_accept_timer(uint32_t listener);
  bool submit_listener_cancel(uint32_t listener);
  bool prep_send(uint32_t slot, Conn& c);
  bool prep_shutdown(uint32_t slot, Conn& c);
  bool prep_connect(uint32_t slot, Conn& c);
  bool submit_graceful_cancel(uint32_t slot, Conn& c);
  void drain_retries();
  void publish_buffers();
  void publish_features();
  void arm_recv(uint32_t slot, Conn& c);
  bool submit_cancel(uint32_t slot, Conn& c);
  void op_done(uint32_t slot, Conn& c);
  void finish_close(uint32_t slot, Conn& c);
  void dispatch(const io_uring_cqe& cqe);
  void handle_recv(uint32_t slot, Conn& c, const io_uring_cqe& cqe);
  void rearm_parked();
  void recycle(uint32_t bid);
  void flush_provide();
  void report_closed();
  int setup_ring(const UringOptions& opts, std::string* error);
  int setup_buffers(const UringOptions& opts, std::string* error);

  Ring ring_;
  UringSink* sink_ = nullptr;
  UringFeatures features_;
  UringStats stats_;
  int event_fd_ = -1;
  int wakeup_fd_ = -1;
  bool enabled_ = false;
  bool in_dispatch_ = false;
  bool in_rearm_ = false;
  mutable std::mutex features_mu_;
  UringFeatures features_pub_;

  // Buffers: one region of buf_count x buf_size; the ring entries separately.
  uint8_t* buf_base_ = nullptr;
  size_t buf_len_ = 0;
  void* bufring_ = nullptr;  // io_uring_buf_ring (buf ring mode)
  size_t bufring_len_ = 0;
  unsigned buf_mask_ = 0;
  uint16_t buf_tail_ = 0;        // local tail, published before each enter
  uint16_t buf_published_ = 0;
  static constexpr uint16_t kBgid = 7;
  std::vector<uint16_t> provide_pending_;  // legacy mode: bids to re-provide

  bool has_shutdown_op_ = true;
  bool has_provide_op_ = true;
  bool multishot_recv_confirmed_ = false;
  bool multishot_accept_confirmed_ = false;

  std::vector<std::unique_ptr<Conn[]>> conn_blocks_;  // fixed blocks: a Conn never moves
  std::vector<Listener> listeners_;
  std::vector<uint32_t> closed_listeners_;
  std::vector<Deferred> deferred_;
  std::vector<uint32_t> parked_;        // slots waiting for buffers
  std::vector<uint32_t> rearm_list_;    // parked_ swapped out while re-arming
  std::vector<Retry> retry_;            // operations waiting for an SQE
  std::vector<Retry> retry_list_;       // retry_ swapped out while draining
  std::vector<uint32_t> closed_ready_;  // slots to report as closed
};

}  // namespace uring
}  // namespace fastport

#endif  // FASTPORT_LINUX_URING_LOOP_H_
