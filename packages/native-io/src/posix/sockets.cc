// POSIX socket helpers (see common/sockets.h).
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/sockets.h"

namespace fastport {

namespace {
int set_int(int fd, int level, int name, int value) {
  if (setsockopt(fd, level, name, &value, sizeof value) != 0) return -errno;
  return 0;
}
}  // namespace

int sock_apply(SocketHandle fd, const SockOpts& o) {
  int first = 0;
  auto note = [&first](int r) {
    if (r != 0 && first == 0) first = r;
  };
  if (o.no_delay >= 0) note(set_int(fd, IPPROTO_TCP, TCP_NODELAY, o.no_delay ? 1 : 0));
  if (o.keep_alive >= 0) {
    note(set_int(fd, SOL_SOCKET, SO_KEEPALIVE, o.keep_alive ? 1 : 0));
    if (o.keep_alive) {
      if (o.keep_idle > 0) note(set_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, o.keep_idle));
      if (o.keep_intvl > 0) note(set_int(fd, IPPROTO_TCP, TCP_KEEPINTVL, o.keep_intvl));
      if (o.keep_cnt > 0) note(set_int(fd, IPPROTO_TCP, TCP_KEEPCNT, o.keep_cnt));
    }
  }
  if (o.user_timeout_ms >= 0) note(set_int(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, o.user_timeout_ms));
  if (o.sndbuf > 0) note(set_int(fd, SOL_SOCKET, SO_SNDBUF, o.sndbuf));
  if (o.rcvbuf > 0) note(set_int(fd, SOL_SOCKET, SO_RCVBUF, o.rcvbuf));
  return first;
}

int sock_resolve(const char* host, int port, sockaddr_storage* out, socklen_t* out_len) {
  if (port < 0 || port > 65535) return -EINVAL;
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
  int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int r = set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1);
  if (r == 0 && reuse_port) r = set_int(fd, SOL_SOCKET, SO_REUSEPORT, 1);
  if (r == 0 && addr->sa_family == AF_INET6) r = set_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, v6only ? 1 : 0);
  if (r == 0 && bind(fd, addr, len) != 0) r = -errno;
  if (r == 0 && do_listen && listen(fd, backlog) != 0) r = -errno;
  if (r != 0) {
    ::close(fd);
    return r;
  }
  *out = fd;
  return 0;
}

int sock_outbound(const sockaddr* remote, const sockaddr* local, socklen_t local_len, const SockOpts& o, SocketHandle* out) {
  int fd = socket(remote->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int r = sock_apply(fd, o);
  if (r == 0 && local != nullptr && bind(fd, local, local_len) != 0) r = -errno;
  if (r != 0) {
    ::close(fd);
    return r;
  }
  *out = fd;
  return 0;
}

int sock_local_name(SocketHandle fd, sockaddr_storage* out, socklen_t* len) {
  *len = sizeof *out;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(out), len) != 0) return -errno;
  return 0;
}

int sock_peer_name(SocketHandle fd, sockaddr_storage* out, socklen_t* len) {
  *len = sizeof *out;
  if (getpeername(fd, reinterpret_cast<sockaddr*>(out), len) != 0) return -errno;
  return 0;
}

int sock_close(SocketHandle fd) {
  if (fd < 0) return 0;
  if (::close(fd) != 0 && errno != EINTR) return -errno;
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
