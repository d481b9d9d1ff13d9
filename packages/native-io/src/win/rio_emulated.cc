// An emulated RIO function table (see win/rio_table.h): Microsoft's
// documented signatures and semantics, built on overlapped WSARecv/WSASend.
// It exists so that the rio backend's own code runs end to end where the
// system has no RIO (Wine answers WSAEOPNOTSUPP); it is chosen only when a
// caller asks for it (rioTable: 'emulated' / FASTPORT_RIO_TABLE=emulated),
// never by auto. What it does, as the documentation describes RIO:
//  - RIORegisterBuffer / RIODeregisterBuffer: a buffer id names a region; a
//    RIO_BUF outside it is refused (WSAEINVAL);
//  - RIOCreateCompletionQueue: a queue of QueueSize RIORESULTs, notified
//    through an event or a completion port (RIO_IOCP_COMPLETION posts the
//    given key and OVERLAPPED); RIONotify arms it once (WSAEALREADY when
//    already armed), and fires at once when the queue already holds a
//    completion that did not ask for RIO_MSG_DONT_NOTIFY;
//  - RIOCreateRequestQueue: per-socket limits of outstanding receives and
//    sends (one data buffer each); RIOSend/RIOReceive beyond them, or beyond
//    what the completion queue can hold, fail with WSAENOBUFS; a request is
//    charged from the post until its completion is dequeued (the
//    documentation: quota charges are released only on dequeue);
//  - RIO_MSG_DEFER holds requests until a call without it or
//    RIO_MSG_COMMIT_ONLY; RIO_MSG_WAITALL maps to MSG_WAITALL;
//  - a connection error met when a request is issued is reported in its
//    completion's Status, not by the call (the call fails only for misuse
//    and capacity, as documented);
//  - RIO_CORRUPT_CQ when the queue overflowed (misuse), or on demand for
//    tests: FASTPORT_RIO_EMULATED_CORRUPT_AFTER=N makes every queue created
//    afterwards report corruption once N dequeues have returned entries.
// The kernel side of RIO runs asynchronously; here one thread per
// completion queue waits on a private completion port that every socket of
// the queue's request queues is associated with, and turns each overlapped
// completion into a RIORESULT. All state is under one mutex (the table is
// for tests; RIO itself asks callers to serialize per queue).
//
// Request queue lifetime: RIO frees an RQ with its socket, and nothing in
// the ABI tells the table when the caller closed the socket. A queue is
// therefore freed (1) when a failed completion leaves it idle and its
// socket handle no longer names a socket, (2) when a new queue is created
// for the same handle value (the old socket is gone), (3) on a sweep of a
// few idle queues at each RIOCreateRequestQueue, or (4) with its completion
// queue. Between those points an idle queue of a closed socket is a small
// block of memory, never a kernel object; emulated_live() counts them.
#include <winsock2.h>
#include <windows.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>

#include "win/rio_table.h"

namespace fastport {
namespace rio {
namespace {

constexpr uint32_t kBufMagic = 0x42494f52;  // 'RIOB'
constexpr uint32_t kCqMagic = 0x43494f52;   // 'RIOC'
constexpr uint32_t kRqMagic = 0x51494f52;   // 'RIOQ'
constexpr ULONG_PTR kStopKey = 1;
constexpr int kSweepPerCreate = 4;

struct EmuBuffer {
  uint32_t magic;
  char* base;
  DWORD length;
};

struct EmuCq;
struct EmuRq;

struct EmuRequest {
  OVERLAPPED ov;  // first: the port hands back &ov
  EmuRq* rq;
  EmuCq* cq;
  bool send;
  bool notify;
  DWORD recv_flags;
  PVOID context;
  WSABUF buf;
  EmuRequest* next;  // deferred list
};

struct Entry {
  Result r;
  EmuRq* rq;
  bool send;
  bool notify;
};

struct EmuRq {
  uint32_t magic = kRqMagic;
  SOCKET s = INVALID_SOCKET;
  EmuCq* rcq = nullptr;
  EmuCq* scq = nullptr;
  PVOID ctx = nullptr;
  ULONG max_recv = 0, max_send = 0;
  ULONG out_recv = 0, out_send = 0;  // charged: posted and not dequeued
  EmuRequest* def_head = nullptr;    // RIO_MSG_DEFER, in post order (sends and receives)
  EmuRequest* def_tail = nullptr;
  bool orphan = false;  // its socket is gone: free once idle
  EmuRq* prev = nullptr;
  EmuRq* next = nullptr;
};

struct EmuCq {
  uint32_t magic = kCqMagic;
  Entry* ring = nullptr;
  size_t cap = 0;
  size_t head = 0;
  size_t count = 0;
  size_t charged = 0;  // requests posted and not dequeued
  size_t notifiable = 0;
  bool armed = false;
  bool corrupt = false;
  bool has_notif = false;
  NotificationCompletion notif{};
  HANDLE port = nullptr;
  HANDLE thread = nullptr;
  long corrupt_after = -1;
  long dequeues = 0;
};

std::mutex g_mu;
EmuRq* g_rqs = nullptr;  // every request queue
EmuRq* g_sweep = nullptr;
size_t g_cqs = 0, g_nrqs = 0, g_requests = 0, g_buffers = 0;

void fail_with(int e) { WSASetLastError(e); }

EmuBuffer* buffer_of(BufferId id) {
  EmuBuffer* b = reinterpret_cast<EmuBuffer*>(id);
  if (b == nullptr || id == invalid_buffer_id() || b->magic != kBufMagic) return nullptr;
  return b;
}
EmuCq* cq_of(Cq q) {
  EmuCq* c = reinterpret_cast<EmuCq*>(q);
  return c != nullptr && c->magic == kCqMagic ? c : nullptr;
}
EmuRq* rq_of(Rq q) {
  EmuRq* r = reinterpret_cast<EmuRq*>(q);
  return r != nullptr && r->magic == kRqMagic ? r : nullptr;
}

bool rq_idle(const EmuRq* rq) { return rq->out_recv == 0 && rq->out_send == 0 && rq->def_head == nullptr; }

void unlink_rq(EmuRq* rq) {
  if (g_sweep == rq) g_sweep = rq->next;
  if (rq->prev) rq->prev->next = rq->next;
  else g_rqs = rq->next;
  if (rq->next) rq->next->prev = rq->prev;
}

void free_rq(EmuRq* rq) {
  unlink_rq(rq);
  rq->magic = 0;
  delete rq;
  g_nrqs--;
}

bool socket_gone(SOCKET s) {
  int type = 0;
  int len = sizeof type;
  return getsockopt(s, SOL_SOCKET, SO_TYPE, reinterpret_cast<char*>(&type), &len) != 0 &&
         WSAGetLastError() == WSAENOTSOCK;
}

void fire(EmuCq* cq) {
  if (cq->notif.Type == kIocpCompletion) {
    PostQueuedCompletionStatus(cq->notif.Iocp.IocpHandle, 0, reinterpret_cast<ULONG_PTR>(cq->notif.Iocp.CompletionKey),
                               static_cast<LPOVERLAPPED>(cq->notif.Iocp.Overlapped));
  } else {
    SetEvent(cq->notif.Event.EventHandle);
  }
}

// g_mu held.
void push(EmuCq* cq, const Entry& e) {
  if (cq->count == cq->cap) {
    cq->corrupt = true;  // more completions than entries: the caller overran the queue
  } else {
    cq->ring[(cq->head + cq->count) % cq->cap] = e;
    cq->count++;
    if (e.notify) cq->notifiable++;
  }
  if (cq->armed && cq->has_notif && (cq->notifiable > 0 || cq->corrupt)) {
    cq->armed = false;
    fire(cq);
  }
}

// g_mu held. Frees req.
void complete(EmuRequest* req, LONG status, ULONG bytes) {
  Entry e;
  e.r.Status = status;
  e.r.BytesTransferred = bytes;
  e.r.SocketContext = reinterpret_cast<ULONGLONG>(req->rq->ctx);
  e.r.RequestContext = reinterpret_cast<ULONGLONG>(req->context);
  e.rq = req->rq;
  e.send = req->send;
  e.notify = req->notify;
  push(req->cq, e);
  delete req;
  g_requests--;
}

// g_mu held: hands req to Winsock. An error met here is the request's
// completion status (RIO reports connection errors in the RIORESULT).
void issue(EmuRequest* req) {
  std::memset(&req->ov, 0, sizeof req->ov);
  int r;
  if (req->send) {
    r = WSASend(req->rq->s, &req->buf, 1, nullptr, 0, &req->ov, nullptr);
  } else {
    DWORD flags = req->recv_flags;
    r = WSARecv(req->rq->s, &req->buf, 1, nullptr, &flags, &req->ov, nullptr);
  }
  if (r == 0) return;  // the port gets the packet (no skip-on-success here)
  const int e = WSAGetLastError();
  if (e == WSA_IO_PENDING) return;
  complete(req, e, 0);
}

void issue_deferred(EmuRq* rq) {
  while (rq->def_head != nullptr) {
    EmuRequest* req = rq->def_head;
    rq->def_head = req->next;
    if (rq->def_head == nullptr) rq->def_tail = nullptr;
    req->next = nullptr;
    issue(req);
  }
}

DWORD WINAPI cq_thread(void* arg) {
  EmuCq* cq = static_cast<EmuCq*>(arg);
  OVERLAPPED_ENTRY entries[64];
  for (;;) {
    ULONG n = 0;
    if (!GetQueuedCompletionStatusEx(cq->port, entries, 64, &n, INFINITE, FALSE)) {
      if (GetLastError() == ERROR_ABANDONED_WAIT_0) return 0;
      continue;
    }
    bool stop = false;
    std::lock_guard<std::mutex> g(g_mu);
    for (ULONG i = 0; i < n; ++i) {
      if (entries[i].lpCompletionKey == kStopKey && entries[i].lpOverlapped == nullptr) {
        stop = true;
        continue;
      }
      EmuRequest* req = reinterpret_cast<EmuRequest*>(entries[i].lpOverlapped);
      if (req == nullptr) continue;
      LONG status = 0;
      if (static_cast<LONG>(req->ov.Internal) < 0) {
        DWORD b = 0, f = 0;
        if (WSAGetOverlappedResult(req->rq->s, &req->ov, &b, FALSE, &f)) {
          status = WSA_OPERATION_ABORTED;  // failed, yet no code: call it what RIO says for a closed socket
        } else {
          status = WSAGetLastError();
          if (status == WSAENOTSOCK || status == WSAEINVAL) status = WSA_OPERATION_ABORTED;  // closed under it
        }
      }
      complete(req, status, status == 0 ? entries[i].dwNumberOfBytesTransferred : 0);
    }
    if (stop) return 0;
  }
}

// ---------------------------------------------------------------- the table

BOOL WINAPI post(Rq q, Buf* data, ULONG count, DWORD flags, PVOID context, bool send) {
  std::lock_guard<std::mutex> g(g_mu);
  EmuRq* rq = rq_of(q);
  if (rq == nullptr) {
    fail_with(WSAEINVAL);
    return FALSE;
  }
  if (flags & kMsgCommitOnly) {
    if (flags != kMsgCommitOnly || data != nullptr || count != 0 || context != nullptr) {
      fail_with(WSAEINVAL);
      return FALSE;
    }
    issue_deferred(rq);
    return TRUE;
  }
  if (flags & ~(kMsgDontNotify | kMsgDefer | (send ? 0 : kMsgWaitAll))) {
    fail_with(WSAEINVAL);
    return FALSE;
  }
  EmuBuffer* b = data != nullptr ? buffer_of(data->BufferId) : nullptr;
  if (count != 1 || b == nullptr || data->Offset > b->length || data->Length > b->length - data->Offset) {
    fail_with(WSAEINVAL);  // TCP: exactly one data buffer inside a registered one
    return FALSE;
  }
  EmuCq* cq = send ? rq->scq : rq->rcq;
  ULONG& out = send ? rq->out_send : rq->out_recv;
  const ULONG max = send ? rq->max_send : rq->max_recv;
  if (out >= max || cq->charged >= cq->cap) {
    fail_with(WSAENOBUFS);
    return FALSE;
  }
  EmuRequest* req = new (std::nothrow) EmuRequest();
  if (req == nullptr) {
    fail_with(WSAENOBUFS);
    return FALSE;
  }
  req->rq = rq;
  req->cq = cq;
  req->send = send;
  req->notify = (flags & kMsgDontNotify) == 0;
  req->recv_flags = (flags & kMsgWaitAll) ? MSG_WAITALL : 0;
  req->context = context;
  req->buf.buf = b->base + data->Offset;
  req->buf.len = data->Length;
  req->next = nullptr;
  out++;
  cq->charged++;
  g_requests++;
  if (flags & kMsgDefer) {
    if (rq->def_tail) rq->def_tail->next = req;
    else rq->def_head = req;
    rq->def_tail = req;
    return TRUE;
  }
  issue_deferred(rq);
  issue(req);
  return TRUE;
}

BOOL WINAPI emu_receive(Rq q, Buf* data, ULONG count, DWORD flags, PVOID context) {
  return post(q, data, count, flags, context, false);
}
BOOL WINAPI emu_send(Rq q, Buf* data, ULONG count, DWORD flags, PVOID context) {
  return post(q, data, count, flags, context, true);
}
// The Ex forms add addresses and control data, which TCP has no use for.
int WINAPI emu_receive_ex(Rq q, Buf* data, ULONG count, Buf* local, Buf* remote, Buf* control, Buf* flags_buf,
                          DWORD flags, PVOID context) {
  if (local != nullptr || remote != nullptr || control != nullptr || flags_buf != nullptr) {
    fail_with(WSAEOPNOTSUPP);
    return FALSE;
  }
  return post(q, data, count, flags, context, false);
}
BOOL WINAPI emu_send_ex(Rq q, Buf* data, ULONG count, Buf* local, Buf* remote, Buf* control, Buf* flags_buf,
                        DWORD flags, PVOID context) {
  if (local != nullptr || remote != nullptr || control != nullptr || flags_buf != nullptr) {
    fail_with(WSAEOPNOTSUPP);
    return FALSE;
  }
  return post(q, data, count, flags, context, true);
}

Cq WINAPI emu_create_cq(DWORD size, NotificationCompletion* notif) {
  if (size == 0 || size > kMaxCqSize) {
    fail_with(WSAEINVAL);
    return kInvalidCq;
  }
  if (notif != nullptr &&
      !((notif->Type == kIocpCompletion && notif->Iocp.IocpHandle != nullptr && notif->Iocp.Overlapped != nullptr) ||
        (notif->Type == kEventCompletion && notif->Event.EventHandle != nullptr))) {
    fail_with(WSAEINVAL);
    return kInvalidCq;
  }
  EmuCq* cq = new (std::nothrow) EmuCq();
  Entry* ring = new (std::nothrow) Entry[size];
  HANDLE port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, nullptr, 0, 1);
  if (cq == nullptr || ring == nullptr || port == nullptr) {
    delete cq;
    delete[] ring;
    if (port != nullptr) CloseHandle(port);
    fail_with(WSAENOBUFS);
    return kInvalidCq;
  }
  cq->ring = ring;
  cq->cap = size;
  cq->port = port;
  if (notif != nullptr) {
    cq->notif = *notif;
    cq->has_notif = true;
  }
  // The process environment, not the C runtime's copy of it (Node sets
  // process.env with SetEnvironmentVariableW).
  char corrupt[32];
  const DWORD clen = GetEnvironmentVariableA("FASTPORT_RIO_EMULATED_CORRUPT_AFTER", corrupt, sizeof corrupt);
  if (clen > 0 && clen < sizeof corrupt) cq->corrupt_after = std::strtol(corrupt, nullptr, 10);
  cq->thread = CreateThread(nullptr, 0, cq_thread, cq, 0, nullptr);
  if (cq->thread == nullptr) {
    CloseHandle(port);
    delete[] ring;
    delete cq;
    fail_with(WSAENOBUFS);
    return kInvalidCq;
  }
  std::lock_guard<std::mutex> g(g_mu);
  g_cqs++;
  return reinterpret_cast<Cq>(cq);
}

VOID WINAPI emu_close_cq(Cq q) {
  EmuCq* cq;
  {
    std::lock_guard<std::mutex> g(g_mu);
    cq = cq_of(q);
    if (cq == nullptr) return;
    cq->magic = 0;
  }
  PostQueuedCompletionStatus(cq->port, 0, kStopKey, nullptr);
  WaitForSingleObject(cq->thread, INFINITE);
  CloseHandle(cq->thread);
  std::lock_guard<std::mutex> g(g_mu);
  // Queues on it go with it; one with requests still in the kernel is left
  // (with them) rather than freed under the kernel's feet.
  bool left = false;
  for (EmuRq* rq = g_rqs; rq != nullptr;) {
    EmuRq* next = rq->next;
    if (rq->rcq == cq || rq->scq == cq) {
      if (rq_idle(rq)) {
        free_rq(rq);
      } else {
        left = true;
        unlink_rq(rq);
        rq->prev = rq->next = nullptr;
      }
    }
    rq = next;
  }
  CloseHandle(cq->port);
  g_cqs--;
  if (left) return;  // requests still reference the queue
  delete[] cq->ring;
  delete cq;
}

Rq WINAPI emu_create_rq(SOCKET s, ULONG max_recv, ULONG max_recv_bufs, ULONG max_send, ULONG max_send_bufs, Cq rcq_h,
                        Cq scq_h, PVOID ctx) {
  std::lock_guard<std::mutex> g(g_mu);
  EmuCq* rcq = cq_of(rcq_h);
  EmuCq* scq = cq_of(scq_h);
  if (rcq == nullptr || scq == nullptr || (max_recv == 0 && max_send == 0) || (max_recv > 0 && max_recv_bufs != 1) ||
      (max_send > 0 && max_send_bufs != 1)) {
    fail_with(WSAEINVAL);
    return kInvalidRq;
  }
  if (s == INVALID_SOCKET) {
    fail_with(WSAENOTSOCK);
    return kInvalidRq;
  }
  // A queue still filed under this handle value belongs to a socket that
  // is gone (the value was reused); a few idle ones are checked besides.
  for (EmuRq* rq = g_rqs; rq != nullptr;) {
    EmuRq* next = rq->next;
    if (rq->s == s) {
      rq->orphan = true;
      if (rq_idle(rq)) free_rq(rq);
    }
    rq = next;
  }
  for (int i = 0; i < kSweepPerCreate && g_rqs != nullptr; ++i) {
    if (g_sweep == nullptr) g_sweep = g_rqs;
    EmuRq* rq = g_sweep;
    g_sweep = rq->next;
    if (rq_idle(rq) && socket_gone(rq->s)) free_rq(rq);
  }
  if (CreateIoCompletionPort(reinterpret_cast<HANDLE>(s), rcq->port, 0, 0) == nullptr) {
    const DWORD e = GetLastError();
    fail_with(e == ERROR_INVALID_HANDLE ? WSAENOTSOCK : WSAEINVAL);  // not a socket, or bound to another port
    return kInvalidRq;
  }
  EmuRq* rq = new (std::nothrow) EmuRq();
  if (rq == nullptr) {
    fail_with(WSAENOBUFS);
    return kInvalidRq;
  }
  rq->s = s;
  rq->rcq = rcq;
  rq->scq = scq;
  rq->ctx = ctx;
  rq->max_recv = max_recv;
  rq->max_send = max_send;
  rq->next = g_rqs;
  if (g_rqs) g_rqs->prev = rq;
  g_rqs = rq;
  g_nrqs++;
  return reinterpret_cast<Rq>(rq);
}

ULONG WINAPI emu_dequeue(Cq q, Result* out, ULONG n) {
  std::lock_guard<std::mutex> g(g_mu);
  EmuCq* cq = cq_of(q);
  if (cq == nullptr || cq->corrupt) return kCorruptCq;
  if (cq->corrupt_after >= 0 && cq->count > 0 && cq->dequeues >= cq->corrupt_after) {
    cq->corrupt = true;
    return kCorruptCq;
  }
  ULONG m = 0;
  while (m < n && cq->count > 0) {
    Entry& e = cq->ring[cq->head];
    out[m++] = e.r;
    cq->head = (cq->head + 1) % cq->cap;
    cq->count--;
    cq->charged--;
    if (e.notify) cq->notifiable--;
    EmuRq* rq = e.rq;
    if (e.send) rq->out_send--;
    else rq->out_recv--;
    if (rq_idle(rq) && (rq->orphan || (e.r.Status != 0 && socket_gone(rq->s)))) {
      if (rq->prev != nullptr || g_rqs == rq) {
        free_rq(rq);
      } else {  // left behind by its closed completion queue
        rq->magic = 0;
        delete rq;
        g_nrqs--;
      }
    }
  }
  if (m > 0) cq->dequeues++;
  return m;
}

VOID WINAPI emu_deregister(BufferId id) {
  std::lock_guard<std::mutex> g(g_mu);
  EmuBuffer* b = buffer_of(id);
  if (b == nullptr) return;
  b->magic = 0;
  delete b;
  g_buffers--;
}

INT WINAPI emu_notify(Cq q) {
  std::lock_guard<std::mutex> g(g_mu);
  EmuCq* cq = cq_of(q);
  if (cq == nullptr || !cq->has_notif) return WSAEINVAL;
  if (cq->armed) return WSAEALREADY;
  if (cq->notifiable > 0 || cq->corrupt) {
    fire(cq);
  } else {
    cq->armed = true;
  }
  return ERROR_SUCCESS;
}

BufferId WINAPI emu_register(PCHAR data, DWORD length) {
  if (data == nullptr || length == 0) {
    fail_with(WSAEINVAL);
    return invalid_buffer_id();
  }
  EmuBuffer* b = new (std::nothrow) EmuBuffer{kBufMagic, data, length};
  if (b == nullptr) {
    fail_with(WSAENOBUFS);
    return invalid_buffer_id();
  }
  std::lock_guard<std::mutex> g(g_mu);
  g_buffers++;
  return reinterpret_cast<BufferId>(b);
}

BOOL WINAPI emu_resize_cq(Cq q, DWORD size) {
  std::lock_guard<std::mutex> g(g_mu);
  EmuCq* cq = cq_of(q);
  if (cq == nullptr || size == 0 || size > kMaxCqSize || size < cq->charged) {
    fail_with(WSAEINVAL);
    return FALSE;
  }
  Entry* ring = new (std::nothrow) Entry[size];
  if (ring == nullptr) {
    fail_with(WSAENOBUFS);
    return FALSE;
  }
  for (size_t i = 0; i < cq->count; ++i) ring[i] = cq->ring[(cq->head + i) % cq->cap];
  delete[] cq->ring;
  cq->ring = ring;
  cq->cap = size;
  cq->head = 0;
  return TRUE;
}

BOOL WINAPI emu_resize_rq(Rq q, DWORD max_recv, DWORD max_send) {
  std::lock_guard<std::mutex> g(g_mu);
  EmuRq* rq = rq_of(q);
  if (rq == nullptr || (max_recv == 0 && max_send == 0) || max_recv < rq->out_recv || max_send < rq->out_send) {
    fail_with(WSAEINVAL);
    return FALSE;
  }
  rq->max_recv = max_recv;
  rq->max_send = max_send;
  return TRUE;
}

const FunctionTable kTable = {
    sizeof(FunctionTable), emu_receive,     emu_receive_ex, emu_send,     emu_send_ex,
    emu_close_cq,          emu_create_cq,   emu_create_rq,  emu_dequeue,  emu_deregister,
    emu_notify,            emu_register,    emu_resize_cq,  emu_resize_rq,
};

}  // namespace

const FunctionTable* emulated_table() { return &kTable; }

EmulatedLive emulated_live() {
  std::lock_guard<std::mutex> g(g_mu);
  return EmulatedLive{g_cqs, g_nrqs, g_requests, g_buffers};
}

}  // namespace rio
}  // namespace fastport
