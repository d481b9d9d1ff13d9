// The AcceptEx / ConnectEx steps both Windows backends (iocp, rio) take the
// same way: loading the extension functions, the address block AcceptEx
// fills, the accepted socket's context, and the bind ConnectEx requires.
// Each returns 0 or -errno (Winsock codes mapped by wsa_errno).
#ifndef FASTPORT_WIN_WINSOCK_EXT_H_
#define FASTPORT_WIN_WINSOCK_EXT_H_

#include <winsock2.h>
#include <ws2tcpip.h>
#include <mswsock.h>

#include <cstring>

#include "common/backend.h"
#include "win/wsa_errno.h"

namespace fastport {

// AcceptEx's room per address: the largest sockaddr plus the 16 bytes it requires.
constexpr DWORD kAcceptAddrBytes = sizeof(sockaddr_storage) + 16;

inline int load_extension(SOCKET s, GUID guid, void* fn, DWORD fn_size) {
  DWORD bytes = 0;
  if (WSAIoctl(s, SIO_GET_EXTENSION_FUNCTION_POINTER, &guid, sizeof guid, fn, fn_size, &bytes, nullptr, nullptr) != 0)
    return -wsa_errno(WSAGetLastError());
  return 0;
}

// A listening socket's family and its AcceptEx / GetAcceptExSockaddrs.
inline int load_accept_ex(SOCKET ls, int* family, LPFN_ACCEPTEX* accept_ex, LPFN_GETACCEPTEXSOCKADDRS* get_addrs) {
  sockaddr_storage ss;
  int len = sizeof ss;
  if (getsockname(ls, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return -wsa_errno(WSAGetLastError());
  *family = ss.ss_family;
  int r = load_extension(ls, WSAID_ACCEPTEX, accept_ex, sizeof *accept_ex);
  if (r == 0) r = load_extension(ls, WSAID_GETACCEPTEXSOCKADDRS, get_addrs, sizeof *get_addrs);
  return r;
}

// The peer address AcceptEx wrote into `addrs`; 0 when it gave none that fits.
inline socklen_t accepted_peer(LPFN_GETACCEPTEXSOCKADDRS get_addrs, char* addrs, sockaddr_storage* peer) {
  sockaddr* local = nullptr;
  sockaddr* remote = nullptr;
  int llen = 0, rlen = 0;
  get_addrs(addrs, 0, kAcceptAddrBytes, kAcceptAddrBytes, &local, &llen, &remote, &rlen);
  if (remote == nullptr || rlen <= 0 || static_cast<size_t>(rlen) > sizeof *peer) return 0;
  std::memcpy(peer, remote, static_cast<size_t>(rlen));
  return rlen;
}

// An AcceptEx socket becomes a normal one (getpeername, shutdown work) and non-blocking.
inline int adopt_accepted(SOCKET s, SOCKET ls) {
  u_long nb = 1;
  if (setsockopt(s, SOL_SOCKET, SO_UPDATE_ACCEPT_CONTEXT, reinterpret_cast<const char*>(&ls), sizeof ls) != 0 ||
      ioctlsocket(s, FIONBIO, &nb) != 0)
    return -wsa_errno(WSAGetLastError());
  return 0;
}

// ConnectEx needs a bound socket: binds the wildcard if the core did not
// bind, and loads ConnectEx into *connect_ex the first time.
inline int prepare_connect_ex(SOCKET s, int family, LPFN_CONNECTEX* connect_ex) {
  sockaddr_storage local;
  int llen = sizeof local;
  if (getsockname(s, reinterpret_cast<sockaddr*>(&local), &llen) != 0) {
    std::memset(&local, 0, sizeof local);
    local.ss_family = static_cast<ADDRESS_FAMILY>(family);
    llen = family == AF_INET6 ? static_cast<int>(sizeof(sockaddr_in6)) : static_cast<int>(sizeof(sockaddr_in));
    if (bind(s, reinterpret_cast<sockaddr*>(&local), llen) != 0) return -wsa_errno(WSAGetLastError());
  }
  if (*connect_ex == nullptr) return load_extension(s, WSAID_CONNECTEX, connect_ex, sizeof *connect_ex);
  return 0;
}

}  // namespace fastport

#endif  // FASTPORT_WIN_WINSOCK_EXT_H_
