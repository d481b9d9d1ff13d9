// The system's RIO function table (see win/rio_table.h).
#include <winsock2.h>
#include <windows.h>

#include <cerrno>
#include <cstring>

#include "win/rio_table.h"
#include "win/wsa_errno.h"

namespace fastport {
namespace rio {

const char* table_name(TableKind k) { return k == TableKind::kEmulated ? "emulated" : "system"; }

int load_system_table(FunctionTable* out, int* wsa_error) {
  *wsa_error = 0;
  WSADATA wsa;
  int r = WSAStartup(MAKEWORD(2, 2), &wsa);
  if (r != 0) {
    *wsa_error = r;
    return -wsa_errno(r);
  }
  // The table is asked of a socket made for RIO (WSA_FLAG_REGISTERED_IO).
  SOCKET s = WSASocketW(AF_INET, SOCK_STREAM, IPPROTO_TCP, nullptr, 0, WSA_FLAG_OVERLAPPED | kWsaFlagRegisteredIo);
  if (s == INVALID_SOCKET) {
    *wsa_error = WSAGetLastError();
    WSACleanup();
    return -wsa_errno(*wsa_error);
  }
  GUID guid = kWsaidMultipleRio;
  std::memset(out, 0, sizeof *out);
  out->cbSize = sizeof *out;
  DWORD bytes = 0;
  int result = 0;
  if (WSAIoctl(s, kSioGetMultipleExtensionFunctionPointer, &guid, sizeof guid, out, sizeof *out, &bytes, nullptr,
               nullptr) != 0) {
    *wsa_error = WSAGetLastError();
    result = -wsa_errno(*wsa_error);
  } else if (out->RIOReceive == nullptr || out->RIOSend == nullptr || out->RIODequeueCompletion == nullptr ||
             out->RIONotify == nullptr || out->RIOCreateCompletionQueue == nullptr ||
             out->RIOCreateRequestQueue == nullptr || out->RIORegisterBuffer == nullptr) {
    *wsa_error = WSAEOPNOTSUPP;  // a table with holes is no table
    result = -EOPNOTSUPP;
  }
  closesocket(s);
  WSACleanup();
  return result;
}

}  // namespace rio
}  // namespace fastport
