// Registered I/O (RIO) as Microsoft documents it (mswsockdef.h / mswsock.h;
// mingw-w64 declares none of it).
#ifndef FASTPORT_WIN_RIO_H_
#define FASTPORT_WIN_RIO_H_

#include <winsock2.h>

#include "common/backend.h"

namespace fastport {

// RIO_EXTENSION_FUNCTION_TABLE: cbSize, then the 13 functions in this order.
struct RioFunctionTable {
  DWORD cbSize;
  void* RIOReceive;
  void* RIOReceiveEx;
  void* RIOSend;
  void* RIOSendEx;
  void* RIOCloseCompletionQueue;
  void* RIOCreateCompletionQueue;
  void* RIOCreateRequestQueue;
  void* RIODequeueCompletion;
  void* RIODeregisterBuffer;
  void* RIONotify;
  void* RIORegisterBuffer;
  void* RIOResizeCompletionQueue;
  void* RIOResizeRequestQueue;
};

// Fetches the table. 0, or -errno with *wsa_error the Winsock code
// (WSAEOPNOTSUPP where there is no RIO, as under Wine).
int rio_load_table(RioFunctionTable* out, int* wsa_error);

// nullptr only when out of memory. init(): -EOPNOTSUPP without the table,
// -ENOSYS with it (the backend over the table is not built yet).
Backend* new_rio_backend();

}  // namespace fastport

#endif  // FASTPORT_WIN_RIO_H_
