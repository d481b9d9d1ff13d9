// The rio backend (win/rio.cc) beyond the common Backend contract.
#ifndef FASTPORT_WIN_RIO_H_
#define FASTPORT_WIN_RIO_H_

#include <cstddef>
#include <cstdint>

#include "common/backend.h"
#include "win/rio_table.h"

namespace fastport {

// On the system's RIO table: init() fails with -EOPNOTSUPP where it is
// absent (Wine). nullptr only when out of memory.
Backend* new_rio_backend();
// On the emulated table (win/rio_emulated.cc), for tests where there is no
// RIO. The backend's code is the same; only the table differs.
Backend* new_rio_emulated_backend();

// Debug counters: per-connection and per-listener contexts alive, RIO
// requests posted and not yet dequeued, and completion-port operations
// (AcceptEx, ConnectEx) in the kernel. All zero once everything is closed.
struct RioLive {
  size_t conns;
  size_t listeners;
  size_t requests;
  size_t ops;
};
RioLive rio_live(const Backend* backend);

}  // namespace fastport

#endif  // FASTPORT_WIN_RIO_H_
