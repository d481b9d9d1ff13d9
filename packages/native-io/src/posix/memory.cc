// POSIX side of common/os_memory.h.
#include "common/os_memory.h"

#include <sys/mman.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace fastport {

uint8_t* os_map_pages(size_t bytes) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? nullptr : static_cast<uint8_t*>(p);
}

void os_unmap_pages(uint8_t* p, size_t bytes) {
  munmap(p, bytes);  // fails only for a range that os_map_pages did not return
}

void os_trim_heap() {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

}  // namespace fastport
