// The IOCP backend (see common/backend.h for the contract it implements).
//
// One completion port per loop. The pieces, each proven alone under Wine by
// test/win32/iocp_echo.cc first:
//  - receiving: a zero-byte WSARecv is the readiness signal; when it
//    completes the connection joins the ready list and poll() drains it with
//    non-blocking recv() into the one loop-wide receive region (so an idle
//    connection locks no pages and holds no buffer, and the region is what
//    JS sees, as on Linux). One recv per ready connection per pass, at most
//    a quarter of the region each (fairness); a full read keeps it on the
//    ready list, a short read re-arms the zero-byte recv (if more bytes came
//    meanwhile it completes at once);
//  - sending: at most one overlapped WSASend per connection, over the core's
//    chunk queue through core_send_iov (IoSlice is WSABUF-compatible, see
//    win/platform.h). Delayed consume: on_sent() when the kernel reports the
//    bytes taken. try_send_direct() is a non-overlapped WSASend on the
//    non-blocking socket (takes what fits, never blocks);
//  - FILE_SKIP_COMPLETION_PORT_ON_SUCCESS on every socket: a synchronous
//    success queues no packet. Sends and zero-byte recvs handle it inline;
//    a synchronous AcceptEx/ConnectEx is posted to the port by hand, so its
//    callback still comes from poll() (start_connect never calls back);
//  - AcceptEx from a pool of kAcceptPool pre-created sockets per listener,
//    each slot re-posted as soon as it completes; no receive data with the
//    accept, so a peer that connects and sends nothing holds no slot;
//  - per-I/O context (Op, the OVERLAPPED is its first member) apart from the
//    per-connection context (IocpConn). A context is freed only when no op
//    of it is in the kernel: closesocket() makes every pending op complete,
//    and such completions on a closing connection are swallowed whatever
//    their status (Windows says STATUS_CANCELLED / ERROR_OPERATION_ABORTED,
//    Wine says STATUS_HANDLES_CLOSED for a recv: never match one code);
//  - errors: the Winsock code of a failed op (WSAGetOverlappedResult) is
//    mapped to the stable POSIX names (WSAECONNRESET -> ECONNRESET, ...).
#include <winsock2.h>
#include <ws2tcpip.h>
#include <mswsock.h>
#include <windows.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#include "common/backend.h"
#include "win/iocp.h"
#include "win/port_backend.h"
#include "win/winsock_ext.h"
#include "win/wsa_errno.h"

namespace fastport {
namespace {

constexpr int kAcceptPool = 16;
constexpr int kMaxIov = 64;
constexpr size_t kMaxSendBytes = 4u << 20;
constexpr size_t kMinRecvRoom = 16 * 1024;  // below this the batch goes to JS first
constexpr ULONG kMaxEntries = 256;
constexpr ULONG_PTR kKeyIo = 0;
constexpr ULONG_PTR kKeyWake = 1;
constexpr DWORD kStarvedRetryMs = 100;  // accept sockets could not be created: retry this often
constexpr DWORD kDrainOnDestroyMs = 2000;

constexpr uint32_t kFlagConnecting = 1u << 0;
constexpr uint32_t kFlagNoRead = 1u << 1;   // peer FIN seen
constexpr uint32_t kFlagDead = 1u << 2;     // error reported: only on_closed() may follow
constexpr uint32_t kFlagClosing = 1u << 3;  // close() called: the socket is closed
constexpr uint32_t kFlagSending = 1u << 4;  // a WSASend is in the kernel
constexpr uint32_t kFlagSkip = 1u << 5;     // FILE_SKIP_COMPLETION_PORT_ON_SUCCESS is set
constexpr uint32_t kFlagPaused = 1u << 6;   // set_receiving(false)
constexpr uint32_t kFlagReadable = 1u << 7; // the zero-byte recv completed, bytes not drained yet

enum class OpKind : uint8_t { kRecv0, kSend, kConnect, kAccept };

struct Op {
  OVERLAPPED ov;  // first: the port hands back &ov, which is the Op
  OpKind kind;
  bool pending;
  void* owner;  // IocpConn* or IocpListener*
};

struct IocpConn;
struct IocpListener;

struct AcceptSlot {
  Op op;
  SOCKET s;
  // AcceptEx wants room for both addresses, each sizeof + 16.
  char addrs[2 * kAcceptAddrBytes];
};

struct IocpConn {
  Conn* c = nullptr;
  SOCKET s = INVALID_SOCKET;  // == c->fd; kept here so teardown never reads a Conn
  uint32_t flags = 0;
  int pending = 0;  // ops in the kernel
  Op recv0{};
  Op send{};
  Op connect{};
  IoSlice iov[kMaxIov];  // the in-flight WSASend's buffers: live until it completes
  IocpConn* ready_prev = nullptr;
  IocpConn* ready_next = nullptr;
  bool in_ready = false;
  bool closed_reported = false;
  IocpConn* all_prev = nullptr;  // every live context (teardown)
  IocpConn* all_next = nullptr;
};

struct IocpListener {
  Listener* l = nullptr;
  int family = AF_INET;
  int pending = 0;
  bool closing = false;
  bool starved = false;  // some slots are not posted (socket creation failed)
  bool skip = false;     // the listening socket has skip-on-success
  LPFN_ACCEPTEX accept_ex = nullptr;
  LPFN_GETACCEPTEXSOCKADDRS get_addrs = nullptr;
  AcceptSlot slots[kAcceptPool];
  IocpListener* next = nullptr;  // all listeners (starved retry, destruction)
  IocpListener* prev = nullptr;
};

using RtlNtStatusToDosErrorFn = ULONG(WINAPI*)(LONG);

class IocpBackend final : public PortBackend {
 public:
  ~IocpBackend() override { destroy_all(); }

  const char* name() const override { return "iocp"; }

  void features(void (*add)(void*, const char*, const char*), void* ctx) const override {
    add(ctx, "zeroByteRecv", "true");
    add(ctx, "skipCompletionPortOnSuccess", skip_ok_ ? "true" : "false");
    add(ctx, "acceptPool", "16");
    add(ctx, "loopReceiveBuffer", arena_size_str_);
    add(ctx, "directSend", "true");
  }

  int init(const BackendConfig& config, CoreSink* sink) override {
    sink_ = sink;
    stats_ = config.stats;
    arena_size_ = config.recv_bytes < 64 * 1024 ? 64 * 1024 : config.recv_bytes;
    std::snprintf(arena_size_str_, sizeof arena_size_str_, "%zu", arena_size_);
    arena_ = static_cast<uint8_t*>(std::malloc(arena_size_));
    if (arena_ == nullptr) return -ENOMEM;
    WSADATA wsa;
    int r = WSAStartup(MAKEWORD(2, 2), &wsa);
    if (r != 0) return -wsa_errno(r);
    wsa_started_ = true;
    port_ = CreateIoCompletionPort(INVALID_HANDLE_VALUE, nullptr, 0, 1);
    if (port_ == nullptr) return -ENOMEM;
    return 0;
  }

  // Not a socket: the completion port. libuv cannot poll it; inline mode
  // uses iocp_wait_readiness() from a helper thread instead (win/iocp.h).
  SocketHandle wait_fd() const override { return reinterpret_cast<SocketHandle>(port_); }

  int poll(int timeout_ms) override {
    in_poll_ = true;
    const int r = poll_port(timeout_ms);
    in_poll_ = false;
    return r;
  }

  int poll_port(int timeout_ms) {
    DWORD timeout = timeout_ms < 0 ? INFINITE : static_cast<DWORD>(timeout_ms);
    if (ready_head_ != nullptr) timeout = 0;
    if (any_starved_ && timeout > kStarvedRetryMs) timeout = kStarvedRetryMs;
    OVERLAPPED_ENTRY entries[kMaxEntries];
    ULONG n = 0;
    if (!GetQueuedCompletionStatusEx(port_, entries, kMaxEntries, &n, timeout, FALSE)) {
      DWORD e = GetLastError();
      if (e != WAIT_TIMEOUT) return -wsa_errno(static_cast<int>(e));
      n = 0;
    }
    for (ULONG i = 0; i < n; ++i) {
      if (entries[i].lpCompletionKey == kKeyWake && entries[i].lpOverlapped == nullptr) {
        wake_posted_.store(false, std::memory_order_release);
        sink_->on_wake();
        continue;
      }
      complete(reinterpret_cast<Op*>(entries[i].lpOverlapped), entries[i].dwNumberOfBytesTransferred);
    }
    if (any_starved_) retry_starved();
    bool more = drain_ready();
    if (n == kMaxEntries) more = true;
    return more ? kPollMore : kPollDone;
  }

  void submit() override {}

  void wake() override {
    // One wake packet at most in the port: a flood of wake() costs nothing.
    if (wake_posted_.exchange(true, std::memory_order_acq_rel)) return;
    if (!PostQueuedCompletionStatus(port_, 0, kKeyWake, nullptr)) wake_posted_.store(false, std::memory_order_release);
  }

  RecvRegion recv_region() const override { return RecvRegion{arena_, arena_size_}; }
  void recv_consumed() override { cursor_ = 0; }

  int add_listener(Listener* l) override {
    IocpListener* il = new (std::nothrow) IocpListener();
    if (il == nullptr) return -ENOMEM;
    il->l = l;
    SOCKET ls = static_cast<SOCKET>(l->fd);
    const int loaded = load_accept_ex(ls, &il->family, &il->accept_ex, &il->get_addrs);
    if (loaded < 0) {
      delete il;
      return loaded;
    }
    uint32_t flags = 0;
    int r = attach(ls, &flags);
    if (r < 0) {
      delete il;
      return r;
    }
    il->skip = (flags & kFlagSkip) != 0;
    for (AcceptSlot& s : il->slots) {
      s.op.kind = OpKind::kAccept;
      s.op.owner = il;
      s.s = INVALID_SOCKET;
    }
    l->bptr = il;
    link_listener(il);
    int first_err = 0;
    for (AcceptSlot& s : il->slots) {
      int e = post_accept(il, &s);
      if (e != 0 && first_err == 0) first_err = e;
    }
    if (il->pending == 0) {
      // Nothing reached the kernel: fail now, the core closes the fd.
      unlink_listener(il);
      l->bptr = nullptr;
      delete il;
      return -(first_err != 0 ? first_err : EIO);
    }
    if (first_err != 0) sink_->on_listener_error(l, first_err);
    return 0;
  }

  void remove_listener(Listener* l) override {
    IocpListener* il = static_cast<IocpListener*>(l->bptr);
    il->closing = true;
    // Closing the listening socket completes every pending AcceptEx (aborted).
    closesocket(static_cast<SOCKET>(l->fd));
    l->fd = kInvalidSocket;
    maybe_listener_closed(il);
  }

  int start_connect(Conn* c, const sockaddr* addr, socklen_t addr_len) override {
    SOCKET s = static_cast<SOCKET>(c->fd);
    const int prepared = prepare_connect_ex(s, addr->sa_family, &connect_ex_);
    if (prepared < 0) return prepared;
    IocpConn* ic = new_conn(c);
    if (ic == nullptr) return -ENOMEM;
    int r = attach(s, &ic->flags);
    if (r < 0) {
      drop_conn(ic);
      return r;
    }
    ic->flags |= kFlagConnecting;
    start_op(ic, &ic->connect);
    DWORD bytes = 0;
    BOOL ok = connect_ex_(s, addr, addr_len, nullptr, 0, &bytes, &ic->connect.ov);
    if (ok) {
      // Synchronous success: no packet with skip mode; post one so that
      // on_connected still comes from poll().
      if ((ic->flags & kFlagSkip) && !PostQueuedCompletionStatus(port_, 0, kKeyIo, &ic->connect.ov)) {
        int e = static_cast<int>(GetLastError());
        end_op(ic, &ic->connect);
        drop_conn(ic);
        return -wsa_errno(e);
      }
      return 0;
    }
    int e = WSAGetLastError();
    if (e == WSA_IO_PENDING) return 0;
    end_op(ic, &ic->connect);
    drop_conn(ic);
    return -wsa_errno(e);
  }

  long try_send_direct(Conn* c, const IoSlice* iov, int iov_count) override {
    IocpConn* ic = static_cast<IocpConn*>(c->bptr);
    if (ic == nullptr || (ic->flags & (kFlagConnecting | kFlagDead | kFlagClosing | kFlagSending))) return 0;
    stats_->send_submissions++;
    DWORD sent = 0;
    // Non-overlapped on a non-blocking socket: takes what fits now, never pends.
    int r = WSASend(static_cast<SOCKET>(c->fd), reinterpret_cast<WSABUF*>(const_cast<IoSlice*>(iov)),
                    static_cast<DWORD>(iov_count), &sent, 0, nullptr, nullptr);
    if (r == 0) return static_cast<long>(sent);
    int e = WSAGetLastError();
    if (e == WSAEWOULDBLOCK) return 0;
    return -wsa_errno(e);
  }

  void send_ready(Conn* c) override {
    IocpConn* ic = static_cast<IocpConn*>(c->bptr);
    if (ic == nullptr || (ic->flags & (kFlagConnecting | kFlagDead | kFlagClosing | kFlagSending))) return;
    start_send(ic);
  }

  int shutdown_write(Conn* c) override {
    if (shutdown(static_cast<SOCKET>(c->fd), SD_SEND) != 0) return -wsa_errno(WSAGetLastError());
    return 0;
  }

  void close(Conn* c, CloseMode mode) override {
    IocpConn* ic = static_cast<IocpConn*>(c->bptr);
    SOCKET s = static_cast<SOCKET>(c->fd);
    if (mode == CloseMode::kGraceful) {
      shutdown(s, SD_SEND);  // FIN; WSAENOTCONN after a reset is fine: closing anyway
    } else if (mode == CloseMode::kAbort) {
      linger lg;
      lg.l_onoff = 1;
      lg.l_linger = 0;
      setsockopt(s, SOL_SOCKET, SO_LINGER, reinterpret_cast<const char*>(&lg), sizeof lg);
    }
    // Every op still in the kernel completes after this (swallowed in
    // complete()). Cancelled first: Wine keeps an overlapped WSASend to a
    // peer that does not read pending across closesocket() (the context
    // could never be freed), and holds the socket open until it ends.
    if (ic != nullptr && ic->pending > 0) CancelIoEx(reinterpret_cast<HANDLE>(s), nullptr);
    closesocket(s);
    c->fd = kInvalidSocket;
    if (ic == nullptr) {  // never attached (accepted but attach failed)
      sink_->on_closed(c);
      return;
    }
    ic->s = INVALID_SOCKET;
    ic->flags |= kFlagClosing;
    ready_remove(ic);
    maybe_closed(ic);
  }

  // Contract 10 (read backpressure). Paused: no zero-byte recv is re-armed
  // and the ready list skips the connection, so bytes stay in the kernel and
  // TCP pushes back; a zero-byte recv already in the kernel may complete,
  // which only marks the connection readable (no bytes are taken). A failed
  // one (RST) is still reported.
  void set_receiving(Conn* c, bool on) override {
    IocpConn* ic = static_cast<IocpConn*>(c->bptr);
    if (ic == nullptr || (ic->flags & (kFlagClosing | kFlagDead))) return;
    if (!on) {
      ic->flags |= kFlagPaused;
      ready_remove(ic);
      return;
    }
    if (!(ic->flags & kFlagPaused)) return;
    ic->flags &= ~kFlagPaused;
    if (ic->flags & kFlagReadable) ready_push(ic);
    else arm_recv(ic);
  }

  // ---- win/iocp.h
  int wait_readiness(uint32_t timeout_ms) override {
    OVERLAPPED_ENTRY e;
    ULONG n = 0;
    if (!GetQueuedCompletionStatusEx(port_, &e, 1, &n, timeout_ms, FALSE)) {
      DWORD err = GetLastError();
      return err == WAIT_TIMEOUT ? 0 : -wsa_errno(static_cast<int>(err));
    }
    // Put it back for poll(); the OVERLAPPED keeps its status (Internal).
    if (!PostQueuedCompletionStatus(port_, e.dwNumberOfBytesTransferred, e.lpCompletionKey, e.lpOverlapped))
      return -wsa_errno(static_cast<int>(GetLastError()));
    return 1;
  }

  IocpLive live() const { return IocpLive{live_conns_, live_listeners_, live_ops_}; }

 private:
  // Associates a socket with the port and asks for skip-on-success.
  int attach(SOCKET s, uint32_t* flags) {
    if (CreateIoCompletionPort(reinterpret_cast<HANDLE>(s), port_, kKeyIo, 0) == nullptr)
      return -wsa_errno(static_cast<int>(GetLastError()));
    if (SetFileCompletionNotificationModes(reinterpret_cast<HANDLE>(s),
                                           FILE_SKIP_COMPLETION_PORT_ON_SUCCESS | FILE_SKIP_SET_EVENT_ON_HANDLE)) {
      *flags |= kFlagSkip;
      skip_ok_ = true;
    }
    return 0;
  }

  IocpConn* new_conn(Conn* c) {
    IocpConn* ic = new (std::nothrow) IocpConn();
    if (ic == nullptr) return nullptr;
    ic->c = c;
    ic->s = static_cast<SOCKET>(c->fd);
    ic->all_next = all_;
    if (all_) all_->all_prev = ic;
    all_ = ic;
    ic->recv0.kind = OpKind::kRecv0;
    ic->send.kind = OpKind::kSend;
    ic->connect.kind = OpKind::kConnect;
    ic->recv0.owner = ic->send.owner = ic->connect.owner = ic;
    c->bptr = ic;
    live_conns_++;
    return ic;
  }

  // Frees a context the core never heard about (no op pending).
  void drop_conn(IocpConn* ic) {
    ic->c->bptr = nullptr;
    free_conn(ic);
  }

  void free_conn(IocpConn* ic) {
    if (ic->all_prev) ic->all_prev->all_next = ic->all_next;
    else all_ = ic->all_next;
    if (ic->all_next) ic->all_next->all_prev = ic->all_prev;
    delete ic;
    live_conns_--;
  }

  void start_op(IocpConn* ic, Op* op) {
    std::memset(&op->ov, 0, sizeof op->ov);
    op->pending = true;
    ic->pending++;
    live_ops_++;
  }
  void end_op(IocpConn* ic, Op* op) {
    op->pending = false;
    ic->pending--;
    live_ops_--;
  }

  void fail(IocpConn* ic, int err) {
    if (ic->flags & (kFlagDead | kFlagClosing)) return;
    ic->flags |= kFlagDead;
    ready_remove(ic);
    sink_->on_error(ic->c, err);
  }

  // Closed and nothing left in the kernel: on_closed once, then free.
  void maybe_closed(IocpConn* ic) {
    if (!(ic->flags & kFlagClosing) || ic->pending > 0 || ic->closed_reported) return;
    ic->closed_reported = true;
    Conn* c = ic->c;
    c->bptr = nullptr;
    free_conn(ic);
    sink_->on_closed(c);
  }

  // The Winsock error of a failed op on an open socket.
  static int op_error(SOCKET s, Op* op) {
    DWORD bytes = 0, flags = 0;
    if (WSAGetOverlappedResult(s, &op->ov, &bytes, FALSE, &flags)) return 0;
    return wsa_errno(WSAGetLastError());
  }
  static bool op_failed(const Op* op) { return static_cast<LONG>(op->ov.Internal) < 0; }

  void complete(Op* op, DWORD bytes) {
    if (op->kind == OpKind::kAccept) {
      on_accept_done(static_cast<IocpListener*>(op->owner), reinterpret_cast<AcceptSlot*>(op));
      return;
    }
    IocpConn* ic = static_cast<IocpConn*>(op->owner);
    end_op(ic, op);
    if (op->kind == OpKind::kSend) ic->flags &= ~kFlagSending;
    if (ic->flags & kFlagClosing) {  // cancelled by our close: not an error
      maybe_closed(ic);
      return;
    }
    if (ic->flags & kFlagDead) return;  // error already reported; close() follows
    SOCKET s = ic->s;
    if (op_failed(op)) {
      fail(ic, op_error(s, op));
      return;
    }
    switch (op->kind) {
      case OpKind::kRecv0:
        ic->flags |= kFlagReadable;
        if (!(ic->flags & kFlagPaused)) ready_push(ic);
        return;
      case OpKind::kSend:
        sink_->on_sent(ic->c, bytes);
        if (ic->c->queued > 0) start_send(ic);
        return;
      case OpKind::kConnect:
        ic->flags &= ~kFlagConnecting;
        if (setsockopt(s, SOL_SOCKET, SO_UPDATE_CONNECT_CONTEXT, nullptr, 0) != 0) {
          fail(ic, wsa_errno(WSAGetLastError()));
          return;
        }
        arm_recv(ic);
        if (ic->flags & kFlagDead) return;
        sink_->on_connected(ic->c);
        return;
      case OpKind::kAccept:
        return;  // handled above
    }
  }

  void arm_recv(IocpConn* ic) {
    if (ic->flags & (kFlagNoRead | kFlagDead | kFlagClosing | kFlagPaused | kFlagReadable)) return;
    if (ic->recv0.pending) return;
    start_op(ic, &ic->recv0);
    WSABUF b{0, nullptr};
    DWORD flags = 0, bytes = 0;
    stats_->recv_calls++;
    int r = WSARecv(ic->s, &b, 1, &bytes, &flags, &ic->recv0.ov, nullptr);
    if (r == 0) {
      if (!(ic->flags & kFlagSkip)) return;  // a packet comes anyway
      end_op(ic, &ic->recv0);
      ic->flags |= kFlagReadable;  // bytes (or FIN) already there
      ready_push(ic);
      return;
    }
    int e = WSAGetLastError();
    if (e == WSA_IO_PENDING) return;
    end_op(ic, &ic->recv0);
    fail(ic, wsa_errno(e));
  }

  void start_send(IocpConn* ic) {
    for (;;) {
      size_t bytes = 0;
      int cnt = core_send_iov(ic->c, ic->iov, kMaxIov, kMaxSendBytes, &bytes);
      if (cnt == 0) return;
      start_op(ic, &ic->send);
      ic->flags |= kFlagSending;
      stats_->send_submissions++;
      DWORD sent = 0;
      int r = WSASend(ic->s, reinterpret_cast<WSABUF*>(ic->iov), static_cast<DWORD>(cnt),
                      &sent, 0, &ic->send.ov, nullptr);
      if (r == 0) {
        if (!(ic->flags & kFlagSkip)) return;  // the packet reports it
        end_op(ic, &ic->send);
        ic->flags &= ~kFlagSending;
        sink_->on_sent(ic->c, sent);
        continue;  // the core consumed `sent`; gather the rest
      }
      int e = WSAGetLastError();
      if (e == WSA_IO_PENDING) return;
      end_op(ic, &ic->send);
      ic->flags &= ~kFlagSending;
      fail(ic, wsa_errno(e));
      return;
    }
  }

  // ---- ready list (connections whose bytes wait to be drained), FIFO
  void ready_push(IocpConn* ic) {
    if (ic->in_ready) return;
    // Outside poll() (a resume from a command flush, a zero-byte recv that
    // completed inline) the port knows nothing of this: a wake packet makes
    // the next wait return, so the list is drained (inline mode waits on
    // the port, not on the list).
    if (!in_poll_) wake();
    ic->in_ready = true;
    ic->ready_next = nullptr;
    ic->ready_prev = ready_tail_;
    if (ready_tail_) ready_tail_->ready_next = ic;
    else ready_head_ = ic;
    ready_tail_ = ic;
  }
  void ready_remove(IocpConn* ic) {
    if (!ic->in_ready) return;
    ic->in_ready = false;
    if (ic->ready_prev) ic->ready_prev->ready_next = ic->ready_next;
    else ready_head_ = ic->ready_next;
    if (ic->ready_next) ic->ready_next->ready_prev = ic->ready_prev;
    else ready_tail_ = ic->ready_prev;
    ic->ready_prev = ic->ready_next = nullptr;
  }

  // One pass over the ready list. Returns true if work is left (receive
  // memory short, or connections with more bytes).
  bool drain_ready() {
    size_t budget = 0;
    for (IocpConn* p = ready_head_; p != nullptr; p = p->ready_next) budget++;
    while (budget-- > 0 && ready_head_ != nullptr) {
      size_t room = arena_size_ - cursor_;
      if (room < kMinRecvRoom) return true;
      if (room > arena_size_ / 4) room = arena_size_ / 4;
      IocpConn* ic = ready_head_;
      ready_remove(ic);
      stats_->recv_calls++;
      int n = recv(ic->s, reinterpret_cast<char*>(arena_ + cursor_), static_cast<int>(room), 0);
      if (n > 0) {
        const uint8_t* p = arena_ + cursor_;
        cursor_ += (static_cast<size_t>(n) + 7) & ~static_cast<size_t>(7);
        if (cursor_ > arena_size_) cursor_ = arena_size_;
        if (static_cast<size_t>(n) == room) {
          ready_push(ic);  // probably more: stay ready, behind the others
        } else {
          ic->flags &= ~kFlagReadable;
        }
        sink_->on_data(ic->c, p, static_cast<size_t>(n));
        // arm after the callback: the sink may not re-enter us, but a
        // zero-byte recv completing inline only pushes onto the ready list.
        if (!ic->in_ready) arm_recv(ic);
        continue;
      }
      ic->flags &= ~kFlagReadable;
      if (n == 0) {
        // A reset can read as end of stream: Wine's socket server takes the
        // pending error (SO_ERROR) itself when it completes the zero-byte
        // recv, so recv() then sees a plain EOF. It keeps the error for
        // SO_ERROR, which says 0 after a real FIN (on Windows too).
        int soerr = 0;
        int soerr_len = sizeof soerr;
        if (getsockopt(ic->s, SOL_SOCKET, SO_ERROR, reinterpret_cast<char*>(&soerr), &soerr_len) == 0 && soerr != 0) {
          fail(ic, wsa_errno(soerr));
          continue;
        }
        ic->flags |= kFlagNoRead;
        sink_->on_peer_fin(ic->c);
        continue;
      }
      int e = WSAGetLastError();
      if (e == WSAEWOULDBLOCK) {
        arm_recv(ic);
        continue;
      }
      fail(ic, wsa_errno(e));
    }
    return ready_head_ != nullptr;
  }

  // ---- listeners
  void link_listener(IocpListener* il) {
    il->next = listeners_;
    if (listeners_) listeners_->prev = il;
    listeners_ = il;
    live_listeners_++;
  }
  void unlink_listener(IocpListener* il) {
    if (il->prev) il->prev->next = il->next;
    else listeners_ = il->next;
    if (il->next) il->next->prev = il->prev;
    live_listeners_--;
  }

  // Returns 0 or a positive errno (the slot stays unposted: starved).
  int post_accept(IocpListener* il, AcceptSlot* slot) {
    for (int attempt = 0; attempt < 4; ++attempt) {
      SOCKET s = WSASocketW(il->family, SOCK_STREAM, IPPROTO_TCP, nullptr, 0,
                            WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
      if (s == INVALID_SOCKET) {
        il->starved = any_starved_ = true;
        return wsa_errno(WSAGetLastError());
      }
      slot->s = s;
      std::memset(&slot->op.ov, 0, sizeof slot->op.ov);
      slot->op.pending = true;
      il->pending++;
      live_ops_++;
      DWORD bytes = 0;
      BOOL ok = il->accept_ex(static_cast<SOCKET>(il->l->fd), s, slot->addrs, 0, kAcceptAddrBytes, kAcceptAddrBytes,
                              &bytes, &slot->op.ov);
      int e = ok ? 0 : WSAGetLastError();
      if (ok) {
        // Synchronous accept: hand it to poll() like any completion
        // (without skip mode the kernel queues the packet itself).
        if (!il->skip || PostQueuedCompletionStatus(port_, 0, kKeyIo, &slot->op.ov)) return 0;
        e = static_cast<int>(GetLastError());
      } else if (e == WSA_IO_PENDING) {
        return 0;
      }
      slot->op.pending = false;
      il->pending--;
      live_ops_--;
      closesocket(s);
      slot->s = INVALID_SOCKET;
      if (e != WSAECONNRESET) {  // a peer that reset before the accept: just try again
        il->starved = any_starved_ = true;
        return wsa_errno(e);
      }
    }
    il->starved = any_starved_ = true;
    return ECONNRESET;
  }

  void on_accept_done(IocpListener* il, AcceptSlot* slot) {
    slot->op.pending = false;
    il->pending--;
    live_ops_--;
    SOCKET s = slot->s;
    slot->s = INVALID_SOCKET;
    if (il->closing) {
      closesocket(s);
      maybe_listener_closed(il);
      return;
    }
    Listener* l = il->l;
    SOCKET ls = static_cast<SOCKET>(l->fd);
    if (op_failed(&slot->op)) {
      int err = op_error(ls, &slot->op);
      closesocket(s);
      // A peer that connected and reset before the accept completed: the
      // listener is fine, nothing to report. Windows says
      // ERROR_NETNAME_DELETED (ECONNRESET); Wine says WSAENOTCONN.
      if (err != ECONNRESET && err != ECONNABORTED && err != ENOTCONN) sink_->on_listener_error(l, err);
      refill(il, slot);
      return;
    }
    sockaddr_storage peer;
    const socklen_t peer_len = accepted_peer(il->get_addrs, slot->addrs, &peer);
    uint32_t flags = 0;
    int r = adopt_accepted(s, ls);
    if (r == 0) r = attach(s, &flags);
    if (r < 0) {
      closesocket(s);
      sink_->on_listener_error(l, -r);
      refill(il, slot);
      return;
    }
    Conn* c = sink_->on_accepted(l, static_cast<SocketHandle>(s),
                                 peer_len > 0 ? reinterpret_cast<sockaddr*>(&peer) : nullptr, peer_len);
    if (c != nullptr) {
      IocpConn* ic = new_conn(c);
      if (ic == nullptr) {
        sink_->on_error(c, ENOMEM);  // the core closes it; close() sees bptr == nullptr
      } else {
        ic->flags = flags;
        arm_recv(ic);
      }
    }
    refill(il, slot);
  }

  void refill(IocpListener* il, AcceptSlot* slot) {
    int e = post_accept(il, slot);
    if (e != 0) sink_->on_listener_error(il->l, e);
  }

  void retry_starved() {
    any_starved_ = false;
    for (IocpListener* il = listeners_; il != nullptr; il = il->next) {
      if (!il->starved || il->closing) continue;
      il->starved = false;
      for (AcceptSlot& s : il->slots) {
        if (s.op.pending) continue;
        if (post_accept(il, &s) != 0) break;  // still starved: any_starved_ set again
      }
    }
  }

  void maybe_listener_closed(IocpListener* il) {
    if (!il->closing || il->pending > 0) return;
    Listener* l = il->l;
    l->bptr = nullptr;
    unlink_listener(il);
    delete il;
    sink_->on_listener_closed(l);
  }

  // Destruction: close every socket, then wait (bounded) until the kernel
  // has returned every OVERLAPPED before freeing them. If it does not in
  // time, leak rather than free memory the kernel may still write.
  void destroy_all() {
    for (IocpListener* il = listeners_; il != nullptr; il = il->next) {
      if (!il->closing && il->l->fd != kInvalidSocket) closesocket(static_cast<SOCKET>(il->l->fd));
      il->closing = true;
    }
    // Sockets are the backend's to close (contract: the destructor closes
    // everything still open, without callbacks).
    for (IocpConn* ic = all_; ic != nullptr; ic = ic->all_next) {
      if (ic->s != INVALID_SOCKET) closesocket(ic->s);
      ic->s = INVALID_SOCKET;
      ic->flags |= kFlagClosing;
    }
    ULONGLONG deadline = GetTickCount64() + kDrainOnDestroyMs;
    while (port_ != nullptr && live_ops_ > 0 && GetTickCount64() < deadline) {
      OVERLAPPED_ENTRY entries[kMaxEntries];
      ULONG n = 0;
      if (!GetQueuedCompletionStatusEx(port_, entries, kMaxEntries, &n, 50, FALSE)) continue;
      for (ULONG i = 0; i < n; ++i) {
        Op* op = reinterpret_cast<Op*>(entries[i].lpOverlapped);
        if (op == nullptr) continue;
        if (op->kind == OpKind::kAccept) {
          AcceptSlot* slot = reinterpret_cast<AcceptSlot*>(op);
          IocpListener* il = static_cast<IocpListener*>(op->owner);
          closesocket(slot->s);
          slot->s = INVALID_SOCKET;
          op->pending = false;
          il->pending--;
        } else {
          IocpConn* ic = static_cast<IocpConn*>(op->owner);
          op->pending = false;
          ic->pending--;
        }
        live_ops_--;
      }
    }
    if (live_ops_ == 0) {
      while (all_ != nullptr) free_conn(all_);
      while (listeners_ != nullptr) {
        IocpListener* il = listeners_;
        unlink_listener(il);
        delete il;
      }
    }
    if (port_ != nullptr) CloseHandle(port_);
    port_ = nullptr;
    if (wsa_started_) WSACleanup();
    std::free(arena_);
    arena_ = nullptr;
  }

  CoreSink* sink_ = nullptr;
  LoopStats* stats_ = nullptr;
  HANDLE port_ = nullptr;
  bool wsa_started_ = false;
  bool skip_ok_ = false;
  bool any_starved_ = false;
  bool in_poll_ = false;
  std::atomic<bool> wake_posted_{false};
  LPFN_CONNECTEX connect_ex_ = nullptr;
  uint8_t* arena_ = nullptr;
  size_t arena_size_ = 0;
  size_t cursor_ = 0;
  char arena_size_str_[24] = {0};
  IocpConn* ready_head_ = nullptr;
  IocpConn* ready_tail_ = nullptr;
  IocpListener* listeners_ = nullptr;
  IocpConn* all_ = nullptr;
  size_t live_conns_ = 0;
  size_t live_listeners_ = 0;
  size_t live_ops_ = 0;
};

}  // namespace

Backend* new_iocp_backend() { return new (std::nothrow) IocpBackend(); }

int iocp_wait_readiness(Backend* backend, uint32_t timeout_ms) {
  return static_cast<IocpBackend*>(backend)->wait_readiness(timeout_ms);
}

IocpLive iocp_live(const Backend* backend) { return static_cast<const IocpBackend*>(backend)->live(); }

}  // namespace fastport
