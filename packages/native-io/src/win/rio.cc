// The rio backend: Registered I/O behind the common contract
// (common/backend.h), FastPort's RIO engine carried over. It is handed a RIO
// function table (win/rio_table.h: the system's, or the emulation for
// tests) and uses nothing else of RIO; it cannot tell which table it has.
//
//  - One completion queue (CQ) per loop, notified through the loop's
//    completion port (RIO_IOCP_COMPLETION). poll() dequeues the CQ when the
//    notification packet arrives and calls RIONotify again once the CQ is
//    empty (a completion that lands in between fires the new notification
//    at once). The same port carries AcceptEx completions of the listeners,
//    ConnectEx completions (an event per connect, turned into a packet by a
//    thread-pool wait: a RIO socket must not be tied to the port, the RQ's
//    completions go to the CQ) and wake().
//  - One request queue (RQ) per connection: 1 outstanding receive, up to
//    kSendBatch outstanding sends. Request contexts (RIORESULT.RequestContext)
//    point at a RioReq inside the connection's context, which names the
//    connection and the request; the context lives until every request of it
//    has been dequeued, so a completion never finds freed memory.
//  - CQ capacity is accounted per connection: creating an RQ reserves
//    kCqPerConn entries (all the requests it can have outstanding) and grows
//    the CQ with RIOResizeCompletionQueue first when the reservations would
//    pass its size, so the CQ can never overflow; the reservation goes with
//    the context.
//  - Registered memory (win/rio_buffers.h): the receive region is one chunk
//    of small (1 KiB) and large (32 KiB) slots; a connection's receive takes
//    a small slot, and a large one after a receive that filled its slot (it
//    is streaming). Slots whose bytes were reported stay untouched until
//    recv_consumed(). With no slot free a connection waits in FIFO order
//    (and poll() answers kPollMore so the core hands the batch to JS and
//    frees slots). Idle peers cost one small slot each.
//  - Sends: the core's slabs of send chunks are registered as they are made
//    (on_send_slab), so queued bytes go out from where they lie, one RIOSend
//    per 64 KiB chunk, up to kSendBatch of them per submission
//    (RIO_MSG_DEFER on all but the last), a 1 MiB write streamed through
//    its chunks; on_sent() as each completes, in order (delayed consume);
//    the next batch when the last completed. try_send_direct() is the fast
//    path for small packets: the bytes are copied into a free registered
//    send slot and sent at once. A chunk that is not registered (its
//    registration failed) is copied through a send slot instead.
//  - A graceful close or a half-close waits for the sends in flight (RIO
//    would abort them at closesocket()); an abort does not.
//  - RIO_CORRUPT_CQ is fatal for the loop: a clear message on stderr and in
//    features().fatal, every connection fails with EIO, accepts stop, and
//    whatever RIO still holds is left allocated (never freed under it).
#include <winsock2.h>
#include <ws2tcpip.h>
#include <mswsock.h>
#include <windows.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <new>
#include <vector>

#include "common/backend.h"
#include "win/port_backend.h"
#include "win/rio.h"
#include "win/rio_buffers.h"
#include "win/rio_table.h"
#include "win/winsock_ext.h"
#include "win/wsa_errno.h"

namespace fastport {
namespace {

using rio::Buf;
using rio::BufferId;
using rio::FunctionTable;

constexpr int kAcceptPool = 16;
constexpr uint32_t kSendBatch = 8;              // RQ MaxOutstandingSend
constexpr ULONG kCqPerConn = 1 + kSendBatch;    // every request one connection can have outstanding
constexpr DWORD kInitialCq = 4096;
constexpr uint32_t kSmallSlot = 1024;
constexpr uint32_t kLargeSlot = 32 * 1024;
constexpr uint32_t kSendSlot = 16 * 1024;       // the fast path's limit
constexpr uint32_t kSendSlots = 64;
constexpr ULONG kDequeueBatch = 256;
constexpr int kDequeueRounds = 8;               // per poll, then kPollMore
constexpr ULONG kMaxEntries = 128;
constexpr ULONG_PTR kKeyIo = 0;                 // AcceptEx on a listener
constexpr ULONG_PTR kKeyWake = 1;
constexpr ULONG_PTR kKeyCq = 2;                 // the CQ's notification
constexpr ULONG_PTR kKeyConnect = 3;
constexpr DWORD kStarvedRetryMs = 100;
constexpr DWORD kDrainOnDestroyMs = 2000;

constexpr uint32_t kFlagConnecting = 1u << 0;
constexpr uint32_t kFlagNoRead = 1u << 1;  // peer FIN reported
constexpr uint32_t kFlagDead = 1u << 2;    // error reported: only on_closed() may follow
constexpr uint32_t kFlagClosing = 1u << 3; // close() called
constexpr uint32_t kFlagPaused = 1u << 4;  // set_receiving(false)

enum ReqKind : uint8_t { kReqRecv, kReqSend, kReqSlotSend };
enum SlotClass : uint8_t { kSmall = 0, kLarge = 1 };

struct RioConn;

struct RioReq {  // what RIORESULT.RequestContext points at
  RioConn* conn;
  ReqKind kind;
  uint8_t index;
};

struct Link {
  RioConn* prev = nullptr;
  RioConn* next = nullptr;
  bool in = false;
};
struct List {
  RioConn* head = nullptr;
  RioConn* tail = nullptr;
};

struct RioConn {
  Conn* c = nullptr;
  SOCKET s = INVALID_SOCKET;
  rio::Rq rq = rio::kInvalidRq;
  uint32_t flags = 0;
  int ops = 0;  // RIO requests not yet dequeued + the ConnectEx in the kernel
  bool cq_reserved = false;
  bool sock_closed = false;
  bool closed_reported = false;
  bool close_pending = false;  // graceful close waits for the sends in flight
  bool shut_pending = false;   // half-close likewise
  // receive
  bool recv_posted = false;
  bool want_large = false;
  SlotClass recv_cls = kSmall;
  int32_t recv_slot = -1;
  SlotClass held_cls = kSmall;  // bytes received while paused, reported on resume
  int32_t held_slot = -1;
  uint32_t held_len = 0;
  bool held_fin = false;
  // send
  uint32_t batch_n = 0;
  uint32_t batch_head = 0;  // entries before it were reported with on_sent
  uint32_t batch_left = 0;  // entries not completed yet
  uint32_t batch_done = 0;  // bit per completed entry
  uint32_t batch_len[kSendBatch] = {};
  int32_t batch_bounce[kSendBatch] = {};
  int32_t slot_send = -1;
  uint32_t slot_len = 0;
  RioReq recv_req{};
  RioReq send_req[kSendBatch]{};
  RioReq slot_req{};
  // connect
  OVERLAPPED cov{};
  HANDLE cev = nullptr;
  HANDLE cwait = nullptr;
  HANDLE port = nullptr;
  // lists
  Link wait;       // waiting for a receive slot
  Link send_wait;  // waiting for a send slot (bounce copy)
  Link ready;      // resumed with held bytes to report
  Link all;
};

struct AcceptSlot {
  OVERLAPPED ov;  // first
  SOCKET s;
  bool pending;
  char addrs[2 * kAcceptAddrBytes];
};

struct RioListener {
  Listener* l = nullptr;
  int family = AF_INET;
  int pending = 0;
  bool closing = false;
  bool starved = false;
  LPFN_ACCEPTEX accept_ex = nullptr;
  LPFN_GETACCEPTEXSOCKADDRS get_addrs = nullptr;
  AcceptSlot slots[kAcceptPool];
  RioListener* next = nullptr;
  RioListener* prev = nullptr;
};

struct SlabReg {
  uint8_t* base = nullptr;
  size_t bytes = 0;
  BufferId id = nullptr;
};

template <Link RioConn::*L>
void list_push(List& l, RioConn* c) {
  Link& k = c->*L;
  if (k.in) return;
  k.in = true;
  k.next = nullptr;
  k.prev = l.tail;
  if (l.tail) (l.tail->*L).next = c;
  else l.head = c;
  l.tail = c;
}
template <Link RioConn::*L>
void list_remove(List& l, RioConn* c) {
  Link& k = c->*L;
  if (!k.in) return;
  k.in = false;
  if (k.prev) (k.prev->*L).next = k.next;
  else l.head = k.next;
  if (k.next) (k.next->*L).prev = k.prev;
  else l.tail = k.prev;
  k.prev = k.next = nullptr;
}

VOID CALLBACK on_connect_signal(PVOID ctx, BOOLEAN timed_out) {
  (void)timed_out;
  RioConn* rc = static_cast<RioConn*>(ctx);
  PostQueuedCompletionStatus(rc->port, 0, kKeyConnect, &rc->cov);
}

class RioBackend final : public PortBackend {
 public:
  explicit RioBackend(rio::TableKind kind) : kind_(kind) {}
  ~RioBackend() override { destroy_all(); }

  const char* name() const override { return "rio"; }

  void features(void (*add)(void*, const char*, const char*), void* ctx) const override {
    char buf[64];
    add(ctx, "rioTable", rio::table_name(kind_));
    std::snprintf(buf, sizeof buf, "%zu", recv_chunk_.bytes());
    add(ctx, "registeredRecvBytes", buf);
    std::snprintf(buf, sizeof buf, "%ux%u+%ux%u", small_.count(), small_.slot_size(), large_.count(), large_.slot_size());
    add(ctx, "recvSlots", buf);
    std::snprintf(buf, sizeof buf, "%ux%u", send_slots_.count(), send_slots_.slot_size());
    add(ctx, "sendSlots", buf);
    std::snprintf(buf, sizeof buf, "%u", kSendBatch);
    add(ctx, "sendBatch", buf);
    std::snprintf(buf, sizeof buf, "%lu", static_cast<unsigned long>(cq_size_));
    add(ctx, "completionQueueEntries", buf);
    std::snprintf(buf, sizeof buf, "%lu", static_cast<unsigned long>(kCqPerConn));
    add(ctx, "completionQueuePerConnection", buf);
    add(ctx, "registeredSendChunks", "true");
    add(ctx, "directSend", "true");
    if (fatal_) add(ctx, "fatal", fatal_msg_);
  }

  int init(const BackendConfig& config, CoreSink* sink) override {
    sink_ = sink;
    stats_ = config.stats;
    if (kind_ == rio::TableKind::kEmulated) {
      t_ = rio::emulated_table();
    } else {
      int wsa = 0;
      int r = rio::load_system_table(&system_table_, &wsa);
      if (r < 0) return r;
      t_ = &system_table_;
    }
    WSADATA wsa;
    int r = WSAStartup(MAKEWORD(2, 2), &wsa);
    if (r != 0) return -wsa_errno(r);
    wsa_started_ = true;
    port_ = CreateIoCompletionPort(INVALID_HANDLE_VALUE, nullptr, 0, 1);
    if (port_ == nullptr) return -ENOMEM;
    // Receive region: half small slots, half large; with the engine's
    // default (1 MiB and up) 4096 small slots, so 4096 idle peers are
    // needed before a new connection waits for one.
    size_t recv = config.recv_bytes < 64 * 1024 ? 64 * 1024 : config.recv_bytes;
    size_t small_bytes = recv / 2;
    if (recv >= 1024 * 1024) small_bytes = 4096 * kSmallSlot;
    const uint32_t nsmall = static_cast<uint32_t>(small_bytes / kSmallSlot);
    uint32_t nlarge = static_cast<uint32_t>((recv / 2) / kLargeSlot);
    if (nlarge == 0) nlarge = 1;
    const size_t total = static_cast<size_t>(nsmall) * kSmallSlot + static_cast<size_t>(nlarge) * kLargeSlot;
    r = recv_chunk_.init(t_, total);
    if (r < 0) return r == -1 ? -ENOMEM : -wsa_errno(-r);
    if (!small_.init(&recv_chunk_, 0, kSmallSlot, nsmall) ||
        !large_.init(&recv_chunk_, static_cast<size_t>(nsmall) * kSmallSlot, kLargeSlot, nlarge))
      return -ENOMEM;
    r = send_chunk_.init(t_, static_cast<size_t>(kSendSlots) * kSendSlot);
    if (r < 0) return r == -1 ? -ENOMEM : -wsa_errno(-r);
    if (!send_slots_.init(&send_chunk_, 0, kSendSlot, kSendSlots)) return -ENOMEM;
    rio::NotificationCompletion n;
    std::memset(&n, 0, sizeof n);
    n.Type = rio::kIocpCompletion;
    n.Iocp.IocpHandle = port_;
    n.Iocp.CompletionKey = reinterpret_cast<PVOID>(kKeyCq);
    n.Iocp.Overlapped = &notify_ov_;
    cq_ = t_->RIOCreateCompletionQueue(kInitialCq, &n);
    if (cq_ == rio::kInvalidCq) return -wsa_errno(WSAGetLastError());
    cq_size_ = kInitialCq;
    const int e = t_->RIONotify(cq_);
    if (e != 0) return -wsa_errno(e);
    return 0;
  }

  SocketHandle wait_fd() const override { return reinterpret_cast<SocketHandle>(port_); }

  int poll(int timeout_ms) override {
    in_poll_ = true;
    const int r = poll_port(timeout_ms);
    in_poll_ = false;
    return r;
  }

  void submit() override {}

  void wake() override {
    if (wake_posted_.exchange(true, std::memory_order_acq_rel)) return;
    if (!PostQueuedCompletionStatus(port_, 0, kKeyWake, nullptr)) wake_posted_.store(false, std::memory_order_release);
  }

  RecvRegion recv_region() const override { return RecvRegion{recv_chunk_.base(), recv_chunk_.bytes()}; }

  void recv_consumed() override {
    for (const Reported& r : reported_) put_recv_slot(r.cls, r.slot);
    reported_.clear();
    serve_recv_waiters();
  }

  void on_send_slab(uint32_t index, uint8_t* base, size_t bytes) override {
    if (t_ == nullptr) return;
    if (slabs_.size() <= index) slabs_.resize(index + 1);
    BufferId id = t_->RIORegisterBuffer(reinterpret_cast<PCHAR>(base), static_cast<DWORD>(bytes));
    if (id == rio::invalid_buffer_id()) {
      slab_reg_failures_++;  // its chunks go through send slots instead
      slabs_[index] = SlabReg{};
      return;
    }
    slabs_[index] = SlabReg{base, bytes, id};
  }

  void on_send_slab_released(uint32_t index, uint8_t* base, size_t bytes) override {
    (void)base;
    (void)bytes;
    if (index >= slabs_.size() || slabs_[index].base == nullptr) return;
    t_->RIODeregisterBuffer(slabs_[index].id);
    slabs_[index] = SlabReg{};
  }

  int add_listener(Listener* l) override {
    RioListener* il = new (std::nothrow) RioListener();
    if (il == nullptr) return -ENOMEM;
    il->l = l;
    SOCKET ls = static_cast<SOCKET>(l->fd);
    const int loaded = load_accept_ex(ls, &il->family, &il->accept_ex, &il->get_addrs);
    if (loaded < 0) {
      delete il;
      return loaded;
    }
    // The listening socket is not a RIO socket: its AcceptEx completions
    // come through the port.
    if (CreateIoCompletionPort(reinterpret_cast<HANDLE>(ls), port_, kKeyIo, 0) == nullptr) {
      const int e = static_cast<int>(GetLastError());
      delete il;
      return -wsa_errno(e);
    }
    for (AcceptSlot& s : il->slots) {
      s.s = INVALID_SOCKET;
      s.pending = false;
    }
    l->bptr = il;
    link_listener(il);
    int first_err = 0;
    for (AcceptSlot& s : il->slots) {
      const int e = post_accept(il, &s);
      if (e != 0 && first_err == 0) first_err = e;
    }
    if (il->pending == 0) {
      unlink_listener(il);
      l->bptr = nullptr;
      delete il;
      return -(first_err != 0 ? first_err : EIO);
    }
    if (first_err != 0) sink_->on_listener_error(l, first_err);
    return 0;
  }

  void remove_listener(Listener* l) override {
    RioListener* il = static_cast<RioListener*>(l->bptr);
    il->closing = true;
    CancelIoEx(reinterpret_cast<HANDLE>(static_cast<SOCKET>(l->fd)), nullptr);
    closesocket(static_cast<SOCKET>(l->fd));
    l->fd = kInvalidSocket;
    maybe_listener_closed(il);
  }

  int start_connect(Conn* c, const sockaddr* addr, socklen_t addr_len) override {
    SOCKET s = static_cast<SOCKET>(c->fd);
    const int prepared = prepare_connect_ex(s, addr->sa_family, &connect_ex_);
    if (prepared < 0) return prepared;
    if (fatal_) return -EIO;
    RioConn* rc = new_conn(c);
    if (rc == nullptr) return -ENOMEM;
    rc->flags |= kFlagConnecting;
    rc->cev = CreateEventW(nullptr, TRUE, FALSE, nullptr);
    if (rc->cev == nullptr) {
      drop_conn(rc);
      return -ENOMEM;
    }
    std::memset(&rc->cov, 0, sizeof rc->cov);
    rc->cov.hEvent = rc->cev;
    DWORD bytes = 0;
    const BOOL ok = connect_ex_(s, addr, addr_len, nullptr, 0, &bytes, &rc->cov);
    if (!ok) {
      const int e = WSAGetLastError();
      if (e != WSA_IO_PENDING) {
        CloseHandle(rc->cev);
        rc->cev = nullptr;
        drop_conn(rc);
        return -wsa_errno(e);
      }
    }
    rc->ops++;
    live_ops_++;
    if (ok || !RegisterWaitForSingleObject(&rc->cwait, rc->cev, on_connect_signal, rc, INFINITE, WT_EXECUTEONLYONCE)) {
      rc->cwait = nullptr;
      if (!ok) {
        // No wait could be registered: wait here (bounded by the connect
        // itself) rather than leave the OVERLAPPED to the kernel unwatched.
        DWORD b = 0;
        GetOverlappedResult(reinterpret_cast<HANDLE>(s), &rc->cov, &b, TRUE);
      }
      PostQueuedCompletionStatus(port_, 0, kKeyConnect, &rc->cov);
    }
    return 0;
  }

  long try_send_direct(Conn* c, const IoSlice* iov, int iov_count) override {
    RioConn* rc = static_cast<RioConn*>(c->bptr);
    if (rc == nullptr || fatal_ || (rc->flags & (kFlagConnecting | kFlagDead | kFlagClosing)) || rc->batch_n > 0 ||
        rc->slot_send >= 0)
      return 0;
    size_t total = 0;
    for (int i = 0; i < iov_count; ++i) total += iov[i].iov_len;
    if (total == 0 || total > kSendSlot) return 0;  // large: through the queue's registered chunks
    const int32_t slot = send_slots_.take();
    if (slot < 0) return 0;
    uint8_t* p = send_slots_.ptr(slot);
    for (int i = 0; i < iov_count; ++i) {
      std::memcpy(p, iov[i].iov_base, iov[i].iov_len);
      p += iov[i].iov_len;
    }
    Buf b = send_slots_.buf(slot, static_cast<ULONG>(total));
    stats_->send_submissions++;
    if (!t_->RIOSend(rc->rq, &b, 1, 0, &rc->slot_req)) {
      const int e = WSAGetLastError();
      send_slots_.put(slot);
      return -wsa_errno(e);
    }
    rc->slot_send = slot;
    rc->slot_len = static_cast<uint32_t>(total);
    rc->ops++;
    live_requests_++;
    return static_cast<long>(total);
  }

  void send_ready(Conn* c) override {
    RioConn* rc = static_cast<RioConn*>(c->bptr);
    if (rc != nullptr) start_send(rc);
  }

  int shutdown_write(Conn* c) override {
    RioConn* rc = static_cast<RioConn*>(c->bptr);
    if (rc != nullptr && (rc->batch_n > 0 || rc->slot_send >= 0)) {
      rc->shut_pending = true;  // after the sends in flight
      return 0;
    }
    if (shutdown(static_cast<SOCKET>(c->fd), SD_SEND) != 0) return -wsa_errno(WSAGetLastError());
    return 0;
  }

  void close(Conn* c, CloseMode mode) override {
    RioConn* rc = static_cast<RioConn*>(c->bptr);
    if (rc == nullptr) {  // never got a context (accepted, then refused)
      if (c->fd != kInvalidSocket) closesocket(static_cast<SOCKET>(c->fd));
      c->fd = kInvalidSocket;
      sink_->on_closed(c);
      return;
    }
    rc->flags |= kFlagClosing;
    list_remove<&RioConn::wait>(recv_wait_, rc);
    list_remove<&RioConn::send_wait>(send_wait_, rc);
    list_remove<&RioConn::ready>(ready_, rc);
    if (rc->held_slot >= 0) {
      put_recv_slot(rc->held_cls, rc->held_slot);
      rc->held_slot = -1;
    }
    rc->held_fin = false;
    if (mode == CloseMode::kGraceful && !(rc->flags & kFlagDead) && !fatal_ && (rc->batch_n > 0 || rc->slot_send >= 0)) {
      rc->close_pending = true;  // FIN once the last send completed (closesocket would abort it)
      return;
    }
    close_socket(rc, mode);
    maybe_closed(rc);
  }

  // Contract 10. A receive already posted may still complete while paused:
  // its bytes (or FIN) stay in the slot, unreported, until the resume; no
  // other receive is posted meanwhile, so TCP pushes back on the peer.
  void set_receiving(Conn* c, bool on) override {
    RioConn* rc = static_cast<RioConn*>(c->bptr);
    if (rc == nullptr || (rc->flags & (kFlagClosing | kFlagDead))) return;
    if (!on) {
      rc->flags |= kFlagPaused;
      list_remove<&RioConn::wait>(recv_wait_, rc);
      return;
    }
    if (!(rc->flags & kFlagPaused)) return;
    rc->flags &= ~kFlagPaused;
    if (rc->held_slot >= 0 || rc->held_fin) {
      ready_push(rc);
    } else {
      post_recv(rc);
    }
  }

  // ---- win/port_backend.h
  int wait_readiness(uint32_t timeout_ms) override {
    OVERLAPPED_ENTRY e;
    ULONG n = 0;
    if (!GetQueuedCompletionStatusEx(port_, &e, 1, &n, timeout_ms, FALSE)) {
      const DWORD err = GetLastError();
      return err == WAIT_TIMEOUT ? 0 : -wsa_errno(static_cast<int>(err));
    }
    if (!PostQueuedCompletionStatus(port_, e.dwNumberOfBytesTransferred, e.lpCompletionKey, e.lpOverlapped))
      return -wsa_errno(static_cast<int>(GetLastError()));
    return 1;
  }

  RioLive live() const { return RioLive{live_conns_, live_listeners_, live_requests_, live_ops_}; }

 private:
  struct Reported {
    SlotClass cls;
    int32_t slot;
  };

  int poll_port(int timeout_ms) {
    DWORD timeout = timeout_ms < 0 ? INFINITE : static_cast<DWORD>(timeout_ms);
    if (cq_pending_ || ready_.head != nullptr) timeout = 0;
    if (any_starved_ && timeout > kStarvedRetryMs) timeout = kStarvedRetryMs;
    OVERLAPPED_ENTRY entries[kMaxEntries];
    ULONG n = 0;
    if (!GetQueuedCompletionStatusEx(port_, entries, kMaxEntries, &n, timeout, FALSE)) {
      const DWORD e = GetLastError();
      if (e != WAIT_TIMEOUT) return -wsa_errno(static_cast<int>(e));
      n = 0;
    }
    for (ULONG i = 0; i < n; ++i) {
      const ULONG_PTR key = entries[i].lpCompletionKey;
      if (key == kKeyWake && entries[i].lpOverlapped == nullptr) {
        wake_posted_.store(false, std::memory_order_release);
        sink_->on_wake();
      } else if (key == kKeyCq) {
        cq_pending_ = true;
      } else if (key == kKeyConnect) {
        on_connect_done(reinterpret_cast<RioConn*>(reinterpret_cast<char*>(entries[i].lpOverlapped) -
                                                   offsetof(RioConn, cov)));
      } else if (key == kKeyIo && entries[i].lpOverlapped != nullptr) {
        on_accept_done(reinterpret_cast<AcceptSlot*>(entries[i].lpOverlapped));
      }
    }
    bool more = false;
    if (cq_pending_ && !fatal_) more |= drain_cq();
    more |= drain_ready();
    if (any_starved_) retry_starved();
    serve_send_waiters();
    serve_recv_waiters();
    if (n == kMaxEntries) more = true;
    // Receive memory short: JS must take the batch so recv_consumed() frees slots.
    if (recv_wait_.head != nullptr && !reported_.empty()) more = true;
    return more ? kPollMore : kPollDone;
  }

  // Returns true when completions are left for the next poll().
  bool drain_cq() {
    for (int round = 0; round < kDequeueRounds; ++round) {
      const ULONG k = t_->RIODequeueCompletion(cq_, results_, kDequeueBatch);
      if (k == rio::kCorruptCq) {
        go_fatal("RIODequeueCompletion returned RIO_CORRUPT_CQ: the RIO completion queue is corrupt "
                 "(memory corruption or misuse of the RIO functions); this loop closes every connection with EIO "
                 "and accepts no more");
        return false;
      }
      for (ULONG i = 0; i < k; ++i) handle_result(results_[i]);
      if (fatal_) return false;
      if (k < kDequeueBatch) {
        cq_pending_ = false;
        const int e = t_->RIONotify(cq_);  // again after each dequeue: the next completion posts to the port
        if (e != 0 && e != WSAEALREADY) {
          char msg[128];
          std::snprintf(msg, sizeof msg, "RIONotify failed with Winsock error %d: completions can no longer be awaited", e);
          go_fatal(msg);
        }
        return false;
      }
    }
    return true;
  }

  void go_fatal(const char* msg) {
    if (fatal_) return;
    fatal_ = true;
    std::snprintf(fatal_msg_, sizeof fatal_msg_, "%s", msg);
    std::fprintf(stderr, "[fastport rio] FATAL: %s\n", msg);
    std::fflush(stderr);
    for (RioConn* rc = all_.head; rc != nullptr;) {
      RioConn* next = rc->all.next;
      if (rc->flags & kFlagClosing) {
        // Closing and waiting for completions that will never be dequeued
        // now (or for a send before its FIN): its close ends here.
        rc->close_pending = false;
        close_socket(rc, CloseMode::kSilent);
        maybe_closed(rc);
      } else {
        fail(rc, EIO);
      }
      rc = next;
    }
    for (RioListener* il = listeners_; il != nullptr; il = il->next)
      if (!il->closing) sink_->on_listener_error(il->l, EIO);
  }

  void handle_result(const rio::Result& r) {
    RioReq* q = reinterpret_cast<RioReq*>(static_cast<uintptr_t>(r.RequestContext));
    RioConn* rc = q->conn;
    rc->ops--;
    live_requests_--;
    switch (q->kind) {
      case kReqRecv:
        on_recv_done(rc, r.Status, r.BytesTransferred);
        return;
      case kReqSend:
        on_send_done(rc, q->index, r.Status, r.BytesTransferred);
        return;
      case kReqSlotSend:
        on_slot_send_done(rc, r.Status, r.BytesTransferred);
        return;
    }
  }

  // ---- receiving
  void put_recv_slot(SlotClass cls, int32_t slot) { (cls == kSmall ? small_ : large_).put(slot); }

  void post_recv(RioConn* rc) {
    if (fatal_ || (rc->flags & (kFlagConnecting | kFlagNoRead | kFlagDead | kFlagClosing | kFlagPaused)) ||
        rc->recv_posted || rc->held_slot >= 0 || rc->held_fin)
      return;
    SlotClass cls = rc->want_large ? kLarge : kSmall;
    int32_t slot = (cls == kSmall ? small_ : large_).take();
    if (slot < 0) {
      cls = cls == kSmall ? kLarge : kSmall;
      slot = (cls == kSmall ? small_ : large_).take();
    }
    if (slot < 0) {
      list_push<&RioConn::wait>(recv_wait_, rc);
      return;
    }
    list_remove<&RioConn::wait>(recv_wait_, rc);
    const rio::SlotPool& pool = cls == kSmall ? small_ : large_;
    Buf b = pool.buf(slot, pool.slot_size());
    stats_->recv_calls++;
    if (!t_->RIOReceive(rc->rq, &b, 1, 0, &rc->recv_req)) {
      const int e = WSAGetLastError();
      put_recv_slot(cls, slot);
      fail(rc, wsa_errno(e));
      return;
    }
    rc->recv_posted = true;
    rc->recv_cls = cls;
    rc->recv_slot = slot;
    rc->ops++;
    live_requests_++;
  }

  void serve_recv_waiters() {
    while (recv_wait_.head != nullptr && (small_.free_count() > 0 || large_.free_count() > 0)) {
      RioConn* rc = recv_wait_.head;
      list_remove<&RioConn::wait>(recv_wait_, rc);
      post_recv(rc);
    }
  }

  void report(RioConn* rc, SlotClass cls, int32_t slot, uint32_t n) {
    reported_.push_back(Reported{cls, slot});
    sink_->on_data(rc->c, (cls == kSmall ? small_ : large_).ptr(slot), n);
  }

  void on_recv_done(RioConn* rc, LONG status, ULONG bytes) {
    rc->recv_posted = false;
    const int32_t slot = rc->recv_slot;
    const SlotClass cls = rc->recv_cls;
    rc->recv_slot = -1;
    if (rc->flags & kFlagClosing) {  // cancelled by our close, or late: not an error
      put_recv_slot(cls, slot);
      maybe_closed(rc);
      return;
    }
    if (rc->flags & kFlagDead) {
      put_recv_slot(cls, slot);
      return;
    }
    if (status != 0) {
      put_recv_slot(cls, slot);
      fail(rc, wsa_errno(status));
      return;
    }
    if (bytes == 0) {
      put_recv_slot(cls, slot);
      // Wine can report a reset as an end of stream with the error left in
      // SO_ERROR (see iocp.cc); after a real FIN SO_ERROR is 0.
      int soerr = 0;
      int soerr_len = sizeof soerr;
      if (getsockopt(rc->s, SOL_SOCKET, SO_ERROR, reinterpret_cast<char*>(&soerr), &soerr_len) == 0 && soerr != 0) {
        fail(rc, wsa_errno(soerr));
        return;
      }
      if (rc->flags & kFlagPaused) {
        rc->held_fin = true;
        return;
      }
      rc->flags |= kFlagNoRead;
      sink_->on_peer_fin(rc->c);
      return;
    }
    rc->want_large = bytes == (cls == kSmall ? small_ : large_).slot_size();
    if (rc->flags & kFlagPaused) {
      rc->held_cls = cls;
      rc->held_slot = slot;
      rc->held_len = bytes;
      return;
    }
    report(rc, cls, slot, bytes);
    post_recv(rc);
  }

  void ready_push(RioConn* rc) {
    if (rc->ready.in) return;
    if (!in_poll_) wake();  // the inline waiter watches the port, not this list
    list_push<&RioConn::ready>(ready_, rc);
  }

  bool drain_ready() {
    while (ready_.head != nullptr) {
      RioConn* rc = ready_.head;
      list_remove<&RioConn::ready>(ready_, rc);
      if (rc->flags & (kFlagDead | kFlagClosing | kFlagPaused)) continue;
      if (rc->held_slot >= 0) {
        const int32_t slot = rc->held_slot;
        rc->held_slot = -1;
        report(rc, rc->held_cls, slot, rc->held_len);
      }
      if (rc->held_fin) {
        rc->held_fin = false;
        rc->flags |= kFlagNoRead;
        sink_->on_peer_fin(rc->c);
        continue;
      }
      post_recv(rc);
    }
    return false;
  }

  // ---- sending
  BufferId slab_id(const SendChunk* ch, ULONG* offset) const {
    if (ch->slab >= slabs_.size()) return rio::invalid_buffer_id();
    const SlabReg& s = slabs_[ch->slab];
    if (s.base == nullptr || ch->data < s.base || ch->data + kChunkSize > s.base + s.bytes) return rio::invalid_buffer_id();
    *offset = static_cast<ULONG>((ch->data + ch->begin) - s.base);
    return s.id;
  }

  void start_send(RioConn* rc) {
    if (fatal_ || (rc->flags & (kFlagConnecting | kFlagDead | kFlagClosing)) || rc->batch_n > 0 || rc->slot_send >= 0)
      return;
    Buf bufs[kSendBatch];
    uint32_t n = 0;
    for (const SendChunk* ch = rc->c->sq_head; ch != nullptr && n < kSendBatch; ch = ch->next) {
      uint32_t len = ch->end - ch->begin;
      if (len == 0) continue;
      ULONG off = 0;
      BufferId id = slab_id(ch, &off);
      if (id != rio::invalid_buffer_id()) {
        bufs[n].BufferId = id;
        bufs[n].Offset = off;
        bufs[n].Length = len;
        rc->batch_bounce[n] = -1;
        rc->batch_len[n++] = len;
        continue;
      }
      // Not registered: copied through a send slot.
      const int32_t slot = send_slots_.take();
      if (slot < 0) break;
      const uint32_t take = len < kSendSlot ? len : kSendSlot;
      std::memcpy(send_slots_.ptr(slot), ch->data + ch->begin, take);
      bufs[n] = send_slots_.buf(slot, take);
      rc->batch_bounce[n] = slot;
      rc->batch_len[n++] = take;
      if (take < len) break;  // the rest of this chunk in the next batch
    }
    if (n == 0) {
      if (rc->c->queued > 0) list_push<&RioConn::send_wait>(send_wait_, rc);
      return;
    }
    list_remove<&RioConn::send_wait>(send_wait_, rc);
    stats_->send_submissions++;
    for (uint32_t i = 0; i < n; ++i) {
      const DWORD flags = i + 1 < n ? rio::kMsgDefer : 0;
      if (!t_->RIOSend(rc->rq, &bufs[i], 1, flags, &rc->send_req[i])) {
        const int e = WSAGetLastError();
        // The deferred ones before it are in the RQ: commit them so they
        // complete and are counted like any other.
        if (i > 0) t_->RIOSend(rc->rq, nullptr, 0, rio::kMsgCommitOnly, nullptr);
        for (uint32_t j = i; j < n; ++j)
          if (rc->batch_bounce[j] >= 0) send_slots_.put(rc->batch_bounce[j]);
        rc->batch_n = i;
        rc->batch_left = i;
        rc->batch_head = 0;
        rc->batch_done = 0;
        fail(rc, wsa_errno(e));
        return;
      }
      rc->ops++;
      live_requests_++;
    }
    rc->batch_n = n;
    rc->batch_left = n;
    rc->batch_head = 0;
    rc->batch_done = 0;
  }

  void serve_send_waiters() {
    while (send_wait_.head != nullptr && send_slots_.free_count() > 0) {
      RioConn* rc = send_wait_.head;
      list_remove<&RioConn::send_wait>(send_wait_, rc);
      start_send(rc);
    }
  }

  // Nothing in flight any more: more bytes, or the half-close that waited.
  void send_idle(RioConn* rc) {
    if (rc->c->queued > 0) {
      start_send(rc);
      return;
    }
    if (rc->shut_pending) {
      rc->shut_pending = false;
      if (shutdown(rc->s, SD_SEND) != 0) {
        const int e = WSAGetLastError();
        if (e != WSAENOTCONN) fail(rc, wsa_errno(e));
      }
    }
  }

  // A closing connection's send completed: the FIN that waited for it.
  void closing_send_done(RioConn* rc) {
    if (rc->close_pending && rc->batch_n == 0 && rc->slot_send < 0) {
      rc->close_pending = false;
      close_socket(rc, CloseMode::kGraceful);
    }
    maybe_closed(rc);
  }

  void on_send_done(RioConn* rc, uint32_t i, LONG status, ULONG bytes) {
    if (i >= rc->batch_n) return;  // cannot happen: contexts are per entry of the batch in flight
    if (rc->batch_bounce[i] >= 0) {
      send_slots_.put(rc->batch_bounce[i]);
      rc->batch_bounce[i] = -1;
    }
    rc->batch_done |= 1u << i;
    rc->batch_left--;
    const bool batch_over = rc->batch_left == 0;
    if (rc->flags & (kFlagClosing | kFlagDead)) {
      if (batch_over) rc->batch_n = 0;
      if (rc->flags & kFlagClosing) closing_send_done(rc);
      return;
    }
    if (status != 0 || bytes != rc->batch_len[i]) {
      if (batch_over) rc->batch_n = 0;
      fail(rc, status != 0 ? wsa_errno(status) : EIO);  // a short RIO send would break the stream
      return;
    }
    while (rc->batch_head < rc->batch_n && (rc->batch_done & (1u << rc->batch_head))) {
      sink_->on_sent(rc->c, rc->batch_len[rc->batch_head]);
      rc->batch_head++;
    }
    if (batch_over) {
      rc->batch_n = 0;
      send_idle(rc);
    }
  }

  void on_slot_send_done(RioConn* rc, LONG status, ULONG bytes) {
    send_slots_.put(rc->slot_send);
    rc->slot_send = -1;
    if (rc->flags & kFlagClosing) {
      closing_send_done(rc);
      return;
    }
    if (rc->flags & kFlagDead) return;
    if (status != 0 || bytes != rc->slot_len) {
      fail(rc, status != 0 ? wsa_errno(status) : EIO);
      return;
    }
    send_idle(rc);
  }

  // ---- connections
  RioConn* new_conn(Conn* c) {
    RioConn* rc = new (std::nothrow) RioConn();
    if (rc == nullptr) return nullptr;
    rc->c = c;
    rc->s = static_cast<SOCKET>(c->fd);
    rc->port = port_;
    rc->recv_req = RioReq{rc, kReqRecv, 0};
    for (uint32_t i = 0; i < kSendBatch; ++i) {
      rc->send_req[i] = RioReq{rc, kReqSend, static_cast<uint8_t>(i)};
      rc->batch_bounce[i] = -1;
    }
    rc->slot_req = RioReq{rc, kReqSlotSend, 0};
    list_push<&RioConn::all>(all_, rc);
    c->bptr = rc;
    live_conns_++;
    return rc;
  }

  void drop_conn(RioConn* rc) {
    rc->c->bptr = nullptr;
    free_conn(rc);
  }

  void free_conn(RioConn* rc) {
    if (rc->cq_reserved) cq_reserved_ -= kCqPerConn;
    list_remove<&RioConn::all>(all_, rc);
    list_remove<&RioConn::wait>(recv_wait_, rc);
    list_remove<&RioConn::send_wait>(send_wait_, rc);
    list_remove<&RioConn::ready>(ready_, rc);
    delete rc;
    live_conns_--;
  }

  // The RQ, with its share of the CQ reserved first (growing the CQ if the
  // reservations would pass its size).
  int attach_rq(RioConn* rc) {
    const ULONG need = cq_reserved_ + kCqPerConn;
    if (need > cq_size_) {
      DWORD size = cq_size_;
      while (size < need && size < rio::kMaxCqSize) size = size * 2 > rio::kMaxCqSize ? rio::kMaxCqSize : size * 2;
      if (size < need || !t_->RIOResizeCompletionQueue(cq_, size)) return -ENOBUFS;
      cq_size_ = size;
    }
    rc->rq = t_->RIOCreateRequestQueue(rc->s, 1, 1, kSendBatch, 1, cq_, cq_, rc);
    if (rc->rq == rio::kInvalidRq) return -wsa_errno(WSAGetLastError());
    cq_reserved_ += kCqPerConn;
    rc->cq_reserved = true;
    return 0;
  }

  void fail(RioConn* rc, int err) {
    if (rc->flags & (kFlagDead | kFlagClosing)) return;
    rc->flags |= kFlagDead;
    list_remove<&RioConn::wait>(recv_wait_, rc);
    list_remove<&RioConn::send_wait>(send_wait_, rc);
    list_remove<&RioConn::ready>(ready_, rc);
    sink_->on_error(rc->c, err);
  }

  void close_socket(RioConn* rc, CloseMode mode) {
    if (rc->sock_closed) return;
    SOCKET s = rc->s;
    if (mode == CloseMode::kGraceful) {
      shutdown(s, SD_SEND);
    } else if (mode == CloseMode::kAbort) {
      linger lg;
      lg.l_onoff = 1;
      lg.l_linger = 0;
      setsockopt(s, SOL_SOCKET, SO_LINGER, reinterpret_cast<const char*>(&lg), sizeof lg);
    }
    // Whatever is in flight completes after this (aborted, and swallowed).
    // Cancelled first, as iocp.cc does: Wine keeps an overlapped send to a
    // stalled peer pending across closesocket().
    CancelIoEx(reinterpret_cast<HANDLE>(s), nullptr);
    closesocket(s);
    rc->s = INVALID_SOCKET;
    rc->c->fd = kInvalidSocket;
    rc->sock_closed = true;
  }

  // Closed and nothing of it left in RIO or the port: on_closed once.
  void maybe_closed(RioConn* rc) {
    if (!(rc->flags & kFlagClosing) || !rc->sock_closed || rc->closed_reported) return;
    if (rc->ops > 0 && !fatal_) return;
    rc->closed_reported = true;
    Conn* c = rc->c;
    c->bptr = nullptr;
    if (rc->ops > 0) {
      // Fatal: the CQ can no longer be dequeued, so requests of this
      // context will never come back. It stays allocated (never freed
      // while RIO may hold it); only the core's view of it ends.
      list_remove<&RioConn::all>(all_, rc);
      leaked_conns_++;
      live_conns_--;
    } else {
      free_conn(rc);
    }
    sink_->on_closed(c);
  }

  void on_connect_done(RioConn* rc) {
    rc->ops--;
    live_ops_--;
    if (rc->cwait != nullptr) {
      UnregisterWaitEx(rc->cwait, INVALID_HANDLE_VALUE);  // its callback has run: it posted this packet
      rc->cwait = nullptr;
    }
    if (rc->cev != nullptr) CloseHandle(rc->cev);
    rc->cev = nullptr;
    if (rc->flags & kFlagClosing) {
      maybe_closed(rc);
      return;
    }
    if (rc->flags & kFlagDead) return;
    if (static_cast<LONG>(rc->cov.Internal) < 0) {
      DWORD bytes = 0, flags = 0;
      int err = EIO;
      if (!WSAGetOverlappedResult(rc->s, &rc->cov, &bytes, FALSE, &flags)) err = wsa_errno(WSAGetLastError());
      fail(rc, err);
      return;
    }
    rc->flags &= ~kFlagConnecting;
    if (setsockopt(rc->s, SOL_SOCKET, SO_UPDATE_CONNECT_CONTEXT, nullptr, 0) != 0) {
      fail(rc, wsa_errno(WSAGetLastError()));
      return;
    }
    const int r = fatal_ ? -EIO : attach_rq(rc);
    if (r < 0) {
      fail(rc, -r);
      return;
    }
    post_recv(rc);
    if (rc->flags & kFlagDead) return;
    sink_->on_connected(rc->c);
  }

  // ---- listeners
  void link_listener(RioListener* il) {
    il->next = listeners_;
    if (listeners_) listeners_->prev = il;
    listeners_ = il;
    live_listeners_++;
  }
  void unlink_listener(RioListener* il) {
    if (il->prev) il->prev->next = il->next;
    else listeners_ = il->next;
    if (il->next) il->next->prev = il->prev;
    live_listeners_--;
  }

  RioListener* listener_of(AcceptSlot* slot) {
    for (RioListener* il = listeners_; il != nullptr; il = il->next)
      if (slot >= il->slots && slot < il->slots + kAcceptPool) return il;
    return nullptr;
  }

  // 0 or a positive errno (the slot stays unposted: starved).
  int post_accept(RioListener* il, AcceptSlot* slot) {
    for (int attempt = 0; attempt < 4; ++attempt) {
      SOCKET s = WSASocketW(il->family, SOCK_STREAM, IPPROTO_TCP, nullptr, 0,
                            WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT | rio::kWsaFlagRegisteredIo);
      if (s == INVALID_SOCKET) {
        il->starved = any_starved_ = true;
        return wsa_errno(WSAGetLastError());
      }
      slot->s = s;
      std::memset(&slot->ov, 0, sizeof slot->ov);
      slot->pending = true;
      il->pending++;
      live_ops_++;
      DWORD bytes = 0;
      const BOOL ok = il->accept_ex(static_cast<SOCKET>(il->l->fd), s, slot->addrs, 0, kAcceptAddrBytes, kAcceptAddrBytes,
                                    &bytes, &slot->ov);
      const int e = ok ? 0 : WSAGetLastError();
      if (ok || e == WSA_IO_PENDING) return 0;  // no skip-on-success here: a packet comes either way
      slot->pending = false;
      il->pending--;
      live_ops_--;
      closesocket(s);
      slot->s = INVALID_SOCKET;
      if (e != WSAECONNRESET) {
        il->starved = any_starved_ = true;
        return wsa_errno(e);
      }
    }
    il->starved = any_starved_ = true;
    return ECONNRESET;
  }

  void on_accept_done(AcceptSlot* slot) {
    RioListener* il = listener_of(slot);
    if (il == nullptr) return;
    slot->pending = false;
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
    if (static_cast<LONG>(slot->ov.Internal) < 0) {
      DWORD b = 0, f = 0;
      int err = EIO;
      if (!WSAGetOverlappedResult(ls, &slot->ov, &b, FALSE, &f)) err = wsa_errno(WSAGetLastError());
      closesocket(s);
      // A peer that reset before the accept: the listener is fine (Windows
      // ERROR_NETNAME_DELETED, Wine WSAENOTCONN).
      if (err != ECONNRESET && err != ECONNABORTED && err != ENOTCONN) sink_->on_listener_error(l, err);
      refill(il, slot);
      return;
    }
    if (fatal_) {
      closesocket(s);
      return;  // the slot stays unposted: the loop accepts no more
    }
    sockaddr_storage peer;
    const socklen_t peer_len = accepted_peer(il->get_addrs, slot->addrs, &peer);
    const int adopted = adopt_accepted(s, ls);
    if (adopted < 0) {
      closesocket(s);
      sink_->on_listener_error(l, -adopted);
      refill(il, slot);
      return;
    }
    Conn* c = sink_->on_accepted(l, static_cast<SocketHandle>(s),
                                 peer_len > 0 ? reinterpret_cast<sockaddr*>(&peer) : nullptr, peer_len);
    if (c != nullptr) {
      RioConn* rc = new_conn(c);
      if (rc == nullptr) {
        sink_->on_error(c, ENOMEM);  // the core closes it; close() sees bptr == nullptr
      } else {
        const int r = attach_rq(rc);
        if (r < 0) {
          fail(rc, -r);  // no room in the CQ (or no RQ): this connection only
        } else {
          post_recv(rc);
        }
      }
    }
    refill(il, slot);
  }

  void refill(RioListener* il, AcceptSlot* slot) {
    const int e = post_accept(il, slot);
    if (e != 0) sink_->on_listener_error(il->l, e);
  }

  void retry_starved() {
    any_starved_ = false;
    for (RioListener* il = listeners_; il != nullptr; il = il->next) {
      if (!il->starved || il->closing) continue;
      il->starved = false;
      for (AcceptSlot& s : il->slots) {
        if (s.pending) continue;
        if (post_accept(il, &s) != 0) break;
      }
    }
  }

  void maybe_listener_closed(RioListener* il) {
    if (!il->closing || il->pending > 0) return;
    Listener* l = il->l;
    l->bptr = nullptr;
    unlink_listener(il);
    delete il;
    sink_->on_listener_closed(l);
  }

  // Destruction: close every socket, then wait (bounded) until RIO and the
  // port have returned every request before freeing what they point at.
  // Anything still out by then (or after RIO_CORRUPT_CQ) is left allocated
  // and registered rather than freed under the kernel.
  void destroy_all() {
    for (RioListener* il = listeners_; il != nullptr; il = il->next) {
      if (!il->closing && il->l->fd != kInvalidSocket) closesocket(static_cast<SOCKET>(il->l->fd));
      il->closing = true;
    }
    for (RioConn* rc = all_.head; rc != nullptr; rc = rc->all.next) {
      if (!rc->sock_closed && rc->s != INVALID_SOCKET) {
        CancelIoEx(reinterpret_cast<HANDLE>(rc->s), nullptr);
        closesocket(rc->s);
      }
      rc->s = INVALID_SOCKET;
      rc->sock_closed = true;
      rc->flags |= kFlagClosing;
    }
    const ULONGLONG deadline = GetTickCount64() + kDrainOnDestroyMs;
    while (port_ != nullptr && (live_ops_ > 0 || live_requests_ > 0) && !fatal_ && GetTickCount64() < deadline) {
      OVERLAPPED_ENTRY entries[kMaxEntries];
      ULONG n = 0;
      if (GetQueuedCompletionStatusEx(port_, entries, kMaxEntries, &n, 20, FALSE)) {
        for (ULONG i = 0; i < n; ++i) {
          const ULONG_PTR key = entries[i].lpCompletionKey;
          if (key == kKeyIo && entries[i].lpOverlapped != nullptr) {
            AcceptSlot* slot = reinterpret_cast<AcceptSlot*>(entries[i].lpOverlapped);
            RioListener* il = listener_of(slot);
            if (il == nullptr || !slot->pending) continue;
            closesocket(slot->s);
            slot->s = INVALID_SOCKET;
            slot->pending = false;
            il->pending--;
            live_ops_--;
          } else if (key == kKeyConnect) {
            RioConn* rc = reinterpret_cast<RioConn*>(reinterpret_cast<char*>(entries[i].lpOverlapped) -
                                                     offsetof(RioConn, cov));
            if (rc->cwait != nullptr) UnregisterWaitEx(rc->cwait, INVALID_HANDLE_VALUE);
            rc->cwait = nullptr;
            if (rc->cev != nullptr) CloseHandle(rc->cev);
            rc->cev = nullptr;
            rc->ops--;
            live_ops_--;
          }
        }
      }
      if (cq_ != rio::kInvalidCq) {
        for (;;) {
          const ULONG k = t_->RIODequeueCompletion(cq_, results_, kDequeueBatch);
          if (k == rio::kCorruptCq || k == 0) break;
          for (ULONG i = 0; i < k; ++i) {
            RioReq* q = reinterpret_cast<RioReq*>(static_cast<uintptr_t>(results_[i].RequestContext));
            q->conn->ops--;
            live_requests_--;
          }
        }
      }
    }
    const bool clean = live_ops_ == 0 && live_requests_ == 0 && !fatal_;
    if (clean) {
      while (all_.head != nullptr) free_conn(all_.head);
      while (listeners_ != nullptr) {
        RioListener* il = listeners_;
        unlink_listener(il);
        delete il;
      }
      if (t_ != nullptr) {
        for (SlabReg& s : slabs_)
          if (s.base != nullptr) t_->RIODeregisterBuffer(s.id);
        slabs_.clear();
        if (cq_ != rio::kInvalidCq) t_->RIOCloseCompletionQueue(cq_);
        cq_ = rio::kInvalidCq;
        recv_chunk_.release();
        send_chunk_.release();
      }
    } else if (t_ != nullptr) {
      std::fprintf(stderr, "[fastport rio] %zu requests and %zu operations still out at destruction%s: their memory is left allocated\n",
                   live_requests_, live_ops_, fatal_ ? " (after a fatal error)" : "");
      recv_chunk_.abandon();
      send_chunk_.abandon();
    }
    if (port_ != nullptr) CloseHandle(port_);
    port_ = nullptr;
    if (wsa_started_) WSACleanup();
    wsa_started_ = false;
  }

  rio::TableKind kind_;
  FunctionTable system_table_{};
  const FunctionTable* t_ = nullptr;
  CoreSink* sink_ = nullptr;
  LoopStats* stats_ = nullptr;
  HANDLE port_ = nullptr;
  bool wsa_started_ = false;
  bool in_poll_ = false;
  bool any_starved_ = false;
  bool cq_pending_ = false;  // notified: the CQ has completions to dequeue
  bool fatal_ = false;
  char fatal_msg_[256] = {0};
  std::atomic<bool> wake_posted_{false};
  OVERLAPPED notify_ov_{};
  rio::Cq cq_ = rio::kInvalidCq;
  ULONG cq_size_ = 0;
  ULONG cq_reserved_ = 0;
  rio::Result results_[kDequeueBatch];
  rio::RegisteredChunk recv_chunk_;
  rio::RegisteredChunk send_chunk_;
  rio::SlotPool small_;
  rio::SlotPool large_;
  rio::SlotPool send_slots_;
  std::vector<SlabReg> slabs_;
  size_t slab_reg_failures_ = 0;
  std::vector<Reported> reported_;
  LPFN_CONNECTEX connect_ex_ = nullptr;
  List all_;
  List recv_wait_;
  List send_wait_;
  List ready_;
  RioListener* listeners_ = nullptr;
  size_t live_conns_ = 0;
  size_t live_listeners_ = 0;
  size_t live_requests_ = 0;
  size_t live_ops_ = 0;
  size_t leaked_conns_ = 0;
};

}  // namespace

Backend* new_rio_backend() { return new (std::nothrow) RioBackend(rio::TableKind::kSystem); }
Backend* new_rio_emulated_backend() { return new (std::nothrow) RioBackend(rio::TableKind::kEmulated); }

RioLive rio_live(const Backend* backend) { return static_cast<const RioBackend*>(backend)->live(); }

}  // namespace fastport
