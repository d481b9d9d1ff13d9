// The rio backend's registered memory (FastPort's RioBufferManager idea):
// memory is registered with RIO once, in large chunks, and handed out as
// fixed-size slots addressed by (buffer id, offset), so no request ever
// registers or pins anything itself.
#ifndef FASTPORT_WIN_RIO_BUFFERS_H_
#define FASTPORT_WIN_RIO_BUFFERS_H_

#include <winsock2.h>
#include <windows.h>

#include <cstddef>
#include <cstdint>
#include <new>

#include "win/rio_table.h"

namespace fastport {
namespace rio {

// One registered chunk: VirtualAlloc'ed (page aligned, never moves) and
// registered with RIORegisterBuffer for its whole life.
class RegisteredChunk {
 public:
  RegisteredChunk() = default;
  RegisteredChunk(const RegisteredChunk&) = delete;
  RegisteredChunk& operator=(const RegisteredChunk&) = delete;
  ~RegisteredChunk() { release(); }

  // 0 or -Winsock error (positive WSA code negated) / -ENOMEM as -1.
  int init(const FunctionTable* t, size_t bytes) {
    t_ = t;
    base_ = static_cast<uint8_t*>(VirtualAlloc(nullptr, bytes, MEM_COMMIT | MEM_RESERVE, PAGE_READWRITE));
    if (base_ == nullptr) return -1;
    bytes_ = bytes;
    id_ = t_->RIORegisterBuffer(reinterpret_cast<PCHAR>(base_), static_cast<DWORD>(bytes));
    if (id_ == invalid_buffer_id()) {
      const int e = WSAGetLastError();
      VirtualFree(base_, 0, MEM_RELEASE);
      base_ = nullptr;
      return -(e != 0 ? e : WSAENOBUFS);
    }
    return 0;
  }
  // Deregisters and frees. Only when no request can still use the memory.
  void release() {
    if (base_ == nullptr) return;
    t_->RIODeregisterBuffer(id_);
    VirtualFree(base_, 0, MEM_RELEASE);
    base_ = nullptr;
    id_ = invalid_buffer_id();
  }
  // Leaves the memory registered and mapped forever (requests may still
  // reference it and the kernel could write it).
  void abandon() { base_ = nullptr; }

  uint8_t* base() const { return base_; }
  size_t bytes() const { return bytes_; }
  BufferId id() const { return id_; }

 private:
  const FunctionTable* t_ = nullptr;
  uint8_t* base_ = nullptr;
  size_t bytes_ = 0;
  BufferId id_ = invalid_buffer_id();
};

// Fixed-size slots inside a registered chunk, from byte `first` on; a free
// stack of slot indices (LIFO: a slot just freed is warm in the cache).
class SlotPool {
 public:
  SlotPool() = default;
  SlotPool(const SlotPool&) = delete;
  SlotPool& operator=(const SlotPool&) = delete;
  ~SlotPool() { delete[] free_; }

  bool init(const RegisteredChunk* chunk, size_t first, uint32_t slot_size, uint32_t count) {
    chunk_ = chunk;
    first_ = first;
    size_ = slot_size;
    count_ = count;
    free_ = new (std::nothrow) int32_t[count];
    if (free_ == nullptr) return false;
    nfree_ = count;
    for (uint32_t i = 0; i < count; ++i) free_[i] = static_cast<int32_t>(count - 1 - i);
    return true;
  }
  int32_t take() { return nfree_ == 0 ? -1 : free_[--nfree_]; }
  void put(int32_t slot) {
    if (slot >= 0 && nfree_ < count_) free_[nfree_++] = slot;
  }
  uint32_t slot_size() const { return size_; }
  uint32_t count() const { return count_; }
  uint32_t free_count() const { return nfree_; }
  ULONG offset(int32_t slot) const { return static_cast<ULONG>(first_ + static_cast<size_t>(slot) * size_); }
  uint8_t* ptr(int32_t slot) const { return chunk_->base() + offset(slot); }
  Buf buf(int32_t slot, ULONG len) const {
    Buf b;
    b.BufferId = chunk_->id();
    b.Offset = offset(slot);
    b.Length = len;
    return b;
  }

 private:
  const RegisteredChunk* chunk_ = nullptr;
  size_t first_ = 0;
  uint32_t size_ = 0;
  uint32_t count_ = 0;
  int32_t* free_ = nullptr;
  uint32_t nfree_ = 0;
};

}  // namespace rio
}  // namespace fastport

#endif  // FASTPORT_WIN_RIO_BUFFERS_H_
