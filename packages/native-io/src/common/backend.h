// The interface between the portable engine core (common/engine_core.*) and a
// platform event backend (linux/epoll.cc, linux/uring/backend.cc, later
// win/iocp.cc). ONE backend instance per I/O loop; an engine has one loop
// (ioThreads = 0, driven from the JS thread's libuv loop) or N loops (one per
// native I/O thread). Every method of Backend and every CoreSink callback runs
// on that loop's thread, except Backend::wake(), which any thread may call.
//
// CHANGELOG (this file is read by the engineers of every backend: change it
// compatibly only, and note each change here)
//   v1  first version.
//   v1.1 (comments only) send_ready() is never called before on_connected();
//        try_send_direct() likewise only for connected connections.
//        send_ready() may come while a send is in flight (ignore it then).
//        Conn::listener is not set (always nullptr): a listener may be gone
//        while its accepted connections live on.
//   v1.2 set_receiving(c, on) added (read backpressure, contract 10); every
//        backend must implement it.
//   v1.3 Send slabs can be released before the backend dies:
//        on_send_slab_released(index, base, bytes) comes first (only when no
//        chunk of the slab is queued, so nothing the kernel may still read);
//        the index may be reused by a later on_send_slab(). With I/O
//        threads the core may call poll() with a positive timeout (ms) for
//        its housekeeping; a backend that cannot bound its wait may block
//        longer (housekeeping is then late, nothing else).
//   v1.4 Conn loses the fields nothing used (listener, core_state,
//        core_flags, core_pad, core_next, core_ptr, bops, bdata). A
//        backend keeps per-connection state behind Conn::bptr (uring: its
//        ring state) and may key kernel tags by Conn::slot + Conn::gen.
//
// ---------------------------------------------------------------- the model
//
// The CORE owns: connection ids (slot + generation, same encoding as
// lib/connection-table.ts), the per-connection send queue (64 KiB chunks from
// a pool, delayed consume), pending-bytes accounting, the close state machine,
// socket creation for listen/connect and socket options, and the event records
// handed to JS in one call per batch.
//
// The BACKEND owns: the kernel mechanism (epoll set, io_uring ring), the
// receive memory (one region, wrapped once as a JS external ArrayBuffer;
// data events are views into it), and the life of every fd it was given (it
// closes them). It turns kernel readiness/completions into CoreSink calls.
//
// ------------------------------------------------------------- the contract
//
// 1. Re-entrancy. CoreSink callbacks never call back into the Backend
//    synchronously. The core records what to do (close a connection, start a
//    send) and does it after poll() returns. So inside poll() the backend may
//    cache pointers freely between its own calls to the sink.
//    Exception: Backend::close() may call CoreSink::on_closed() for that same
//    connection synchronously, before close() returns (epoll does).
//
// 2. Receive memory. recv_region() is one contiguous region, stable for the
//    backend's life. on_data(c, p, n) must have [p, p+n) inside it. Memory
//    reported through on_data stays untouched until the core calls
//    recv_consumed() (JS has returned from the batch that saw it; with I/O
//    threads that happens later, asynchronously, still on the loop thread).
//    When the backend runs short of unreported receive memory it stops
//    receiving and returns kPollMore from poll(); the core then hands the
//    batch to JS (inline mode) and calls recv_consumed() and poll() again.
//
// 3. Sends. The core calls send_ready(c) at most once per connection per
//    command flush (so all writes of a batch to one connection go out as one
//    submission: "writes coalesced per connection per loop turn"). The backend
//    keeps AT MOST ONE send in flight per connection: it gathers the queued
//    bytes with core_send_iov() (scatter-gather over the queue's chunks),
//    submits them, and when the kernel has taken n bytes calls on_sent(c, n)
//    (delayed consume: only then do the bytes leave the queue). If bytes are
//    still queued afterwards (a partial write, or sends queued while one was
//    in flight) the backend submits again by itself; it does not wait for
//    another send_ready(). The iovec array handed to the kernel must live in
//    backend memory (per connection) until the send completes; chunk memory
//    does not move or get freed until on_sent() consumed it or on_closed().
//    try_send_direct() is the small-packet fast path, see below.
//
// 4. Closing. The core calls close(c, mode) exactly once per connection.
//    kGraceful: the core calls it only once the queue is empty (flushed); the
//    backend sends FIN (shutdown SHUT_WR) and closes the fd. kAbort: SO_LINGER
//    {1, 0} then close (RST); queued bytes are dropped. kSilent: just close
//    (errors, destroy). The backend cancels whatever is in flight (cancelled
//    completions are NOT errors and are swallowed), and when no operation of
//    the connection is left in the kernel it calls on_closed(c) exactly once.
//    After on_closed() the backend never mentions c again (stale completions
//    must be recognised, e.g. by the generation kept in user_data, and
//    dropped). Chunk memory is freed by the core in on_closed().
//
// 5. Errors. A fatal socket error (recv/send/connect failure, RST, EPOLLERR)
//    is reported once with on_error(c, errno) (positive errno). After it the
//    backend makes no more callbacks for c except on_closed(); the core will
//    call close(c, kSilent). ECANCELED from the core's own close is not
//    reported. Peer FIN: on_peer_fin(c) once; the backend stops receiving on
//    c (it may keep sending).
//
// 6. Listeners. The core creates, binds and listens the socket (options
//    applied) and calls add_listener(l). The backend accepts (accept4 with
//    SOCK_NONBLOCK | SOCK_CLOEXEC, or multishot accept), and for every new fd
//    calls on_accepted(l, fd, addr, len); the core sets options and returns
//    the Conn (or nullptr: it refused and already closed the fd). With a Conn
//    the backend starts receiving on it by itself. Accept errors that leave
//    the listener usable (EMFILE, ENFILE, ENOBUFS, ECONNABORTED) are reported
//    with on_listener_error(l, errno) (rate-limit as you see fit); the
//    backend retries later. remove_listener(l): stop accepting, close the fd
//    (after cancelling), then on_listener_closed(l) (may be synchronous).
//
// 7. Connect. The core creates the socket (non-blocking, bound to the local
//    address if asked, options applied) and calls start_connect(c, addr,
//    len). The backend connects; on success it starts receiving and calls
//    on_connected(c); on failure on_error(c, errno). The connect timeout is
//    the core's business (it calls close(c, kSilent)).
//
// 8. Loop. ioThreads = 0: the core watches wait_fd() with a uv_poll_t on the
//    JS thread's libuv loop and calls poll(0) when it is readable, then
//    delivers the batch to JS. ioThreads >= 1: the loop's thread calls
//    poll(-1) (blocking) in a loop; wake() (thread-safe) makes a blocked or
//    future poll() return early, and that poll() calls on_wake() once.
//    submit() is called after the core issued a series of operations (end of
//    a command flush, end of deferred work) to push them to the kernel
//    (io_uring_enter); epoll has nothing to do there.
//
// 9. Counting. The backend increments stats->send_submissions for every
//    kernel send submission (writev/sendmsg/SQE), recv_calls for receive
//    syscalls/CQEs if it likes; the core counts everything else.
//
// 10. Receive pause. set_receiving(c, false) stops taking bytes from the
//    kernel for c, so they stay in the socket's receive buffer and TCP flow
//    control pushes back on the peer; set_receiving(c, true) starts again.
//    The core calls it on the loop thread, never from inside a sink callback,
//    only for connected connections that have not reported a peer FIN or an
//    error, and only when the state changes (no two calls with the same
//    value in a row). While paused: no on_data and no on_peer_fin, except
//    for bytes/FIN the backend had already taken from the kernel before the
//    pause (e.g. completions already in the CQ): those are still reported
//    (the core passes them on; JS holds them until the resume). Sending,
//    shutdown_write(), close() and errors go on as usual; a fatal error
//    (RST) while paused is still reported with on_error when the mechanism
//    sees it. close() on a paused connection is an ordinary close.
#ifndef FASTPORT_COMMON_BACKEND_H_
#define FASTPORT_COMMON_BACKEND_H_

#include <cstddef>
#include <cstdint>

// The OS types the contract speaks of (SocketHandle, IoSlice, sockaddr): the
// only platform split in common/, one header per platform family.
#if defined(_WIN32)
#include "win/platform.h"
#else
#include "posix/platform.h"
#endif

namespace fastport {

// Send queue chunk size: a large write is streamed through chunks of this
// size ("a 1 MiB write through 64 KiB chunks"). Chunks come from slabs of
// kChunksPerSlab chunks (a backend may register slabs with the kernel, see
// Backend::on_send_slab()); idle slabs are released after a peak.
constexpr size_t kChunkSize = 64 * 1024;
constexpr size_t kChunksPerSlab = 16;

struct SendChunk {
  SendChunk* next;
  uint32_t begin;  // first byte not yet taken by the kernel
  uint32_t end;    // one past the last queued byte
  uint32_t slab;   // index of the slab this chunk lives in (see on_send_slab)
  uint32_t reserved;
  uint8_t* data;   // kChunkSize bytes inside the slab
};

// Counters a backend may increment (the core counts the rest).
struct LoopStats {
  uint64_t send_submissions = 0;
  uint64_t recv_calls = 0;
};

struct Listener;  // defined below

// One connection. Fields are grouped by owner; the other side may read but
// never write them.
struct Conn {
  // ---- core-owned (read-only for the backend)
  uint32_t slot = 0;        // global slot (loop index encoded in the low bits)
  uint32_t gen = 0;         // generation of the current occupant (>= 1)
  uint64_t queued = 0;      // bytes in the send queue not yet taken by the kernel
  SendChunk* sq_head = nullptr;
  SendChunk* sq_tail = nullptr;

  // ---- backend-owned (the core only reads fd, to set socket options)
  SocketHandle fd = kInvalidSocket;  // set by the core before accept/connect hand-off
  uint32_t bflags = 0;      // backend's private flags
  void* bptr = nullptr;     // backend's private per-connection state
};

struct Listener {
  // ---- core-owned
  uint32_t id = 0;          // ListenerId as JS sees it
  void* core_ptr = nullptr;
  // ---- backend-owned (fd set by the core before add_listener)
  SocketHandle fd = kInvalidSocket;
  uint32_t bflags = 0;
  uint32_t bops = 0;
  void* bptr = nullptr;
};

// ---------------------------------------------------------------- core side

// Implemented by the core (one per loop). See the contract above.
class CoreSink {
 public:
  virtual ~CoreSink() = default;

  // A new connection from listener l. addr may be nullptr (the core then asks
  // getpeername). Returns the Conn (c->fd == fd) or nullptr if refused (the
  // core closed fd). With a Conn, the backend starts receiving on it.
  virtual Conn* on_accepted(Listener* l, SocketHandle fd, const sockaddr* addr, socklen_t addr_len) = 0;
  // An accept failed but the listener keeps going (positive errno).
  virtual void on_listener_error(Listener* l, int err) = 0;
  // remove_listener() finished: the fd is closed, nothing is in flight.
  virtual void on_listener_closed(Listener* l) = 0;

  // start_connect() succeeded; the backend is receiving.
  virtual void on_connected(Conn* c) = 0;
  // n > 0 bytes received, [p, p+n) inside recv_region().
  virtual void on_data(Conn* c, const uint8_t* p, size_t n) = 0;
  // The peer sent FIN (recv returned 0). Once.
  virtual void on_peer_fin(Conn* c) = 0;
  // The kernel took n bytes from the head of c's queue (delayed consume).
  virtual void on_sent(Conn* c, size_t n) = 0;
  // Fatal error on c (positive errno). Once; afterwards only on_closed().
  virtual void on_error(Conn* c, int err) = 0;
  // close(c) finished: fd closed, nothing in flight. Exactly once per close().
  virtual void on_closed(Conn* c) = 0;

  // wake() was called (from any thread); called on the loop thread from poll().
  virtual void on_wake() = 0;
};

// Scatter-gather view of c's queue from its head (bytes not yet taken by the
// kernel), at most max_iov slices and max_bytes bytes. Returns the number of
// slices; *bytes (if not null) gets their total. Provided by the core.
int core_send_iov(const Conn* c, IoSlice* iov, int max_iov, size_t max_bytes, size_t* bytes);

// ------------------------------------------------------------- backend side

struct RecvRegion {
  uint8_t* base = nullptr;
  size_t size = 0;
};

struct BackendConfig {
  // 0 = inline on the JS thread's libuv loop (poll(0) on readiness of wait_fd()).
  // 1..N = this loop runs on its own native thread (poll(-1)).
  uint32_t loop_index = 0;
  bool inline_mode = true;
  // Suggested receive memory in bytes (the backend may round it).
  size_t recv_bytes = 1024 * 1024;
  LoopStats* stats = nullptr;  // never null after init
};

enum class CloseMode : uint8_t {
  kGraceful = 0,  // queue already flushed: FIN, then close
  kAbort = 1,     // RST (SO_LINGER 0), queue dropped
  kSilent = 2,    // just close the fd (after an error, on connect timeout, ...)
};

// Return values of poll() (>= 0) besides -errno.
constexpr int kPollDone = 0;  // nothing more ready now
constexpr int kPollMore = 1;  // stopped early (receive memory short, or a per-call budget): call again after recv_consumed()

class Backend {
 public:
  virtual ~Backend() = default;  // closes everything still open, without callbacks

  // Name for EngineInfo ("epoll", "uring").
  virtual const char* name() const = 0;
  // Features for EngineInfo.features, as "key=value" pairs appended to out
  // (value "true"/"false" or a number); optional.
  virtual void features(void (*add)(void* ctx, const char* key, const char* value), void* ctx) const {
    (void)add;
    (void)ctx;
  }

  // Creates the kernel objects. Returns 0 or -errno (e.g. -EPERM when
  // io_uring_setup is refused). sink outlives the backend.
  virtual int init(const BackendConfig& config, CoreSink* sink) = 0;

  // fd that becomes readable when poll() has work (ioThreads = 0 watches it
  // with uv_poll_t, level-triggered semantics expected).
  virtual SocketHandle wait_fd() const = 0;

  // Processes ready events/completions, calling the sink. timeout_ms: 0 =
  // do not block, -1 = block until something happens or wake(), > 0 = block
  // at most that many ms (v1.3). Returns kPollDone, kPollMore or -errno (fatal for the loop).
  virtual int poll(int timeout_ms) = 0;

  // Pushes operations issued since the last call to the kernel.
  virtual void submit() = 0;

  // Thread-safe: makes the loop's poll() return soon and call on_wake().
  virtual void wake() = 0;

  // The receive memory (see contract 2). Valid after init().
  virtual RecvRegion recv_region() const = 0;
  // All memory reported with on_data() so far may be reused.
  virtual void recv_consumed() = 0;

  // A slab of send chunks was created (index, base, bytes); backends that
  // send from registered memory may register it. Optional.
  virtual void on_send_slab(uint32_t index, uint8_t* base, size_t bytes) {
    (void)index;
    (void)base;
    (void)bytes;
  }
  // The core is about to unmap slab `index` (idle after a peak; see
  // CHANGELOG v1.3): unregister it. No chunk of it is queued or in flight.
  // Slabs still mapped when the backend is destroyed get no call. Optional.
  virtual void on_send_slab_released(uint32_t index, uint8_t* base, size_t bytes) {
    (void)index;
    (void)base;
    (void)bytes;
  }

  // Listeners (contract 6).
  virtual int add_listener(Listener* l) = 0;  // 0 or -errno (the core then closes l->fd)
  virtual void remove_listener(Listener* l) = 0;

  // Outbound (contract 7). c->fd is set. Returns 0 or -errno (immediate
  // failure: the core then reports the error and closes c->fd itself; no
  // callback follows).
  virtual int start_connect(Conn* c, const sockaddr* addr, socklen_t addr_len) = 0;

  // Small-packet fast path: called by the core when c is connected, its
  // queue is EMPTY and nothing is in flight, with the bytes it is about to queue (they live in
  // the JS command buffer, valid only during this call). Returns how many
  // bytes the kernel took synchronously (0..total; the core queues the rest
  // and then calls send_ready()), or -errno for a fatal error (the core
  // reports it like on_error). A backend that cannot send synchronously
  // returns 0. Increments stats->send_submissions if it made a syscall.
  virtual long try_send_direct(Conn* c, const IoSlice* iov, int iov_count) = 0;

  // c's queue has new bytes (contract 3). Called only for connected
  // connections (never while connecting: bytes queued then are announced
  // with send_ready() after on_connected()), never after close(c).
  virtual void send_ready(Conn* c) = 0;

  // Half-close: called by the core once the queue is empty and nothing is in
  // flight. shutdown(SHUT_WR). Returns 0 or -errno (not fatal by itself).
  virtual int shutdown_write(Conn* c) = 0;

  // Contract 4.
  virtual void close(Conn* c, CloseMode mode) = 0;

  // Contract 10: on = false stops receiving on c, on = true restarts it.
  virtual void set_receiving(Conn* c, bool on) = 0;
};

// Factories (linux/*.cc). Return nullptr only when out of memory; init()
// reports kernel refusal. new_uring_backend is declared weak on Linux so the
// addon links without linux/uring/backend.cc: the core checks
// `&new_uring_backend != nullptr` and reports 'uring' unbuilt otherwise
// (binding.gyp's linux sources include it, which defines it strong).
Backend* new_epoll_backend();
#if defined(__GNUC__) && !defined(_WIN32)
Backend* new_uring_backend() __attribute__((weak));
#else
Backend* new_uring_backend();
#endif

}  // namespace fastport

#endif  // FASTPORT_COMMON_BACKEND_H_
