// POSIX spelling of the types the backend contract (common/backend.h) uses.
#ifndef FASTPORT_POSIX_PLATFORM_H_
#define FASTPORT_POSIX_PLATFORM_H_

#include <sys/socket.h>
#include <sys/uio.h>

namespace fastport {

using SocketHandle = int;  // fd
constexpr SocketHandle kInvalidSocket = -1;
using IoSlice = struct iovec;  // { void* iov_base; size_t iov_len; }

}  // namespace fastport

#endif  // FASTPORT_POSIX_PLATFORM_H_
