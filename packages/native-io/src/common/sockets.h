// Socket helpers the core uses to create listeners and outbound sockets and
// to apply socket options (POSIX in posix/sockets.cc).
#ifndef FASTPORT_COMMON_SOCKETS_H_
#define FASTPORT_COMMON_SOCKETS_H_

#include <cstdint>

#include "common/backend.h"
#include "common/wire.h"

namespace fastport {

// -1 = leave as is. keep_alive: 0 off, 1 on (with the timings >= 0 applied).
struct SockOpts {
  int no_delay = -1;
  int keep_alive = -1;
  int keep_idle = -1;
  int keep_intvl = -1;
  int keep_cnt = -1;
  int user_timeout_ms = -1;
  int sndbuf = -1;
  int rcvbuf = -1;
};

// sock_resolve returns kErrResolveFailed (common/wire.h) when a name does not resolve.

// Applies every option set in o. Returns 0 or the first -errno met (all are tried).
int sock_apply(SocketHandle fd, const SockOpts& o);

// Numeric address first, then getaddrinfo (blocking; names are rare here).
int sock_resolve(const char* host, int port, sockaddr_storage* out, socklen_t* out_len);

// socket + SO_REUSEADDR (+ SO_REUSEPORT) (+ IPV6_V6ONLY) + bind + listen, non-blocking.
// With do_listen false it only binds (a probe of whether the address is free).
int sock_listen(const sockaddr* addr, socklen_t len, int backlog, bool reuse_port, bool v6only, SocketHandle* out,
                bool do_listen = true);

// Non-blocking TCP socket of addr's family, options applied, bound to local if given.
int sock_outbound(const sockaddr* remote, const sockaddr* local, socklen_t local_len, const SockOpts& o, SocketHandle* out);

int sock_local_name(SocketHandle fd, sockaddr_storage* out, socklen_t* len);
int sock_peer_name(SocketHandle fd, sockaddr_storage* out, socklen_t* len);

// Closes, retrying nothing (close is never retried on Linux). Returns 0 or -errno.
int sock_close(SocketHandle fd);

// Writes {family (4|6), port, addr[4 words]} into w[0..5]; v4-mapped IPv6 is
// reported as IPv4.
void sock_addr_words(const sockaddr* a, uint32_t* w);
// The same, but an IPv6 address stays IPv6 even when v4-mapped (a listener
// reports its address as bound).
void sock_bound_addr_words(const sockaddr* a, uint32_t* w);
// Sets the port of an IPv4 or IPv6 address (other families: unchanged).
void sock_set_port(sockaddr_storage* ss, uint16_t port);

}  // namespace fastport

#endif  // FASTPORT_COMMON_SOCKETS_H_
