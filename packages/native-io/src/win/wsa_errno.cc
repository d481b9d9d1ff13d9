// Winsock / Win32 error -> POSIX errno (see win/wsa_errno.h).
#include <winsock2.h>
#include <windows.h>

#include <cerrno>

#include "win/wsa_errno.h"

namespace fastport {

int wsa_errno(int e) {
  switch (e) {
    case WSAECONNRESET: return ECONNRESET;
    case WSAECONNABORTED: return ECONNABORTED;
    case WSAENETRESET: return ENETRESET;
    case WSAETIMEDOUT: return ETIMEDOUT;
    case WSAECONNREFUSED: return ECONNREFUSED;
    case WSAEHOSTUNREACH: return EHOSTUNREACH;
    case WSAENETUNREACH: return ENETUNREACH;
    case WSAENETDOWN: return ENETDOWN;
#ifdef EHOSTDOWN
    case WSAEHOSTDOWN: return EHOSTDOWN;
#endif
    case WSAEADDRINUSE: return EADDRINUSE;
    case WSAEADDRNOTAVAIL: return EADDRNOTAVAIL;
    case WSAEAFNOSUPPORT: return EAFNOSUPPORT;
    case WSAEPROTONOSUPPORT: return EPROTONOSUPPORT;
    case WSAEOPNOTSUPP: return EOPNOTSUPP;
    case WSAENOBUFS: return ENOBUFS;
    case WSAEMFILE: return EMFILE;
    case WSAENOTCONN: return ENOTCONN;
    case WSAEISCONN: return EISCONN;
    case WSAESHUTDOWN: return EPIPE;
    case WSAEMSGSIZE: return EMSGSIZE;
    case WSAEINVAL: return EINVAL;
    case WSAENOPROTOOPT: return ENOPROTOOPT;
    case WSAEFAULT: return EFAULT;
    case WSAEACCES: return EACCES;
    case WSAENOTSOCK: return ENOTSOCK;
    case WSAEBADF: return EBADF;
    case WSAEWOULDBLOCK: return EAGAIN;
    case WSAEINPROGRESS: return EINPROGRESS;
    case WSAEALREADY: return EALREADY;
    case WSAEINTR: return EINTR;
    case WSA_OPERATION_ABORTED: return ECANCELED;
    case WSA_NOT_ENOUGH_MEMORY: return ENOMEM;
    case ERROR_NETNAME_DELETED: return ECONNRESET;  // Win32 codes some paths report as-is
    case ERROR_CONNECTION_REFUSED: return ECONNREFUSED;
    case ERROR_CONNECTION_ABORTED: return ECONNABORTED;
    case ERROR_SEM_TIMEOUT: return ETIMEDOUT;
    default: return EIO;
  }
}

}  // namespace fastport
