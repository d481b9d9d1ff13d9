// The portable engine core: connections (slot + generation ids), send queues
// of 64 KiB chunks, the close state machine, the command stream from JS and
// the event records to JS. One Loop per backend instance; the binding
// (binding/binding.cc, binding/engine_napi.cc) drives loops and crosses into JS.
//
// The JS <-> native wire (event records, commands, close kinds, error
// sentinels) is defined once in wire/wire.json and generated into
// common/wire.h and lib/wire.ts (scripts/gen-wire.js).
#ifndef FASTPORT_COMMON_ENGINE_CORE_H_
#define FASTPORT_COMMON_ENGINE_CORE_H_

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/backend.h"
#include "common/os_memory.h"
#include "common/sockets.h"
#include "common/wire.h"

namespace fastport {

struct Rec {
  uint32_t w[kRecWords];
};

// Send memory policy. A queue holds whole chunks: one queued byte pins
// kChunkSize, and every chunk pins its slab. So the loop counts chunks and
// slabs, not bytes, and gives idle slabs back to the OS: a slab whose chunks
// are all free and that stayed so for a whole epoch is unmapped (down to a
// small reserve, a bounded number per turn), so the memory of a peak (slow
// readers, a connection flood) goes back within about a second while a
// steady load that keeps reusing its slabs never pays for a remap.
constexpr size_t kSlabBytes = kChunkSize * kChunksPerSlab;
constexpr size_t kSlabReserve = 2;         // idle slabs a loop keeps
constexpr int kSlabIdleEpochMs = 500;      // idle this long (a whole epoch) before a slab goes
constexpr size_t kSlabReleasesPerTurn = 16;

// Chunks from slabs mapped straight from the OS (malloc would keep freed
// large blocks once its mmap threshold has adapted). Chunks are taken from
// partly used slabs first, so idle slabs stay idle and can go.
class ChunkPool {
 public:
  ChunkPool() = default;
  ~ChunkPool();
  ChunkPool(const ChunkPool&) = delete;
  ChunkPool& operator=(const ChunkPool&) = delete;

  SendChunk* get(Backend* be);  // nullptr when out of memory
  void put(SendChunk* c);
  // Unmaps idle slabs while more than `keep` are idle, at most `max`; tells
  // the backend first (Backend::on_send_slab_released). Returns how many.
  size_t release_idle(Backend* be, size_t keep, size_t max);

  size_t chunks_held() const { return held_; }
  size_t slab_count() const { return live_; }
  size_t idle_count() const { return idle_.size(); }
  // The fewest idle slabs since the previous call; starts counting again.
  size_t take_idle_low() {
    const size_t low = idle_low_;
    idle_low_ = idle_.size();
    return low;
  }

 private:
  struct Slab {
    uint8_t* base = nullptr;      // nullptr: index free for the next slab
    SendChunk* descs = nullptr;   // kChunksPerSlab descriptors
    SendChunk* free = nullptr;    // free chunks of this slab
    uint32_t nfree = 0;
    uint32_t pos = 0;             // index in partial_ or idle_ (by nfree)
  };
  int new_slab(Backend* be);  // index, or -1 when out of memory
  void relist(uint32_t idx, uint32_t nfree_before);
  std::vector<uint32_t>* list_of(uint32_t nfree);

  std::vector<Slab> slabs_;      // by slab index (stable: backends may have registered it)
  std::vector<uint32_t> holes_;  // indices of released slabs
  std::vector<uint32_t> partial_;
  std::vector<uint32_t> idle_;
  size_t held_ = 0;
  size_t live_ = 0;
  size_t idle_low_ = 0;
};

struct CoreConn : Conn {
  enum State : uint8_t { kFree = 0, kConnecting = 1, kOpen = 2, kClosing = 3 };
  State state = kFree;
  bool close_req = false;      // graceful close once the queue is empty
  bool shutdown_req = false;   // FIN once the queue is empty
  bool shut_done = false;
  bool errored = false;
  bool abort_req = false;
  bool in_dirty = false;
  bool in_sent = false;
  bool in_deferred = false;
  bool peer_fin = false;
  bool recv_paused = false;     // JS asked for no reading (PAUSE_RECV)
  bool be_recv_paused = false;  // what the backend was last told
  int err = 0;
  uint64_t sent_accum = 0;
  int32_t stage_first = -1;
  int32_t stage_last = -1;
  uint32_t stage_count = 0;
  uint64_t staged = 0;
  uint32_t chunks = 0;           // send chunks in the queue
  uint32_t chunks_reported = 0;  // as last told to JS (SENT w5)
};

struct CoreListener : Listener {
  SockOpts opts;
  bool closing = false;
};

struct EngineLimits {
  uint64_t max_pending = 10u << 20;
};

// A buffer that grew for a burst (a flood of commands or records) gives its
// memory back once it is empty again, instead of keeping the peak forever.
constexpr size_t kKeepBufferBytes = 8u << 20;  // above a steady load's batches (the JS command buffer is 1 MiB)
template <typename V>
void shrink_after_peak(V& v, size_t keep_bytes = kKeepBufferBytes) {
  if (!v.empty() || v.capacity() * sizeof(typename V::value_type) <= keep_bytes) return;
  V().swap(v);
  os_trim_heap();  // glibc keeps freed blocks below its adaptive mmap threshold
}

class EngineCore;

class Loop final : public CoreSink {
 public:
  Loop(EngineCore* engine, uint32_t index, uint32_t nloops);
  ~Loop() override;

  int init(const std::string& backend, size_t recv_bytes, bool inline_mode);
  Backend* backend() { return be_; }
  uint32_t index() const { return index_; }
  RecvRegion region() const { return region_; }
  LoopStats& stats() { return stats_; }

  // One poll + deferred work. Returns the backend's poll result.
  int poll_once(int timeout_ms);
  // Processes a command stream (already routed to this loop).
  void run_commands(const uint8_t* buf, size_t len);
  // One large send straight from the caller's memory (valid during the
  // call): a direct send attempt, the rest copied to the queue. Same rules as
  // a SEND command (inline mode only). Returns false for a dead id.
  bool send_now(uint32_t slot, uint32_t gen, const uint8_t* p, size_t n);
  // Deferred closes/shutdowns, SENT records, backend submit.
  void finish_turn();

  // Records produced by this loop (FIFO).
  std::vector<Rec>& records() { return recs_; }

  // JS-thread entry points (inline mode).
  int listen(const sockaddr* addr, socklen_t len, int backlog, bool reuse_port, bool v6only, const SockOpts& o,
             uint32_t listener_id, uint32_t* out_words /* family, port, addr[4] */);
  int close_listener(uint32_t listener_id);
  int connect(const sockaddr* remote, socklen_t rlen, const sockaddr* local, socklen_t llen, const SockOpts& o,
              uint32_t* slot, uint32_t* gen);
  // A connection that failed before it started (resolve error): its CLOSE record is queued.
  int connect_failed(int err, uint32_t* slot, uint32_t* gen);
  int set_options(uint32_t slot, uint32_t gen, const SockOpts& o);
  // Closes everything without records (engine teardown).
  void shutdown_all();
  size_t live() const { return live_; }
  size_t listeners() const { return listeners_.size(); }
  // JS thread: this loop still owes JS something (live connections or
  // listeners, or records posted and not yet taken), so the engine's libuv
  // handle must keep Node alive.
  bool keeps_js_alive();

  // ---- I/O thread mode (ioThreads >= 1). Everything above that is not
  // thread-safe runs on the loop thread: the JS thread reaches it through
  // run_sync() (listen, connect, options) or post_commands().
  bool threaded() const { return threaded_; }
  // Starts the thread; notify(ctx) is called (from the loop thread) whenever
  // records were posted (uv_async_send).
  int start_thread(void (*notify)(void*), void* ctx);
  void stop_thread();
  // Runs fn on the loop thread and waits for it (inline mode: runs it now).
  void run_sync(const std::function<void()>& fn);
  // Appends a command stream (copied) to the loop's inbox and wakes it.
  void post_commands(const uint8_t* buf, size_t len);
  // JS thread: moves the posted records to out; returns the posted data sequence seen.
  uint64_t take_posted(std::vector<Rec>* out);
  // JS thread: every record up to data sequence `seq` was handed to JS and processed.
  void release(uint64_t seq);
  uint64_t stat_submissions() const { return snap_subs_.load(std::memory_order_relaxed); }
  uint64_t stat_recv_calls() const { return snap_recvs_.load(std::memory_order_relaxed); }
  // Send memory: chunks held by queues and slabs mapped, in bytes (any thread
  // with I/O threads: a snapshot of the loop's last turn).
  uint64_t send_chunk_bytes() const {
    return threaded_ ? snap_chunks_.load(std::memory_order_relaxed) : pool_.chunks_held() * kChunkSize;
  }
  uint64_t send_slab_bytes() const {
    return threaded_ ? snap_slabs_.load(std::memory_order_relaxed) : pool_.slab_count() * kSlabBytes;
  }
  // Housekeeping (idle slab release). Runs at the end of every turn; when it
  // has work left for later, maintenance_wait_ms() says in how many ms it
  // wants to run again (0 = as soon as possible, -1 = nothing to do).
  // Inline mode: the binding calls maintain() from a timer, since an idle
  // loop has no turns; with I/O threads the loop bounds its wait by it.
  void maintain();
  int maintenance_wait_ms() const { return maint_wait_ms_; }

  // CoreSink
  Conn* on_accepted(Listener* l, SocketHandle fd, const sockaddr* addr, socklen_t addr_len) override;
  void on_listener_error(Listener* l, int err) override;
  void on_listener_closed(Listener* l) override;
  void on_connected(Conn* c) override;
  void on_data(Conn* c, const uint8_t* p, size_t n) override;
  void on_peer_fin(Conn* c) override;
  void on_sent(Conn* c, size_t n) override;
  void on_error(Conn* c, int err) override;
  void on_closed(Conn* c) override;
  void on_wake() override;

  CoreConn* lookup(uint32_t slot, uint32_t gen);

 private:
  CoreConn* alloc_conn();
  void free_conn(CoreConn* c);
  Rec& push(uint32_t type, const CoreConn* c);
  void defer(CoreConn* c);
  void note_sent(CoreConn* c, size_t n);
  void emit_sent(CoreConn* c);
  bool append_queue(CoreConn* c, const uint8_t* p, size_t n);
  void drop_queue(CoreConn* c);
  void flush_conn(CoreConn* c);
  void start_close(CoreConn* c, CloseMode mode);
  void apply_receiving(CoreConn* c);
  void note_held(CoreConn* c);

  EngineCore* engine_;
  uint32_t index_;
  uint32_t nloops_;
  Backend* be_ = nullptr;
  RecvRegion region_;
  LoopStats stats_;
  ChunkPool pool_;
  std::vector<CoreConn*> conns_;  // by local slot
  std::vector<uint32_t> free_slots_;
  size_t live_ = 0;
  std::vector<CoreListener*> listeners_;
  std::vector<Rec> recs_;
  std::vector<CoreConn*> dirty_;
  std::vector<CoreConn*> sent_;
  std::vector<CoreConn*> deferred_;
  struct Stage {
    const uint8_t* p;
    uint32_t n;
    int32_t next;
  };
  std::vector<Stage> stage_;
  bool tearing_down_ = false;
  int64_t slab_epoch_end_ms_ = 0;  // 0: no epoch running (no idle slab beyond the reserve)
  size_t slab_release_credit_ = 0; // idle slabs found idle for a whole epoch, still to release
  int maint_wait_ms_ = -1;

  void thread_main();
  bool handle_inbox();  // returns true if anything was done
  void post_records();
  // busy_ is what keeps_js_alive() reads. With a loop thread a rise is
  // published at once (JS must hold on from the moment it asked for a
  // connect or a listen) but a drop only in post_records(), together with
  // the CLOSE/LCLOSED records that announce it: JS letting go between the
  // drop and those records would let Node exit with them undelivered (and
  // destroy() or closeListener() pending forever).
  void update_busy() {
    const size_t now = live_ + listeners_.size();
    if (!threaded_ || now >= busy_.load(std::memory_order_relaxed)) {
      busy_.store(now, std::memory_order_relaxed);
    } else {
      busy_drop_due_ = true;
    }
  }
  bool busy_drop_due_ = false;

  bool threaded_ = false;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;       // loop thread waits (receive memory not yet released)
  std::condition_variable done_cv_;  // JS thread waits for run_sync tasks
  std::vector<uint8_t> in_cmds_;
  std::vector<uint8_t> work_cmds_;
  std::vector<const std::function<void()>*> in_tasks_;
  uint64_t task_seq_ = 0;
  uint64_t task_done_ = 0;
  std::vector<Rec> out_recs_;
  bool posted_data_ = false;  // recs_ holds DATA not yet posted
  uint64_t posted_seq_ = 0;   // under mu_
  std::atomic<uint64_t> released_seq_{0};
  std::atomic<bool> stop_{false};
  std::atomic<size_t> busy_{0};
  std::atomic<uint64_t> snap_subs_{0};
  std::atomic<uint64_t> snap_recvs_{0};
  std::atomic<uint64_t> snap_chunks_{0};
  std::atomic<uint64_t> snap_slabs_{0};
  void (*notify_)(void*) = nullptr;
  void* notify_ctx_ = nullptr;

  friend class EngineCore;
};

class EngineCore {
 public:
  EngineCore() = default;
  ~EngineCore();
  // Returns 0 or -errno (backend init failure).
  int init(const std::string& backend, uint32_t io_threads, const EngineLimits& limits, size_t recv_bytes);
  uint32_t nloops() const { return static_cast<uint32_t>(loops_.size()); }
  Loop* loop(uint32_t i) { return loops_[i]; }
  Loop* loop_of_slot(uint32_t slot) { return loops_[slot % loops_.size()]; }
  const EngineLimits& limits() const { return limits_; }
  uint32_t next_listener_id() { return next_listener_id_++; }

  // Routes a command stream to the loops (inline: runs it; threads: copies
  // each command to its loop's inbox).
  void run_commands(const uint8_t* buf, size_t len);
  // Next loop for an outbound connection (round robin).
  Loop* next_connect_loop() { return loops_[next_connect_++ % loops_.size()]; }
  void destroy();

 private:
  std::vector<Loop*> loops_;
  EngineLimits limits_;
  uint32_t next_listener_id_ = 1;
  uint32_t next_connect_ = 0;
  std::vector<std::vector<uint8_t>> route_;
};

}  // namespace fastport

#endif  // FASTPORT_COMMON_ENGINE_CORE_H_
