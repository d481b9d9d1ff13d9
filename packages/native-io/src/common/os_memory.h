// Memory straight from the OS, for what the core must be able to give back
// (send slabs). POSIX in posix/memory.cc.
#ifndef FASTPORT_COMMON_OS_MEMORY_H_
#define FASTPORT_COMMON_OS_MEMORY_H_

#include <cstddef>
#include <cstdint>

namespace fastport {

// `bytes` of zeroed, page-aligned memory, or nullptr when out of memory.
uint8_t* os_map_pages(size_t bytes);
// Returns memory from os_map_pages (same size) to the OS.
void os_unmap_pages(uint8_t* p, size_t bytes);
// Asks the C allocator to give its free memory back to the OS where it can
// (glibc keeps freed blocks below its adaptive mmap threshold); a no-op
// where there is no such call.
void os_trim_heap();

}  // namespace fastport

#endif  // FASTPORT_COMMON_OS_MEMORY_H_
