// Windows spelling of the types the backend contract (common/backend.h) uses.
#ifndef FASTPORT_WIN_PLATFORM_H_
#define FASTPORT_WIN_PLATFORM_H_

#include <winsock2.h>
#include <ws2tcpip.h>

#include <cstddef>
#include <cstdint>

namespace fastport {

using SocketHandle = intptr_t;  // SOCKET
constexpr SocketHandle kInvalidSocket = -1;

// The core fills IoSlice by the POSIX names (iov_base, iov_len); the IOCP
// backend hands the same array to WSASend as WSABUF[], so the layout must be
// WSABUF's ({ULONG len; CHAR* buf}): checked below, no copy per send.
struct IoSlice {
  ULONG iov_len;
  void* iov_base;
};
static_assert(sizeof(IoSlice) == sizeof(WSABUF), "IoSlice must be layout-compatible with WSABUF");
static_assert(offsetof(IoSlice, iov_len) == offsetof(WSABUF, len), "IoSlice::iov_len must be WSABUF::len");
static_assert(offsetof(IoSlice, iov_base) == offsetof(WSABUF, buf), "IoSlice::iov_base must be WSABUF::buf");

}  // namespace fastport

#endif  // FASTPORT_WIN_PLATFORM_H_
