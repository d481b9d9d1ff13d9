// Windows spelling of the types the backend contract (common/backend.h) uses.
#ifndef FASTPORT_WIN_PLATFORM_H_
#define FASTPORT_WIN_PLATFORM_H_

#include <winsock2.h>
#include <ws2tcpip.h>

#include <cstdint>

namespace fastport {

using SocketHandle = intptr_t;  // SOCKET
constexpr SocketHandle kInvalidSocket = -1;

}  // namespace fastport

#endif  // FASTPORT_WIN_PLATFORM_H_
