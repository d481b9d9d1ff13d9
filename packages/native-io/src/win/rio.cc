// The rio engine's entry: the Registered I/O function table, fetched with
// WSAIoctl(SIO_GET_MULTIPLE_EXTENSION_FUNCTION_POINTER, WSAID_MULTIPLE_RIO)
// on a WSA_FLAG_REGISTERED_IO socket. Where the table is absent (Wine
// answers WSAEOPNOTSUPP) init() fails with -EOPNOTSUPP, so createEngine({kind:
// 'rio'}) fails with a clear error and auto moves on to iocp. The RIO
// backend itself (registered buffers, RQ/CQ per loop notified through IOCP)
// is not written yet: where the table is present init() says so (-ENOSYS).
#include <winsock2.h>
#include <ws2tcpip.h>
#include <mswsock.h>
#include <windows.h>

#include <cerrno>
#include <cstring>
#include <new>

#include "common/backend.h"
#include "win/rio.h"
#include "win/wsa_errno.h"

namespace fastport {

namespace {

// mingw-w64 declares no RIO: the documented ABI values, declared here.
// WSAID_MULTIPLE_RIO {8509E081-96DD-4005-B165-9E2EE8C79E3F}
const GUID kWsaidMultipleRio = {0x8509e081, 0x96dd, 0x4005, {0xb1, 0x65, 0x9e, 0x2e, 0xe8, 0xc7, 0x9e, 0x3f}};
constexpr DWORD kSioGetMultipleExtensionFunctionPointer = 0xC8000024;  // _WSAIORW(IOC_WS2, 36)
constexpr DWORD kWsaFlagRegisteredIo = 0x100;

class RioBackend final : public Backend {
 public:
  const char* name() const override { return "rio"; }
  int init(const BackendConfig& config, CoreSink* sink) override {
    (void)config;
    (void)sink;
    RioFunctionTable table;
    int wsa = 0;
    int r = rio_load_table(&table, &wsa);
    if (r < 0) return r;
    return -ENOSYS;  // the table is there, the backend over it is not built yet
  }
  SocketHandle wait_fd() const override { return kInvalidSocket; }
  int poll(int) override { return -ENOSYS; }
  void submit() override {}
  void wake() override {}
  RecvRegion recv_region() const override { return RecvRegion{}; }
  void recv_consumed() override {}
  int add_listener(Listener*) override { return -ENOSYS; }
  void remove_listener(Listener*) override {}
  int start_connect(Conn*, const sockaddr*, socklen_t) override { return -ENOSYS; }
  long try_send_direct(Conn*, const IoSlice*, int) override { return -ENOSYS; }
  void send_ready(Conn*) override {}
  int shutdown_write(Conn*) override { return -ENOSYS; }
  void close(Conn*, CloseMode) override {}
  void set_receiving(Conn*, bool) override {}
};

}  // namespace

int rio_load_table(RioFunctionTable* out, int* wsa_error) {
  *wsa_error = 0;
  WSADATA wsa;
  int r = WSAStartup(MAKEWORD(2, 2), &wsa);
  if (r != 0) {
    *wsa_error = r;
    return -wsa_errno(r);
  }
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
  }
  closesocket(s);
  WSACleanup();
  return result;
}

Backend* new_rio_backend() { return new (std::nothrow) RioBackend(); }

}  // namespace fastport
