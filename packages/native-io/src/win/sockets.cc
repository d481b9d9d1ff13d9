// Winsock socket helpers (see common/sockets.h; the POSIX ones are in
// posix/sockets.cc). Sockets are overlapped (the IOCP backend needs it),
// non-blocking (the drain after a zero-byte recv and try_send_direct rely on
// WSAEWOULDBLOCK) and not inherited by child processes.
#include <winsock2.h>
#include <ws2tcpip.h>
#include <mstcpip.h>
#include <windows.h>

#include <cerrno>
#include <cstring>
#include <mutex>

#include "common/sockets.h"
#include "win/wsa_errno.h"

// Windows 10 1709+ TCP keepalive options (values from the Windows SDK's
// ws2ipdef.h; mingw-w64 10 does not declare them).
#ifndef TCP_KEEPIDLE
#define TCP_KEEPIDLE 3
#endif
#ifndef TCP_KEEPCNT
#define TCP_KEEPCNT 16
#endif
#ifndef TCP_KEEPINTVL
#define TCP_KEEPINTVL 17
#endif
#ifndef TCP_MAXRT
#define TCP_MAXRT 5
#endif

namespace fastport {

namespace {

// sock_* may run before any backend's init() (which also starts Winsock):
// start it once for the process. Never cleaned up: the process owns it.
int ensure_wsa() {
  static std::once_flag once;
  static int result = 0;
  std::call_once(once, [] {
    WSADATA wsa;
    int r = WSAStartup(MAKEWORD(2, 2), &wsa);
    result = r == 0 ? 0 : -wsa_errno(r);
  });
  return result;
}

int last_error() { return -wsa_errno(WSAGetLastError()); }

int set_int(SOCKET s, int level, int name, int value) {
  if (setsockopt(s, level, name, reinterpret_cast<const char*>(&value), sizeof value) != 0) return last_error();
  return 0;
}

int new_socket(int family, SOCKET* out) {
  int r = ensure_wsa();
  if (r != 0) return r;
  // WSA_FLAG_REGISTERED_IO (0x100, Windows 8+): the core does not know
  // which backend will run a socket, and the rio backend can only make a
  // request queue for a socket created with it; Winsock's other functions
  // (overlapped WSASend/WSARecv, AcceptEx, ConnectEx) take such sockets as
  // well. Where the flag is refused (WSAEINVAL), without it.
  constexpr DWORD kRegisteredIo = 0x100;
  const DWORD base_flags = WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT;
  SOCKET s = WSASocketW(family, SOCK_STREAM, IPPROTO_TCP, nullptr, 0, base_flags | kRegisteredIo);
  if (s == INVALID_SOCKET && WSAGetLastError() == WSAEINVAL)
    s = WSASocketW(family, SOCK_STREAM, IPPROTO_TCP, nullptr, 0, base_flags);
  if (s == INVALID_SOCKET) return last_error();
  u_long nb = 1;
  if (ioctlsocket(s, FIONBIO, &nb) != 0) {
    r = last_error();
    closesocket(s);
    return r;
  }
  *out = s;
  return 0;
}

// The per-option keepalive timings are Windows 10 1709+ (Wine 8 refuses them
// with WSAENOPROTOOPT); SIO_KEEPALIVE_VALS sets idle and interval on every
// Windows, with the probe count fixed by the OS (10).
int set_keepalive_timings(SOCKET s, const SockOpts& o) {
  if (o.keep_idle <= 0 && o.keep_intvl <= 0 && o.keep_cnt <= 0) return 0;
  int r = 0;
  if (o.keep_idle > 0) r = set_int(s, IPPROTO_TCP, TCP_KEEPIDLE, o.keep_idle);
  if (r == 0 && o.keep_intvl > 0) r = set_int(s, IPPROTO_TCP, TCP_KEEPINTVL, o.keep_intvl);
  if (r == 0 && o.keep_cnt > 0) r = set_int(s, IPPROTO_TCP, TCP_KEEPCNT, o.keep_cnt);
  if (r != -ENOPROTOOPT && r != -EINVAL) return r;
  tcp_keepalive ka;
  ka.onoff = 1;
  ka.keepalivetime = static_cast<ULONG>(o.keep_idle > 0 ? o.keep_idle : 7200) * 1000u;
  ka.keepaliveinterval = static_cast<ULONG>(o.keep_intvl > 0 ? o.keep_intvl : 1) * 1000u;
  DWORD bytes = 0;
  if (WSAIoctl(s, SIO_KEEPALIVE_VALS, &ka, sizeof ka, nullptr, 0, &bytes, nullptr, nullptr) != 0) return last_error();
  return 0;
}

}  // namespace

int sock_apply(SocketHandle fd, const SockOpts& o) {
  SOCKET s = static_cast<SOCKET>(fd);
  int first = 0;
  auto note = [&first](int r) {
    if (r != 0 && first == 0) first = r;
  };
  if (o.no_delay >= 0) note(set_int(s, IPPROTO_TCP, TCP_NODELAY, o.no_delay ? 1 : 0));
  if (o.keep_alive >= 0) {
    note(set_int(s, SOL_SOCKET, SO_KEEPALIVE, o.keep_alive ? 1 : 0));
    if (o.keep_alive) note(set_keepalive_timings(s, o));
  }
  // No TCP_USER_TIMEOUT on Windows: TCP_MAXRT bounds retransmission in
  // whole seconds (rounded up), the nearest equivalent.
  if (o.user_timeout_ms > 0) note(set_int(s, IPPROTO_TCP, TCP_MAXRT, (o.user_timeout_ms + 999) / 1000));
  if (o.sndbuf > 0) note(set_int(s, SOL_SOCKET, SO_SNDBUF, o.sndbuf));
  if (o.rcvbuf > 0) note(set_int(s, SOL_SOCKET, SO_RCVBUF, o.rcvbuf));
  return first;
}

int sock_resolve(const char* host, int port, sockaddr_storage* out, socklen_t* out_len) {
  if (port < 0 || port > 65535) return -EINVAL;
  int r = ensure_wsa();
  if (r != 0) return r;
  std::memset(out, 0, sizeof *out);
  sockaddr_in* v4 = reinterpret_cast<sockaddr_in*>(out);
  sockaddr_in6* v6 = reinterpret_cast<sockaddr_in6*>(out);
  if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    *out_len = sizeof(sockaddr_in);
    return 0;
  }
  if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    *out_len = sizeof(sockaddr_in6);
    return 0;
  }
  addrinfo hints;
  std::memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_ADDRCONFIG;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(host, nullptr, &hints, &res);
  if (rc != 0 || res == nullptr) return kErrResolveFailed;
  int result = kErrResolveFailed;
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    if (ai->ai_family == AF_INET && ai->ai_addrlen >= sizeof(sockaddr_in)) {
      std::memcpy(out, ai->ai_addr, sizeof(sockaddr_in));
      v4->sin_port = htons(static_cast<uint16_t>(port));
      *out_len = sizeof(sockaddr_in);
      result = 0;
      break;
    }
    if (ai->ai_family == AF_INET6 && ai->ai_addrlen >= sizeof(sockaddr_in6)) {
      std::memcpy(out, ai->ai_addr, sizeof(sockaddr_in6));
      v6->sin6_port = htons(static_cast<uint16_t>(port));
      *out_len = sizeof(sockaddr_in6);
      result = 0;
      break;
    }
  }
  freeaddrinfo(res);
  return result;
}

int sock_listen(const sockaddr* addr, socklen_t len, int backlog, bool reuse_port, bool v6only, SocketHandle* out,
                bool do_listen) {
  // Windows has no SO_REUSEPORT (load-balanced listeners on one port).
  if (reuse_port) return -EOPNOTSUPP;
  SOCKET s;
  int r = new_socket(addr->sa_family, &s);
  if (r != 0) return r;
  // Not SO_REUSEADDR: on Windows it lets another process bind the same port
  // and steal connections. Exclusive use is what POSIX SO_REUSEADDR
  // semantics amount to for a server (and TIME_WAIT does not block a bind here).
  r = set_int(s, SOL_SOCKET, SO_EXCLUSIVEADDRUSE, 1);
  if (r == 0 && addr->sa_family == AF_INET6) r = set_int(s, IPPROTO_IPV6, IPV6_V6ONLY, v6only ? 1 : 0);
  if (r == 0 && bind(s, addr, len) != 0) r = last_error();
  if (r == 0 && do_listen && listen(s, backlog) != 0) r = last_error();
  if (r != 0) {
    closesocket(s);
    return r;
  }
  *out = static_cast<SocketHandle>(s);
  return 0;
}

int sock_outbound(const sockaddr* remote, const sockaddr* local, socklen_t local_len, const SockOpts& o, SocketHandle* out) {
  SOCKET s;
  int r = new_socket(remote->sa_family, &s);
  if (r != 0) return r;
  r = sock_apply(static_cast<SocketHandle>(s), o);
  // ConnectEx needs a bound socket; the backend binds the wildcard when local is absent.
  if (r == 0 && local != nullptr && bind(s, local, local_len) != 0) r = last_error();
  if (r != 0) {
    closesocket(s);
    return r;
  }
  *out = static_cast<SocketHandle>(s);
  return 0;
}

int sock_local_name(SocketHandle fd, sockaddr_storage* out, socklen_t* len) {
  *len = sizeof *out;
  if (getsockname(static_cast<SOCKET>(fd), reinterpret_cast<sockaddr*>(out), len) != 0) return last_error();
  return 0;
}

int sock_peer_name(SocketHandle fd, sockaddr_storage* out, socklen_t* len) {
  *len = sizeof *out;
  if (getpeername(static_cast<SOCKET>(fd), reinterpret_cast<sockaddr*>(out), len) != 0) return last_error();
  return 0;
}

int sock_close(SocketHandle fd) {
  if (fd == kInvalidSocket) return 0;
  if (closesocket(static_cast<SOCKET>(fd)) != 0) return last_error();
  return 0;
}

void sock_addr_words(const sockaddr* a, uint32_t* w) {
  std::memset(w, 0, 6 * sizeof(uint32_t));
  if (a == nullptr) return;
  if (a->sa_family == AF_INET) {
    const sockaddr_in* v4 = reinterpret_cast<const sockaddr_in*>(a);
    w[0] = 4;
    w[1] = ntohs(v4->sin_port);
    std::memcpy(&w[2], &v4->sin_addr, 4);
  } else if (a->sa_family == AF_INET6) {
    const sockaddr_in6* v6 = reinterpret_cast<const sockaddr_in6*>(a);
    w[1] = ntohs(v6->sin6_port);
    if (IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr)) {
      w[0] = 4;
      std::memcpy(&w[2], reinterpret_cast<const uint8_t*>(&v6->sin6_addr) + 12, 4);
    } else {
      w[0] = 6;
      std::memcpy(&w[2], &v6->sin6_addr, 16);
    }
  }
}

void sock_bound_addr_words(const sockaddr* a, uint32_t* w) {
  if (a != nullptr && a->sa_family == AF_INET6) {
    const sockaddr_in6* v6 = reinterpret_cast<const sockaddr_in6*>(a);
    std::memset(w, 0, 6 * sizeof(uint32_t));
    w[0] = 6;
    w[1] = ntohs(v6->sin6_port);
    std::memcpy(&w[2], &v6->sin6_addr, 16);
    return;
  }
  sock_addr_words(a, w);
}

void sock_set_port(sockaddr_storage* ss, uint16_t port) {
  if (ss->ss_family == AF_INET) {
    reinterpret_cast<sockaddr_in*>(ss)->sin_port = htons(port);
  } else if (ss->ss_family == AF_INET6) {
    reinterpret_cast<sockaddr_in6*>(ss)->sin6_port = htons(port);
  }
}

}  // namespace fastport
