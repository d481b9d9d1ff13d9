// IOCP proof for the Windows engine (issue 10), a standalone program
// cross-compiled with mingw-w64 and run under Wine by scripts/test-win32.sh.
// It exercises exactly the pieces the iocp backend is built from, so that a
// Wine or mingw gap shows up here, small, before it shows up in the engine:
//   - one completion port, GetQueuedCompletionStatusEx in batches;
//   - AcceptEx from a pre-posted pool of accept sockets, refilled on use;
//   - ConnectEx (bind first) + SO_UPDATE_CONNECT_CONTEXT;
//   - zero-byte WSARecv as the readiness signal, then a non-blocking recv()
//     drain into one loop-wide buffer (an idle connection holds no buffer);
//   - one WSASend per connection in flight, two WSABUFs (scatter-gather);
//   - FILE_SKIP_COMPLETION_PORT_ON_SUCCESS: synchronous successes are
//     handled inline (no packet is queued for them);
//   - per-I/O context (OVERLAPPED inside Op) apart from per-connection
//     context; a connection is freed only when none of its ops is pending;
//   - closesocket() with a zero-byte recv pending, and with AcceptEx pending
//     on the listener: each op completes once with an abort status, which is
//     not an error and frees nothing twice (live counters end at zero).
//
//   iocp_echo.exe selftest [conns] [rounds]   clients and server in this process
//   iocp_echo.exe rio-probe   is the RIO function table there? (Wine: no)
//   iocp_echo.exe serve <portfile> <conns> <seconds>
//       echo server only (Linux tools drive it): writes its port to portfile,
//       exits 0 after <conns> connections closed cleanly, 1 at the deadline.
// Prints "key=value" lines; exit 0 only when every check held.
#include <winsock2.h>
#include <ws2tcpip.h>
#include <mswsock.h>
#include <windows.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <string>
#include <vector>

namespace {

constexpr size_t kLoopBuf = 64 * 1024;
constexpr size_t kMaxOut = 256 * 1024;  // echo backpressure: stop draining past this
constexpr int kAcceptPool = 8;

enum class OpKind { Accept, Connect, Recv0, Send };

struct Conn;

// Per-I/O context: the OVERLAPPED is the first member, so the pointer the
// port hands back is the Op.
struct Op {
  OVERLAPPED ov;
  OpKind kind;
  Conn* conn;
  bool pending;
};

struct AcceptOp {
  Op op;
  SOCKET s;
  char addrs[2 * (sizeof(sockaddr_in6) + 16)];
};

struct Conn {
  SOCKET s = INVALID_SOCKET;
  bool client = false;
  bool idle = false;  // abort check: no traffic, server side closed under a pending recv
  int id = 0;
  Op recv_op{};
  Op send_op{};
  Op connect_op{};
  std::vector<char> out;       // queued, not yet handed to WSASend
  std::vector<char> inflight;  // owned by the WSASend in flight
  size_t inflight_off = 0;
  bool sending = false;
  bool peer_fin = false;
  bool closed = false;
  // client side
  int round = 0;
  std::vector<char> expect;
  size_t got = 0;
  bool fin_sent = false;
};

struct Stats {
  long accepted = 0, connected = 0, clients_done = 0, server_closed_clean = 0;
  long long bytes_echoed = 0, bytes_verified = 0;
  long zero_recv_completions = 0, inline_completions = 0, packets = 0, gqcs_calls = 0;
  long mismatches = 0, errors = 0;
  long abort_recv = 0, abort_accept = 0;
  unsigned long abort_recv_error = 0, abort_accept_error = 0;
  unsigned long abort_recv_status = 0, abort_accept_status = 0;  // raw NTSTATUS
  long live_conns = 0, pending_ops = 0, max_batch = 0;
  bool skip_mode = false;
};

Stats st;
HANDLE g_port = nullptr;
SOCKET g_listener = INVALID_SOCKET;
LPFN_ACCEPTEX g_accept_ex = nullptr;
LPFN_CONNECTEX g_connect_ex = nullptr;
sockaddr_in g_addr{};
AcceptOp g_accepts[kAcceptPool];
bool g_listener_closed = false;
int g_rounds = 8;
char g_loopbuf[kLoopBuf];
std::vector<Conn*> g_conns;  // every live Conn, freed once idle

struct Inline {
  Op* op;
  DWORD bytes;
};
std::deque<Inline> g_inline;  // synchronous successes, handled by the loop (no re-entry)

using RtlNtStatusToDosErrorFn = ULONG(WINAPI*)(LONG);
RtlNtStatusToDosErrorFn g_nt_to_dos = nullptr;

void note(const char* what, unsigned long err) {
  std::printf("error=%s:%lu\n", what, err);
  st.errors++;
}

std::vector<char> make_message(int conn, int round) {
  // Sizes from 1 byte to ~200 KB, and one 1 MiB message, so drains span
  // many loop buffers and the echo hits its backpressure limit.
  size_t n = 1 + (static_cast<size_t>(conn) * 7919u + static_cast<size_t>(round) * 104729u) % 200000u;
  if (conn == 0 && round == 1) n = 1 << 20;
  std::vector<char> v(n);
  uint32_t x = 2166136261u ^ static_cast<uint32_t>(conn * 131 + round);
  for (size_t i = 0; i < n; i++) {
    x = x * 16777619u + 0x9e3779b9u;
    v[i] = static_cast<char>(x >> 24);
  }
  return v;
}

bool associate(SOCKET s, Conn* c) {
  if (CreateIoCompletionPort(reinterpret_cast<HANDLE>(s), g_port, reinterpret_cast<ULONG_PTR>(c), 0) == nullptr) {
    note("CreateIoCompletionPort(socket)", GetLastError());
    return false;
  }
  // Synchronous successes queue no packet: the caller handles them inline.
  if (SetFileCompletionNotificationModes(reinterpret_cast<HANDLE>(s),
                                         FILE_SKIP_COMPLETION_PORT_ON_SUCCESS | FILE_SKIP_SET_EVENT_ON_HANDLE)) {
    st.skip_mode = true;
  } else {
    note("SetFileCompletionNotificationModes", GetLastError());
  }
  return true;
}

Conn* new_conn(SOCKET s, bool client) {
  Conn* c = new Conn();
  c->s = s;
  c->client = client;
  c->id = static_cast<int>(g_conns.size());
  c->recv_op.kind = OpKind::Recv0;
  c->send_op.kind = OpKind::Send;
  c->connect_op.kind = OpKind::Connect;
  c->recv_op.conn = c->send_op.conn = c->connect_op.conn = c;
  g_conns.push_back(c);
  st.live_conns++;
  return c;
}

void start_op(Op* op) {
  std::memset(&op->ov, 0, sizeof op->ov);
  op->pending = true;
  st.pending_ops++;
}

// The op finished (packet, inline success or failure to start).
void end_op(Op* op) {
  op->pending = false;
  st.pending_ops--;
}

// An op's submission returned: pending, synchronous success (inline), or failed.
// Returns false on failure (the op is no longer pending).
bool submitted(Op* op, bool ok_now, DWORD bytes, int err, const char* what) {
  if (ok_now) {
    if (st.skip_mode) {
      g_inline.push_back({op, bytes});
      st.inline_completions++;
    }
    // Without skip mode a packet comes anyway; handle it then.
    return true;
  }
  if (err == WSA_IO_PENDING || err == ERROR_IO_PENDING) return true;
  end_op(op);
  note(what, static_cast<unsigned long>(err));
  return false;
}

void close_conn(Conn* c) {
  if (c->closed) return;
  c->closed = true;
  if (closesocket(c->s) != 0) note("closesocket", WSAGetLastError());
  c->s = INVALID_SOCKET;
}

void post_recv0(Conn* c) {
  if (c->closed || c->recv_op.pending) return;
  start_op(&c->recv_op);
  WSABUF b{0, nullptr};
  DWORD flags = 0, bytes = 0;
  int r = WSARecv(c->s, &b, 1, &bytes, &flags, &c->recv_op.ov, nullptr);
  if (!submitted(&c->recv_op, r == 0, bytes, r == 0 ? 0 : WSAGetLastError(), "WSARecv(0)")) close_conn(c);
}

void flush(Conn* c) {
  if (c->closed || c->sending || c->out.empty()) return;
  c->inflight.swap(c->out);
  c->out.clear();
  c->inflight_off = 0;
  c->sending = true;
  start_op(&c->send_op);
  // Two WSABUFs over one buffer: the engine gathers chunks the same way.
  size_t half = c->inflight.size() / 2;
  WSABUF bufs[2] = {{static_cast<ULONG>(half), c->inflight.data()},
                    {static_cast<ULONG>(c->inflight.size() - half), c->inflight.data() + half}};
  DWORD bytes = 0;
  int r = WSASend(c->s, half ? bufs : bufs + 1, half ? 2 : 1, &bytes, 0, &c->send_op.ov, nullptr);
  if (!submitted(&c->send_op, r == 0, bytes, r == 0 ? 0 : WSAGetLastError(), "WSASend")) {
    c->sending = false;
    close_conn(c);
  }
}

void start_round(Conn* c) {
  c->expect = make_message(c->id, c->round);
  c->got = 0;
  c->out = c->expect;
  flush(c);
  post_recv0(c);
}

// Zero-byte recv completed: the socket is readable. Drain it non-blocking.
void readable(Conn* c) {
  if (c->closed) return;
  for (;;) {
    if (!c->client && c->out.size() >= kMaxOut) break;  // resumes when the send completes
    int n = recv(c->s, g_loopbuf, static_cast<int>(kLoopBuf), 0);
    if (n > 0) {
      if (c->client) {
        size_t len = static_cast<size_t>(n);
        if (c->got + len > c->expect.size() || std::memcmp(c->expect.data() + c->got, g_loopbuf, len) != 0) {
          st.mismatches++;
          close_conn(c);
          return;
        }
        c->got += len;
        st.bytes_verified += n;
        if (c->got == c->expect.size()) {
          c->round++;
          if (c->round < g_rounds) {
            c->expect = make_message(c->id, c->round);
            c->got = 0;
            c->out = c->expect;
            flush(c);
          } else if (!c->fin_sent) {
            c->fin_sent = true;
            if (shutdown(c->s, SD_SEND) != 0) note("shutdown", WSAGetLastError());
          }
        }
      } else {
        c->out.insert(c->out.end(), g_loopbuf, g_loopbuf + n);
        st.bytes_echoed += n;
      }
      continue;
    }
    if (n == 0) {
      c->peer_fin = true;
      break;
    }
    int e = WSAGetLastError();
    if (e == WSAEWOULDBLOCK) break;
    note("recv", static_cast<unsigned long>(e));
    close_conn(c);
    return;
  }
  if (c->peer_fin) {
    if (c->client) {
      if (c->fin_sent && c->got == c->expect.size()) {
        st.clients_done++;
      } else if (!c->idle) {
        note("client: early EOF", 0);
      }
      close_conn(c);
    } else if (!c->sending && c->out.empty()) {
      st.server_closed_clean++;
      close_conn(c);
    } else {
      flush(c);  // closes once the echo is out (see on_send)
    }
    return;
  }
  if (!c->client) flush(c);
  if (c->client || c->out.size() < kMaxOut) post_recv0(c);
}

SOCKET new_socket() {
  SOCKET s = WSASocketW(AF_INET, SOCK_STREAM, IPPROTO_TCP, nullptr, 0, WSA_FLAG_OVERLAPPED);
  if (s == INVALID_SOCKET) note("WSASocket", WSAGetLastError());
  return s;
}

bool post_accept(AcceptOp* a) {
  a->s = new_socket();
  if (a->s == INVALID_SOCKET) return false;
  start_op(&a->op);
  DWORD bytes = 0;
  BOOL ok = g_accept_ex(g_listener, a->s, a->addrs, 0, sizeof(sockaddr_in6) + 16, sizeof(sockaddr_in6) + 16, &bytes,
                        &a->op.ov);
  if (!submitted(&a->op, ok != FALSE, bytes, ok ? 0 : WSAGetLastError(), "AcceptEx")) {
    closesocket(a->s);
    a->s = INVALID_SOCKET;
    return false;
  }
  return true;
}

void on_accept(AcceptOp* a, DWORD err) {
  SOCKET s = a->s;
  a->s = INVALID_SOCKET;
  if (err != 0) {
    if (closesocket(s) != 0) note("closesocket(accept)", WSAGetLastError());
    if (g_listener_closed) {
      st.abort_accept++;
      st.abort_accept_error = err;
      st.abort_accept_status = static_cast<unsigned long>(a->op.ov.Internal);
    } else {
      note("AcceptEx completion", err);
    }
    return;
  }
  st.accepted++;
  if (setsockopt(s, SOL_SOCKET, SO_UPDATE_ACCEPT_CONTEXT, reinterpret_cast<char*>(&g_listener), sizeof g_listener) != 0)
    note("SO_UPDATE_ACCEPT_CONTEXT", WSAGetLastError());
  u_long nb = 1;
  if (ioctlsocket(s, FIONBIO, &nb) != 0) note("FIONBIO", WSAGetLastError());
  Conn* c = new_conn(s, false);
  if (associate(s, c)) post_recv0(c);
  else close_conn(c);
  if (!g_listener_closed) post_accept(a);  // refill the pool
}

Conn* start_client() {
  SOCKET s = new_socket();
  if (s == INVALID_SOCKET) return nullptr;
  sockaddr_in local{};
  local.sin_family = AF_INET;
  local.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(s, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) {
    note("bind(client)", WSAGetLastError());
    closesocket(s);
    return nullptr;
  }
  u_long nb = 1;
  if (ioctlsocket(s, FIONBIO, &nb) != 0) note("FIONBIO", WSAGetLastError());
  Conn* c = new_conn(s, true);
  if (!associate(s, c)) {
    close_conn(c);
    return c;
  }
  start_op(&c->connect_op);
  DWORD bytes = 0;
  BOOL ok = g_connect_ex(s, reinterpret_cast<sockaddr*>(&g_addr), sizeof g_addr, nullptr, 0, &bytes, &c->connect_op.ov);
  if (!submitted(&c->connect_op, ok != FALSE, bytes, ok ? 0 : WSAGetLastError(), "ConnectEx")) close_conn(c);
  return c;
}

void on_connect(Conn* c, DWORD err) {
  if (err != 0) {
    note("ConnectEx completion", err);
    close_conn(c);
    return;
  }
  st.connected++;
  if (setsockopt(c->s, SOL_SOCKET, SO_UPDATE_CONNECT_CONTEXT, nullptr, 0) != 0)
    note("SO_UPDATE_CONNECT_CONTEXT", WSAGetLastError());
  if (c->idle) post_recv0(c);
  else start_round(c);
}

void on_send(Conn* c, DWORD bytes, DWORD err) {
  c->sending = false;
  if (err != 0) {
    if (!c->closed) note("WSASend completion", err);
    close_conn(c);
    return;
  }
  c->inflight_off += bytes;
  if (c->inflight_off < c->inflight.size()) {
    // A short overlapped send: put the rest back in front of the queue.
    std::vector<char> rest(c->inflight.begin() + static_cast<std::ptrdiff_t>(c->inflight_off), c->inflight.end());
    rest.insert(rest.end(), c->out.begin(), c->out.end());
    c->out.swap(rest);
  }
  c->inflight.clear();
  if (c->closed) return;
  if (!c->client && c->peer_fin && c->out.empty()) {
    st.server_closed_clean++;
    close_conn(c);
    return;
  }
  flush(c);
  if (!c->client && !c->peer_fin && c->out.size() < kMaxOut) {
    // Backpressure released: drain what arrived meanwhile, then re-arm.
    if (!c->recv_op.pending) readable(c);
  }
}

unsigned long op_error(Op* op) {
  // The completion status is the NTSTATUS in Internal; 0 is success.
  LONG status = static_cast<LONG>(op->ov.Internal);
  if (status == 0) return 0;
  return g_nt_to_dos ? g_nt_to_dos(status) : static_cast<unsigned long>(status);
}

void complete(Op* op, DWORD bytes, unsigned long err) {
  end_op(op);
  Conn* c = op->conn;
  switch (op->kind) {
    case OpKind::Accept:
      on_accept(reinterpret_cast<AcceptOp*>(op), err);
      return;
    case OpKind::Connect:
      on_connect(c, err);
      return;
    case OpKind::Recv0:
      if (err != 0) {
        if (c->closed) {  // closed under a pending recv: an abort, not an error
          st.abort_recv++;
          st.abort_recv_error = err;
          st.abort_recv_status = static_cast<unsigned long>(c->recv_op.ov.Internal);
        } else {
          note("WSARecv(0) completion", err);
          close_conn(c);
        }
        return;
      }
      st.zero_recv_completions++;
      readable(c);
      return;
    case OpKind::Send:
      on_send(c, bytes, err);
      return;
  }
}

// Frees every closed connection none of whose ops is still in the kernel.
void reap() {
  for (size_t i = 0; i < g_conns.size();) {
    Conn* c = g_conns[i];
    if (c->closed && !c->recv_op.pending && !c->send_op.pending && !c->connect_op.pending) {
      g_conns[i] = g_conns.back();
      g_conns.pop_back();
      delete c;
      st.live_conns--;
    } else {
      i++;
    }
  }
}

// One turn: inline completions first, then one batch from the port.
void turn(DWORD timeout_ms) {
  while (!g_inline.empty()) {
    Inline in = g_inline.front();
    g_inline.pop_front();
    complete(in.op, in.bytes, 0);
  }
  OVERLAPPED_ENTRY entries[64];
  ULONG n = 0;
  st.gqcs_calls++;
  if (!GetQueuedCompletionStatusEx(g_port, entries, 64, &n, g_inline.empty() ? timeout_ms : 0, FALSE)) {
    DWORD e = GetLastError();
    if (e != WAIT_TIMEOUT) note("GetQueuedCompletionStatusEx", e);
    n = 0;
  }
  if (static_cast<long>(n) > st.max_batch) st.max_batch = static_cast<long>(n);
  for (ULONG i = 0; i < n; i++) {
    Op* op = reinterpret_cast<Op*>(entries[i].lpOverlapped);
    st.packets++;
    complete(op, entries[i].dwNumberOfBytesTransferred, op_error(op));
  }
  reap();
}

bool setup_listener() {
  g_listener = new_socket();
  if (g_listener == INVALID_SOCKET) return false;
  g_addr.sin_family = AF_INET;
  g_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  g_addr.sin_port = 0;
  int len = sizeof g_addr;
  if (bind(g_listener, reinterpret_cast<sockaddr*>(&g_addr), sizeof g_addr) != 0 ||
      listen(g_listener, SOMAXCONN) != 0 ||
      getsockname(g_listener, reinterpret_cast<sockaddr*>(&g_addr), &len) != 0) {
    note("bind/listen/getsockname", WSAGetLastError());
    return false;
  }
  GUID accept_guid = WSAID_ACCEPTEX, connect_guid = WSAID_CONNECTEX;
  DWORD bytes = 0;
  if (WSAIoctl(g_listener, SIO_GET_EXTENSION_FUNCTION_POINTER, &accept_guid, sizeof accept_guid, &g_accept_ex,
               sizeof g_accept_ex, &bytes, nullptr, nullptr) != 0 ||
      WSAIoctl(g_listener, SIO_GET_EXTENSION_FUNCTION_POINTER, &connect_guid, sizeof connect_guid, &g_connect_ex,
               sizeof g_connect_ex, &bytes, nullptr, nullptr) != 0) {
    note("WSAIoctl(AcceptEx/ConnectEx)", WSAGetLastError());
    return false;
  }
  // The listener's key is unused (ops carry their own context).
  if (CreateIoCompletionPort(reinterpret_cast<HANDLE>(g_listener), g_port, 0, 0) == nullptr) {
    note("CreateIoCompletionPort(listener)", GetLastError());
    return false;
  }
  if (SetFileCompletionNotificationModes(reinterpret_cast<HANDLE>(g_listener),
                                         FILE_SKIP_COMPLETION_PORT_ON_SUCCESS | FILE_SKIP_SET_EVENT_ON_HANDLE))
    st.skip_mode = true;
  for (AcceptOp& a : g_accepts) {
    a.op.kind = OpKind::Accept;
    a.op.conn = nullptr;
    if (!post_accept(&a)) return false;
  }
  return true;
}

// Closes the listener with the whole AcceptEx pool pending: every op must
// come back exactly once, as an abort.
bool close_listener_and_wait(ULONGLONG deadline) {
  g_listener_closed = true;
  if (closesocket(g_listener) != 0) note("closesocket(listener)", WSAGetLastError());
  g_listener = INVALID_SOCKET;
  while (st.pending_ops > 0 && GetTickCount64() < deadline) turn(100);
  return st.pending_ops == 0;
}

void print_stats(const char* mode) {
  std::printf(
      "mode=%s\nskip_mode=%d\naccepted=%ld\nconnected=%ld\nclients_done=%ld\nserver_closed_clean=%ld\n"
      "bytes_echoed=%lld\nbytes_verified=%lld\nzero_recv_completions=%ld\ninline_completions=%ld\n"
      "packets=%ld\ngqcs_calls=%ld\nmax_batch=%ld\nmismatches=%ld\nerrors=%ld\nabort_recv=%ld\n"
      "abort_recv_error=%lu\nabort_recv_status=0x%08lx\nabort_accept=%ld\nabort_accept_error=%lu\n"
      "abort_accept_status=0x%08lx\nlive_conns=%ld\npending_ops=%ld\n",
      mode, st.skip_mode ? 1 : 0, st.accepted, st.connected, st.clients_done, st.server_closed_clean, st.bytes_echoed,
      st.bytes_verified, st.zero_recv_completions, st.inline_completions, st.packets, st.gqcs_calls, st.max_batch,
      st.mismatches, st.errors, st.abort_recv, st.abort_recv_error, st.abort_recv_status, st.abort_accept,
      st.abort_accept_error, st.abort_accept_status,
      st.live_conns, st.pending_ops);
  std::fflush(stdout);
}

// mingw-w64 declares no RIO: the documented ABI values, declared here.
// {8509E081-96DD-4005-B165-9E2EE8C79E3F}
const GUID kWsaidMultipleRio = {0x8509e081, 0x96dd, 0x4005, {0xb1, 0x65, 0x9e, 0x2e, 0xe8, 0xc7, 0x9e, 0x3f}};
constexpr DWORD kSioGetMultipleExtensionFunctionPointer = 0xC8000024;  // _WSAIORW(IOC_WS2, 36)
constexpr DWORD kWsaFlagRegisteredIo = 0x100;
// RIO_EXTENSION_FUNCTION_TABLE: cbSize, then 13 function pointers
// (RIOReceive ... RIOResizeRequestQueue); only its size matters to a probe.
struct RioTable {
  DWORD cbSize;
  void* fns[13];
};

int rio_probe() {
  struct Try {
    const char* name;
    DWORD flags;
  } tries[] = {{"registered_io_socket", WSA_FLAG_OVERLAPPED | kWsaFlagRegisteredIo}, {"plain_socket", WSA_FLAG_OVERLAPPED}};
  bool present = false;
  for (const Try& t : tries) {
    SOCKET s = WSASocketW(AF_INET, SOCK_STREAM, IPPROTO_TCP, nullptr, 0, t.flags);
    if (s == INVALID_SOCKET) {
      std::printf("rio_%s=socket_error:%d\n", t.name, WSAGetLastError());
      continue;
    }
    GUID guid = kWsaidMultipleRio;
    RioTable table;
    std::memset(&table, 0, sizeof table);
    table.cbSize = sizeof table;
    DWORD bytes = 0;
    int r = WSAIoctl(s, kSioGetMultipleExtensionFunctionPointer, &guid, sizeof guid, &table, sizeof table, &bytes,
                     nullptr, nullptr);
    if (r == 0) {
      present = true;
      std::printf("rio_%s=present bytes=%lu\n", t.name, bytes);
    } else {
      std::printf("rio_%s=absent wsa_error=%d\n", t.name, WSAGetLastError());
    }
    closesocket(s);
  }
  std::printf("rio=%s\nresult=ok\n", present ? "present" : "absent");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  if (argc < 2) {
    std::fprintf(stderr, "usage: iocp_echo selftest [conns] [rounds] | serve <portfile> <conns> <seconds>\n");
    return 2;
  }
  std::string mode = argv[1];
  if (mode == "rio-probe") {
    WSADATA w;
    if (WSAStartup(MAKEWORD(2, 2), &w) != 0) return 1;
    int r = rio_probe();
    WSACleanup();
    return r;
  }
  HMODULE ntdll = GetModuleHandleW(L"ntdll.dll");
  if (ntdll) g_nt_to_dos = reinterpret_cast<RtlNtStatusToDosErrorFn>(
                 reinterpret_cast<void*>(GetProcAddress(ntdll, "RtlNtStatusToDosError")));
  WSADATA wsa;
  if (WSAStartup(MAKEWORD(2, 2), &wsa) != 0) {
    std::printf("error=WSAStartup\n");
    return 1;
  }
  g_port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, nullptr, 0, 1);
  if (g_port == nullptr) {
    std::printf("error=CreateIoCompletionPort:%lu\n", GetLastError());
    return 1;
  }
  if (!setup_listener()) {
    print_stats(mode.c_str());
    return 1;
  }
  bool ok = true;
  if (mode == "selftest") {
    int conns = argc > 2 ? std::atoi(argv[2]) : 32;
    g_rounds = argc > 3 ? std::atoi(argv[3]) : 8;
    ULONGLONG deadline = GetTickCount64() + 60000;
    for (int i = 0; i < conns; i++) start_client();
    while (st.clients_done + st.mismatches + st.errors < conns && GetTickCount64() < deadline) turn(100);
    // Let the server sides see the FINs and close.
    while (st.server_closed_clean < conns && st.errors == 0 && GetTickCount64() < deadline) turn(100);
    bool echo_ok = st.clients_done == conns && st.server_closed_clean == conns;

    // Abort check 1: an idle connection whose server side is closed with its
    // zero-byte recv pending.
    long accepted_before = st.accepted;
    Conn* idle = start_client();
    if (idle) idle->idle = true;
    while ((st.accepted == accepted_before || st.connected <= conns) && GetTickCount64() < deadline) turn(100);
    Conn* victim = nullptr;
    for (Conn* c : g_conns)
      if (!c->client && !c->closed && c->recv_op.pending) victim = c;
    if (victim) close_conn(victim);
    while (st.abort_recv == 0 && GetTickCount64() < deadline) turn(100);
    // The idle client sees EOF from the close and closes too.
    while (st.live_conns > 0 && GetTickCount64() < deadline) turn(100);

    // Abort check 2: the listener closed under the AcceptEx pool.
    bool drained = close_listener_and_wait(deadline);
    reap();
    ok = echo_ok && drained && st.mismatches == 0 && st.errors == 0 && st.abort_recv == 1 &&
         st.abort_accept == kAcceptPool && st.live_conns == 0 && st.pending_ops == 0;
  } else if (mode == "serve" && argc >= 5) {
    long want = std::atol(argv[3]);
    ULONGLONG deadline = GetTickCount64() + static_cast<ULONGLONG>(std::atol(argv[4])) * 1000;
    // Written aside and renamed, so a reader never sees a partial port.
    std::string tmp = std::string(argv[2]) + ".tmp";
    FILE* pf = std::fopen(tmp.c_str(), "w");
    if (!pf) {
      std::printf("error=portfile\n");
      return 1;
    }
    std::fprintf(pf, "%u\n", ntohs(g_addr.sin_port));
    std::fclose(pf);
    if (!MoveFileExA(tmp.c_str(), argv[2], MOVEFILE_REPLACE_EXISTING)) {
      std::printf("error=portfile rename:%lu\n", GetLastError());
      return 1;
    }
    while (st.server_closed_clean < want && st.errors == 0 && GetTickCount64() < deadline) turn(100);
    bool served = st.server_closed_clean == want;
    while (st.live_conns > 0 && GetTickCount64() < deadline) turn(100);
    bool drained = close_listener_and_wait(deadline);
    reap();
    ok = served && drained && st.errors == 0 && st.abort_accept == kAcceptPool && st.live_conns == 0;
  } else {
    std::fprintf(stderr, "unknown mode %s\n", mode.c_str());
    return 2;
  }
  print_stats(mode.c_str());
  std::printf("result=%s\n", ok ? "ok" : "FAILED");
  CloseHandle(g_port);
  WSACleanup();
  return ok ? 0 : 1;
}
