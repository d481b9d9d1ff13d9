// Windows side of common/os_memory.h: send slabs straight from VirtualAlloc,
// so a released slab goes back to the OS at once (the CRT heap would keep it).
#include <windows.h>

#include "common/os_memory.h"

namespace fastport {

uint8_t* os_map_pages(size_t bytes) {
  // Committed pages are zero-filled by the OS.
  return static_cast<uint8_t*>(VirtualAlloc(nullptr, bytes, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE));
}

void os_unmap_pages(uint8_t* p, size_t bytes) {
  (void)bytes;  // MEM_RELEASE frees the whole reservation and wants size 0
  if (p != nullptr) VirtualFree(p, 0, MEM_RELEASE);
}

void os_trim_heap() {}  // the CRT heap gives large blocks back by itself

}  // namespace fastport
