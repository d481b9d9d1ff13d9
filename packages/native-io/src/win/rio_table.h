// Registered I/O (RIO) as Microsoft documents it (mswsockdef.h / mswsock.h:
// RIO_BUF, RIORESULT, RIO_NOTIFICATION_COMPLETION, the LPFN_RIO* signatures
// and RIO_EXTENSION_FUNCTION_TABLE). mingw-w64 declares none of it, so the
// ABI is declared here, in our own namespace and spelling (a later mingw
// that declares the SDK names, some of them macros, cannot clash), with the
// layouts checked by static_assert against the documented x64 sizes.
//
// Two tables implement it: the system's (WSAIoctl
// SIO_GET_MULTIPLE_EXTENSION_FUNCTION_POINTER with WSAID_MULTIPLE_RIO), and
// an emulation over overlapped WSARecv/WSASend (win/rio_emulated.cc) used
// only when asked for explicitly. The rio backend (win/rio.cc) is handed
// one of them and cannot tell which.
#ifndef FASTPORT_WIN_RIO_TABLE_H_
#define FASTPORT_WIN_RIO_TABLE_H_

#include <winsock2.h>
#include <windows.h>

#include <cstddef>
#include <cstdint>

namespace fastport {
namespace rio {

struct BufferIdT;
struct CqT;
struct RqT;
using BufferId = BufferIdT*;  // RIO_BUFFERID
using Cq = CqT*;              // RIO_CQ
using Rq = RqT*;              // RIO_RQ

// RIO_INVALID_BUFFERID, RIO_INVALID_CQ, RIO_INVALID_RQ
inline BufferId invalid_buffer_id() { return reinterpret_cast<BufferId>(static_cast<ULONG_PTR>(0xFFFFFFFF)); }
constexpr Cq kInvalidCq = nullptr;
constexpr Rq kInvalidRq = nullptr;

constexpr ULONG kCorruptCq = 0xFFFFFFFF;      // RIO_CORRUPT_CQ (RIODequeueCompletion)
constexpr DWORD kMaxCqSize = 0x8000000;       // RIO_MAX_CQ_SIZE
constexpr DWORD kMsgDontNotify = 0x00000001;  // RIO_MSG_DONT_NOTIFY
constexpr DWORD kMsgDefer = 0x00000002;       // RIO_MSG_DEFER
constexpr DWORD kMsgWaitAll = 0x00000004;     // RIO_MSG_WAITALL
constexpr DWORD kMsgCommitOnly = 0x00000008;  // RIO_MSG_COMMIT_ONLY

// RIO_BUF
struct Buf {
  rio::BufferId BufferId;
  ULONG Offset;
  ULONG Length;
};

// RIORESULT
struct Result {
  LONG Status;  // a Winsock error code, 0 on success
  ULONG BytesTransferred;
  ULONGLONG SocketContext;
  ULONGLONG RequestContext;
};

// RIO_NOTIFICATION_COMPLETION_TYPE
enum NotificationType : int { kEventCompletion = 1, kIocpCompletion = 2 };

// RIO_NOTIFICATION_COMPLETION
struct NotificationCompletion {
  NotificationType Type;
  union {
    struct {
      HANDLE EventHandle;
      BOOL NotifyReset;
    } Event;
    struct {
      HANDLE IocpHandle;
      PVOID CompletionKey;
      PVOID Overlapped;
    } Iocp;
  };
};

// The LPFN_RIO* signatures (PASCAL is WINAPI).
using ReceiveFn = BOOL(WINAPI*)(Rq, Buf* data, ULONG count, DWORD flags, PVOID request_context);
using ReceiveExFn = int(WINAPI*)(Rq, Buf* data, ULONG count, Buf* local, Buf* remote, Buf* control, Buf* flags_buf,
                                 DWORD flags, PVOID request_context);
using SendFn = BOOL(WINAPI*)(Rq, Buf* data, ULONG count, DWORD flags, PVOID request_context);
using SendExFn = BOOL(WINAPI*)(Rq, Buf* data, ULONG count, Buf* local, Buf* remote, Buf* control, Buf* flags_buf,
                               DWORD flags, PVOID request_context);
using CloseCompletionQueueFn = VOID(WINAPI*)(Cq);
using CreateCompletionQueueFn = Cq(WINAPI*)(DWORD queue_size, NotificationCompletion* notification);
using CreateRequestQueueFn = Rq(WINAPI*)(SOCKET s, ULONG max_outstanding_receive, ULONG max_receive_data_buffers,
                                         ULONG max_outstanding_send, ULONG max_send_data_buffers, Cq receive_cq,
                                         Cq send_cq, PVOID socket_context);
using DequeueCompletionFn = ULONG(WINAPI*)(Cq, Result* array, ULONG array_size);
using DeregisterBufferFn = VOID(WINAPI*)(BufferId);
using NotifyFn = INT(WINAPI*)(Cq);
using RegisterBufferFn = BufferId(WINAPI*)(PCHAR data, DWORD length);
using ResizeCompletionQueueFn = BOOL(WINAPI*)(Cq, DWORD queue_size);
using ResizeRequestQueueFn = BOOL(WINAPI*)(Rq, DWORD max_outstanding_receive, DWORD max_outstanding_send);

// RIO_EXTENSION_FUNCTION_TABLE: cbSize, then the 13 functions in this order.
struct FunctionTable {
  DWORD cbSize;
  ReceiveFn RIOReceive;
  ReceiveExFn RIOReceiveEx;
  SendFn RIOSend;
  SendExFn RIOSendEx;
  CloseCompletionQueueFn RIOCloseCompletionQueue;
  CreateCompletionQueueFn RIOCreateCompletionQueue;
  CreateRequestQueueFn RIOCreateRequestQueue;
  DequeueCompletionFn RIODequeueCompletion;
  DeregisterBufferFn RIODeregisterBuffer;
  NotifyFn RIONotify;
  RegisterBufferFn RIORegisterBuffer;
  ResizeCompletionQueueFn RIOResizeCompletionQueue;
  ResizeRequestQueueFn RIOResizeRequestQueue;
};

#if defined(_WIN64)
static_assert(sizeof(Buf) == 16, "RIO_BUF is 16 bytes on x64");
static_assert(sizeof(Result) == 24, "RIORESULT is 24 bytes on x64");
static_assert(offsetof(Result, SocketContext) == 8, "RIORESULT.SocketContext at 8");
static_assert(sizeof(NotificationCompletion) == 32, "RIO_NOTIFICATION_COMPLETION is 32 bytes on x64");
static_assert(offsetof(NotificationCompletion, Iocp.IocpHandle) == 8, "union at 8");
static_assert(sizeof(FunctionTable) == 8 + 13 * 8, "RIO_EXTENSION_FUNCTION_TABLE: cbSize + 13 pointers");
#endif

// WSAID_MULTIPLE_RIO {8509E081-96DD-4005-B165-9E2EE8C79E3F}
constexpr GUID kWsaidMultipleRio = {0x8509e081, 0x96dd, 0x4005, {0xb1, 0x65, 0x9e, 0x2e, 0xe8, 0xc7, 0x9e, 0x3f}};
constexpr DWORD kSioGetMultipleExtensionFunctionPointer = 0xC8000024;  // _WSAIORW(IOC_WS2, 36)
constexpr DWORD kWsaFlagRegisteredIo = 0x100;                          // WSA_FLAG_REGISTERED_IO

// Which table a rio engine runs on (engine.info.features.rioTable).
enum class TableKind { kSystem, kEmulated };
const char* table_name(TableKind k);

// The system's table. 0, or -errno with *wsa_error the Winsock code
// (WSAEOPNOTSUPP where there is no RIO, as under Wine).
int load_system_table(FunctionTable* out, int* wsa_error);

// The emulation (win/rio_emulated.cc): Microsoft's signatures and documented
// semantics over overlapped WSARecv/WSASend and a completion port with one
// thread per completion queue. Never chosen automatically.
const FunctionTable* emulated_table();

// The emulation's live objects (all zero once every queue is closed and
// every buffer deregistered), for the leak checks of the tests.
struct EmulatedLive {
  size_t cqs;
  size_t rqs;
  size_t requests;
  size_t buffers;
};
EmulatedLive emulated_live();

}  // namespace rio
}  // namespace fastport

#endif  // FASTPORT_WIN_RIO_TABLE_H_
