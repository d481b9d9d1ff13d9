// The portable engine core (see engine_core.h and backend.h).
#include "common/engine_core.h"

#include "common/backends.h"

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <new>

namespace fastport {

// ------------------------------------------------------------------ chunks

namespace {

uint8_t* map_slab() { return os_map_pages(kSlabBytes); }
void unmap_slab(uint8_t* p) { os_unmap_pages(p, kSlabBytes); }

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

ChunkPool::~ChunkPool() {
  for (Slab& s : slabs_) {
    if (s.base != nullptr) unmap_slab(s.base);
    delete[] s.descs;
  }
}

std::vector<uint32_t>* ChunkPool::list_of(uint32_t nfree) {
  if (nfree == kChunksPerSlab) return &idle_;
  if (nfree == 0) return nullptr;
  return &partial_;
}

// Moves slab idx to the list its free count now asks for.
void ChunkPool::relist(uint32_t idx, uint32_t nfree_before) {
  Slab& s = slabs_[idx];
  std::vector<uint32_t>* from = list_of(nfree_before);
  std::vector<uint32_t>* to = list_of(s.nfree);
  if (from == to) return;
  if (from != nullptr) {
    const uint32_t last = from->back();
    (*from)[s.pos] = last;
    slabs_[last].pos = s.pos;
    from->pop_back();
    if (from == &idle_ && idle_.size() < idle_low_) idle_low_ = idle_.size();
  }
  if (to != nullptr) {
    s.pos = static_cast<uint32_t>(to->size());
    to->push_back(idx);
  }
}

int ChunkPool::new_slab(Backend* be) {
  uint8_t* base = map_slab();
  if (base == nullptr) return -1;
  SendChunk* d = new (std::nothrow) SendChunk[kChunksPerSlab];
  if (d == nullptr) {
    unmap_slab(base);
    return -1;
  }
  uint32_t idx;
  if (!holes_.empty()) {
    idx = holes_.back();
    holes_.pop_back();
  } else {
    idx = static_cast<uint32_t>(slabs_.size());
    slabs_.emplace_back();
  }
  Slab& s = slabs_[idx];
  s.base = base;
  s.descs = d;
  s.free = nullptr;
  for (size_t i = kChunksPerSlab; i-- > 0;) {
    d[i].begin = d[i].end = 0;
    d[i].slab = idx;
    d[i].reserved = 0;
    d[i].data = base + i * kChunkSize;
    d[i].next = s.free;
    s.free = &d[i];
  }
  s.nfree = kChunksPerSlab;
  s.pos = static_cast<uint32_t>(idle_.size());
  idle_.push_back(idx);
  ++live_;
  if (be != nullptr) be->on_send_slab(idx, base, kSlabBytes);
  return static_cast<int>(idx);
}

SendChunk* ChunkPool::get(Backend* be) {
  uint32_t idx;
  if (!partial_.empty()) {
    idx = partial_.back();
  } else if (!idle_.empty()) {
    idx = idle_.back();
  } else {
    const int r = new_slab(be);
    if (r < 0) return nullptr;
    idx = static_cast<uint32_t>(r);
  }
  Slab& s = slabs_[idx];
  SendChunk* c = s.free;
  s.free = c->next;
  const uint32_t before = s.nfree--;
  relist(idx, before);
  ++held_;
  c->next = nullptr;
  c->begin = c->end = 0;
  return c;
}

void ChunkPool::put(SendChunk* c) {
  const uint32_t idx = c->slab;
  Slab& s = slabs_[idx];
  c->next = s.free;
  s.free = c;
  const uint32_t before = s.nfree++;
  relist(idx, before);
  --held_;
}

size_t ChunkPool::release_idle(Backend* be, size_t keep, size_t max) {
  size_t n = 0;
  while (n < max && idle_.size() > keep) {
    const uint32_t idx = idle_.back();
    idle_.pop_back();
    Slab& s = slabs_[idx];
    // Nothing can reference it: every chunk is free, and a chunk only comes
    // back to the pool once the kernel is done with it (on_sent / on_closed).
    if (be != nullptr) be->on_send_slab_released(idx, s.base, kSlabBytes);
    unmap_slab(s.base);
    delete[] s.descs;
    s = Slab{};
    holes_.push_back(idx);
    --live_;
    ++n;
  }
  if (idle_.size() < idle_low_) idle_low_ = idle_.size();
  return n;
}

int core_send_iov(const Conn* c, IoSlice* iov, int max_iov, size_t max_bytes, size_t* bytes) {
  int n = 0;
  size_t total = 0;
  for (SendChunk* k = c->sq_head; k != nullptr && n < max_iov && total < max_bytes; k = k->next) {
    size_t len = k->end - k->begin;
    if (len == 0) continue;
    if (len > max_bytes - total) len = max_bytes - total;
    iov[n].iov_base = k->data + k->begin;
    iov[n].iov_len = len;
    ++n;
    total += len;
  }
  if (bytes != nullptr) *bytes = total;
  return n;
}

// ------------------------------------------------------------------ loop

Loop::Loop(EngineCore* engine, uint32_t index, uint32_t nloops) : engine_(engine), index_(index), nloops_(nloops) {}

Loop::~Loop() {
  stop_thread();
  shutdown_all();
  delete be_;
  be_ = nullptr;
  for (CoreConn* c : conns_) {
    if (c != nullptr) drop_queue(c);
    delete c;
  }
  for (CoreListener* l : listeners_) delete l;
}

int Loop::init(const std::string& backend, size_t recv_bytes, bool inline_mode) {
  int err = 0;
  be_ = new_backend_named(backend.c_str(), &err);
  if (be_ == nullptr) return err;
  BackendConfig cfg;
  cfg.loop_index = index_;
  cfg.inline_mode = inline_mode;
  cfg.recv_bytes = recv_bytes;
  cfg.stats = &stats_;
  int r = be_->init(cfg, this);
  if (r < 0) {
    delete be_;
    be_ = nullptr;
    return r;
  }
  region_ = be_->recv_region();
  recs_.reserve(1024);
  return 0;
}

CoreConn* Loop::lookup(uint32_t slot, uint32_t gen) {
  const uint32_t local = slot / nloops_;
  if (slot % nloops_ != index_ || local >= conns_.size()) return nullptr;
  CoreConn* c = conns_[local];
  if (c == nullptr || c->gen != gen || c->state == CoreConn::kFree) return nullptr;
  return c;
}

CoreConn* Loop::alloc_conn() {
  uint32_t local;
  if (!free_slots_.empty()) {
    local = free_slots_.back();
    free_slots_.pop_back();
  } else {
    local = static_cast<uint32_t>(conns_.size());
    if (static_cast<uint64_t>(local) * nloops_ + index_ >= kSlotCount) return nullptr;
    CoreConn* c = new (std::nothrow) CoreConn();
    if (c == nullptr) return nullptr;
    c->slot = local * nloops_ + index_;
    c->gen = 1;
    conns_.push_back(c);
  }
  CoreConn* c = conns_[local];
  ++live_;
  update_busy();
  return c;
}

void Loop::free_conn(CoreConn* c) {
  drop_queue(c);
  const uint32_t slot = c->slot;
  const uint32_t gen = c->gen >= kMaxGeneration ? 1 : c->gen + 1;
  c->~CoreConn();
  new (c) CoreConn();
  c->slot = slot;
  c->gen = gen;
  free_slots_.push_back(slot / nloops_);
  --live_;
  update_busy();
}

Rec& Loop::push(uint32_t type, const CoreConn* c) {
  recs_.emplace_back();
  Rec& r = recs_.back();
  std::memset(&r, 0, sizeof r);
  r.w[0] = type;
  if (c != nullptr) {
    r.w[1] = c->slot;
    r.w[2] = c->gen;
  }
  return r;
}

void Loop::defer(CoreConn* c) {
  if (c->in_deferred) return;
  c->in_deferred = true;
  deferred_.push_back(c);
}

void Loop::note_sent(CoreConn* c, size_t n) {
  if (n == 0) return;
  c->sent_accum += n;
  if (!c->in_sent) {
    c->in_sent = true;
    sent_.push_back(c);
  }
}

// The chunk count changed: JS hears of it with this turn's SENT record.
void Loop::note_held(CoreConn* c) {
  if (!c->in_sent) {
    c->in_sent = true;
    sent_.push_back(c);
  }
}

void Loop::emit_sent(CoreConn* c) {
  c->in_sent = false;
  if (c->sent_accum == 0 && c->chunks == c->chunks_reported) return;
  Rec& r = push(kRecSent, c);
  r.w[3] = static_cast<uint32_t>(c->sent_accum & 0xffffffffu);
  r.w[4] = static_cast<uint32_t>(c->sent_accum >> 32);
  r.w[5] = c->chunks;
  c->chunks_reported = c->chunks;
  c->sent_accum = 0;
}

bool Loop::append_queue(CoreConn* c, const uint8_t* p, size_t n) {
  while (n > 0) {
    SendChunk* t = c->sq_tail;
    if (t == nullptr || t->end == kChunkSize) {
      SendChunk* k = pool_.get(be_);
      if (k == nullptr) return false;
      c->chunks++;
      note_held(c);
      if (t == nullptr) {
        c->sq_head = c->sq_tail = k;
      } else {
        t->next = k;
        c->sq_tail = k;
      }
      t = k;
    }
    size_t room = kChunkSize - t->end;
    size_t take = n < room ? n : room;
    std::memcpy(t->data + t->end, p, take);
    t->end += static_cast<uint32_t>(take);
    c->queued += take;
    p += take;
    n -= take;
  }
  return true;
}

void Loop::drop_queue(CoreConn* c) {
  SendChunk* k = c->sq_head;
  while (k != nullptr) {
    SendChunk* next = k->next;
    pool_.put(k);
    k = next;
  }
  c->sq_head = c->sq_tail = nullptr;
  c->queued = 0;
  c->chunks = 0;
}

void Loop::start_close(CoreConn* c, CloseMode mode) {
  if (c->state == CoreConn::kClosing || c->state == CoreConn::kFree) return;
  c->state = CoreConn::kClosing;
  c->stage_first = c->stage_last = -1;
  c->stage_count = 0;
  c->staged = 0;
  // Even for kAbort the queue is NOT dropped here: a send referencing its
  // chunks may still be in flight in the kernel (io_uring). The chunks go
  // back to the pool in on_closed() (free_conn), after every completion.
  be_->close(c, mode);  // may call on_closed synchronously
}

// Tells the backend what JS wants, only where the contract allows it: on a
// connected connection that can still receive (after a peer FIN or an error
// there is nothing to switch), and never from inside a sink callback (the
// callers are run_commands() and finish_turn()).
void Loop::apply_receiving(CoreConn* c) {
  if (c->state != CoreConn::kOpen || c->errored || c->peer_fin) return;
  if (c->recv_paused == c->be_recv_paused) return;
  c->be_recv_paused = c->recv_paused;
  be_->set_receiving(c, !c->recv_paused);
}

// ------------------------------------------------------------------ commands

void Loop::run_commands(const uint8_t* buf, size_t len) {
  size_t off = 0;
  const uint64_t max_pending = engine_->limits().max_pending;
  while (off + 16 <= len) {
    uint32_t h[4];
    std::memcpy(h, buf + off, sizeof h);
    const uint8_t* payload = buf + off + 16;
    const size_t n = h[3];
    const size_t next = off + 16 + ((n + 3) & ~static_cast<size_t>(3));
    if (next > len) break;  // malformed tail: ignore
    off = next;
    CoreConn* c = lookup(h[1], h[2]);
    if (c == nullptr) continue;
    switch (h[0]) {
      case kCmdSend: {
        if (n == 0 || c->state == CoreConn::kClosing || c->errored || c->close_req || c->shutdown_req) break;
        if (c->queued + c->staged + n > max_pending) {
          // The JS mirror never lets this happen; enforce it anyway.
          on_error(c, ENOBUFS);
          break;
        }
        stage_.push_back(Stage{payload, static_cast<uint32_t>(n), -1});
        const int32_t idx = static_cast<int32_t>(stage_.size() - 1);
        if (c->stage_last >= 0) {
          stage_[c->stage_last].next = idx;
        } else {
          c->stage_first = idx;
        }
        c->stage_last = idx;
        c->stage_count++;
        c->staged += n;
        if (!c->in_dirty) {
          c->in_dirty = true;
          dirty_.push_back(c);
        }
        break;
      }
      case kCmdShutdown:
      case kCmdClose:
        if (h[0] == kCmdShutdown) {
          c->shutdown_req = true;
        } else {
          c->close_req = true;
        }
        if (!c->in_dirty) {
          c->in_dirty = true;
          dirty_.push_back(c);
        }
        break;
      case kCmdAbort:
        c->abort_req = true;
        start_close(c, CloseMode::kAbort);
        break;
      case kCmdConnectTimeout:
        if (c->state == CoreConn::kConnecting) on_error(c, kErrConnectTimeout);
        break;
      case kCmdPauseRecv:
      case kCmdResumeRecv:
        c->recv_paused = h[0] == kCmdPauseRecv;
        apply_receiving(c);  // still connecting: on_connected() defers it
        break;
      default:
        break;
    }
  }
  for (size_t i = 0; i < dirty_.size(); ++i) {
    CoreConn* c = dirty_[i];
    if (!c->in_dirty) continue;
    flush_conn(c);
  }
  dirty_.clear();
  stage_.clear();
  finish_turn();
}

bool Loop::send_now(uint32_t slot, uint32_t gen, const uint8_t* p, size_t n) {
  CoreConn* c = lookup(slot, gen);
  if (c == nullptr || n == 0 || c->state == CoreConn::kClosing || c->errored || c->close_req || c->shutdown_req) return false;
  if (c->queued + n > engine_->limits().max_pending) {
    on_error(c, ENOBUFS);
    finish_turn();
    return false;
  }
  stage_.push_back(Stage{p, static_cast<uint32_t>(n), -1});
  const int32_t idx = static_cast<int32_t>(stage_.size() - 1);
  c->stage_first = c->stage_last = idx;
  c->stage_count = 1;
  c->staged = n;
  flush_conn(c);
  stage_.clear();
  finish_turn();
  return true;
}

void Loop::flush_conn(CoreConn* c) {
  c->in_dirty = false;
  if (c->state == CoreConn::kFree || c->state == CoreConn::kClosing || c->errored) {
    c->stage_first = c->stage_last = -1;
    c->stage_count = 0;
  c->staged = 0;
    return;
  }
  if (c->stage_count > 0) {
    size_t done = 0;
    if (c->queued == 0 && c->state == CoreConn::kOpen) {
      IoSlice iov[64];
      int cnt = 0;
      for (int32_t s = c->stage_first; s >= 0 && cnt < 64; s = stage_[s].next) {
        iov[cnt].iov_base = const_cast<uint8_t*>(stage_[s].p);
        iov[cnt].iov_len = stage_[s].n;
        ++cnt;
      }
      long r = be_->try_send_direct(c, iov, cnt);
      if (r < 0) {
        c->stage_first = c->stage_last = -1;
        c->stage_count = 0;
  c->staged = 0;
        on_error(c, static_cast<int>(-r));
        return;
      }
      done = static_cast<size_t>(r);
      note_sent(c, done);
    }
    bool ok = true;
    for (int32_t s = c->stage_first; s >= 0 && ok; s = stage_[s].next) {
      const Stage& st = stage_[s];
      if (done >= st.n) {
        done -= st.n;
        continue;
      }
      ok = append_queue(c, st.p + done, st.n - done);
      done = 0;
    }
    c->stage_first = c->stage_last = -1;
    c->stage_count = 0;
  c->staged = 0;
    if (!ok) {
      on_error(c, ENOMEM);
      return;
    }
    if (c->queued > 0 && c->state == CoreConn::kOpen) be_->send_ready(c);
  }
  if (c->queued == 0 && (c->close_req || (c->shutdown_req && !c->shut_done))) defer(c);
}

void Loop::finish_turn() {
  for (size_t i = 0; i < deferred_.size(); ++i) {
    CoreConn* c = deferred_[i];
    if (!c->in_deferred) continue;
    c->in_deferred = false;
    if (c->state == CoreConn::kFree || c->state == CoreConn::kClosing) continue;
    if (c->errored) {
      start_close(c, CloseMode::kSilent);
      continue;
    }
    if (c->state != CoreConn::kOpen) continue;
    apply_receiving(c);  // paused while connecting
    if (c->queued > 0) {
      be_->send_ready(c);  // after connect: bytes queued while connecting
      continue;
    }
    if (c->close_req) {
      start_close(c, CloseMode::kGraceful);
    } else if (c->shutdown_req && !c->shut_done) {
      c->shut_done = true;
      int r = be_->shutdown_write(c);
      if (r < 0 && r != -ENOTCONN) on_error(c, -r);
    }
  }
  deferred_.clear();
  for (size_t i = 0; i < sent_.size(); ++i) {
    CoreConn* c = sent_[i];
    if (c->in_sent) emit_sent(c);
  }
  sent_.clear();
  be_->submit();
  maintain();
}

void Loop::maintain() {
  if (slab_release_credit_ == 0 && pool_.idle_count() <= kSlabReserve) {
    slab_epoch_end_ms_ = 0;
    maint_wait_ms_ = -1;
    return;
  }
  const int64_t now = now_ms();
  if (slab_epoch_end_ms_ == 0) {
    // Idle slabs beyond the reserve: watch them for one epoch.
    slab_epoch_end_ms_ = now + kSlabIdleEpochMs;
    pool_.take_idle_low();
  } else if (now >= slab_epoch_end_ms_) {
    const size_t low = pool_.take_idle_low();
    slab_release_credit_ = low > kSlabReserve ? low - kSlabReserve : 0;
    slab_epoch_end_ms_ = now + kSlabIdleEpochMs;
  }
  if (slab_release_credit_ > 0) {
    const size_t max = slab_release_credit_ < kSlabReleasesPerTurn ? slab_release_credit_ : kSlabReleasesPerTurn;
    const size_t n = pool_.release_idle(be_, kSlabReserve, max);
    slab_release_credit_ = n < max ? 0 : slab_release_credit_ - n;
    if (slab_release_credit_ > 0) {
      maint_wait_ms_ = 0;
      return;
    }
  }
  if (pool_.idle_count() <= kSlabReserve) {
    slab_epoch_end_ms_ = 0;
    maint_wait_ms_ = -1;
    return;
  }
  const int64_t wait = slab_epoch_end_ms_ - now;
  maint_wait_ms_ = wait < 1 ? 1 : static_cast<int>(wait);
}

int Loop::poll_once(int timeout_ms) {
  int r = be_->poll(timeout_ms);
  finish_turn();
  return r;
}

// ------------------------------------------------------------------ JS-thread entry points

int Loop::listen(const sockaddr* addr, socklen_t len, int backlog, bool reuse_port, bool v6only, const SockOpts& o,
                 uint32_t listener_id, uint32_t* out_words) {
  SocketHandle fd = kInvalidSocket;
  int r = sock_listen(addr, len, backlog, reuse_port, v6only, &fd);
  if (r < 0) return r;
  sockaddr_storage ss;
  socklen_t sl = 0;
  r = sock_local_name(fd, &ss, &sl);
  if (r < 0) {
    sock_close(fd);
    return r;
  }
  // Report the bound address as bound (a v4-mapped bind stays IPv6 here).
  sock_bound_addr_words(reinterpret_cast<const sockaddr*>(&ss), out_words);
  CoreListener* l = new (std::nothrow) CoreListener();
  if (l == nullptr) {
    sock_close(fd);
    return -ENOMEM;
  }
  l->id = listener_id;
  l->fd = fd;
  l->opts = o;
  r = be_->add_listener(l);
  if (r < 0) {
    sock_close(fd);
    delete l;
    return r;
  }
  listeners_.push_back(l);
  update_busy();
  return 0;
}

int Loop::close_listener(uint32_t listener_id) {
  for (CoreListener* l : listeners_) {
    if (l->id == listener_id && !l->closing) {
      l->closing = true;
      be_->remove_listener(l);  // may call on_listener_closed now
      return 0;
    }
  }
  return -ENOENT;
}

int Loop::connect(const sockaddr* remote, socklen_t rlen, const sockaddr* local, socklen_t llen, const SockOpts& o,
                  uint32_t* slot, uint32_t* gen) {
  CoreConn* c = alloc_conn();
  if (c == nullptr) return -EMFILE;
  *slot = c->slot;
  *gen = c->gen;
  c->state = CoreConn::kConnecting;
  SocketHandle fd = kInvalidSocket;
  int r = sock_outbound(remote, local, llen, o, &fd);
  if (r == 0) {
    c->fd = fd;
    r = be_->start_connect(c, remote, rlen);
    if (r < 0) {
      sock_close(fd);
      c->fd = kInvalidSocket;
    }
  }
  if (r < 0) {
    // The outcome arrives as onClose, like any connect failure.
    c->errored = true;
    c->err = -r;
    c->state = CoreConn::kClosing;
    on_closed(c);
  }
  return 0;
}

int Loop::connect_failed(int err, uint32_t* slot, uint32_t* gen) {
  CoreConn* c = alloc_conn();
  if (c == nullptr) return -EMFILE;
  *slot = c->slot;
  *gen = c->gen;
  c->errored = true;
  c->err = err;
  c->state = CoreConn::kClosing;
  on_closed(c);
  return 0;
}

int Loop::set_options(uint32_t slot, uint32_t gen, const SockOpts& o) {
  CoreConn* c = lookup(slot, gen);
  if (c == nullptr || c->state == CoreConn::kClosing || c->fd == kInvalidSocket) return -ENOTCONN;
  return sock_apply(c->fd, o);
}

void Loop::shutdown_all() {
  if (be_ == nullptr || tearing_down_) return;
  tearing_down_ = true;
  std::vector<CoreListener*> ls = listeners_;
  for (CoreListener* l : ls) {
    if (!l->closing) {
      l->closing = true;
      be_->remove_listener(l);
    }
  }
  for (CoreConn* c : conns_) {
    if (c != nullptr && (c->state == CoreConn::kOpen || c->state == CoreConn::kConnecting)) {
      c->abort_req = true;
      start_close(c, CloseMode::kAbort);
    }
  }
  be_->submit();
  recs_.clear();
}

// ------------------------------------------------------------------ CoreSink

Conn* Loop::on_accepted(Listener* lb, SocketHandle fd, const sockaddr* addr, socklen_t addr_len) {
  CoreListener* l = static_cast<CoreListener*>(lb);
  if (tearing_down_ || l->closing) {
    sock_close(fd);
    return nullptr;
  }
  CoreConn* c = alloc_conn();
  if (c == nullptr) {
    sock_close(fd);
    on_listener_error(l, EMFILE);
    return nullptr;
  }
  c->fd = fd;
  c->state = CoreConn::kOpen;
  sock_apply(fd, l->opts);  // best effort: an option the kernel refuses does not kill the connection
  sockaddr_storage ss;
  socklen_t sl = 0;
  if (addr == nullptr || addr_len == 0) {
    if (sock_peer_name(fd, &ss, &sl) == 0) {
      addr = reinterpret_cast<const sockaddr*>(&ss);
    } else {
      addr = nullptr;
    }
  }
  Rec& r = push(kRecAccept, c);
  r.w[3] = l->id;
  sock_addr_words(addr, &r.w[4]);
  return c;
}

void Loop::on_listener_error(Listener* l, int err) {
  Rec& r = push(kRecListenerError, nullptr);
  r.w[3] = l->id;
  r.w[4] = static_cast<uint32_t>(err);
}

void Loop::on_listener_closed(Listener* lb) {
  CoreListener* l = static_cast<CoreListener*>(lb);
  if (!tearing_down_) {
    Rec& r = push(kRecListenerClosed, nullptr);
    r.w[3] = l->id;
  }
  for (size_t i = 0; i < listeners_.size(); ++i) {
    if (listeners_[i] == l) {
      listeners_.erase(listeners_.begin() + static_cast<long>(i));
      break;
    }
  }
  delete l;
  update_busy();
}

void Loop::on_connected(Conn* cb) {
  CoreConn* c = static_cast<CoreConn*>(cb);
  if (c->state != CoreConn::kConnecting) return;
  c->state = CoreConn::kOpen;
  sockaddr_storage ss;
  socklen_t sl = 0;
  Rec& r = push(kRecConnect, c);
  if (sock_peer_name(c->fd, &ss, &sl) == 0) sock_addr_words(reinterpret_cast<const sockaddr*>(&ss), &r.w[4]);
  if (c->queued > 0 || c->close_req || c->shutdown_req || c->recv_paused) defer(c);
}

void Loop::on_data(Conn* cb, const uint8_t* p, size_t n) {
  CoreConn* c = static_cast<CoreConn*>(cb);
  if (c->state != CoreConn::kOpen || n == 0) return;
  Rec& r = push(kRecData, c);
  r.w[3] = static_cast<uint32_t>(p - region_.base);
  r.w[4] = static_cast<uint32_t>(n);
  r.w[5] = index_;
  posted_data_ = true;
}

void Loop::on_peer_fin(Conn* cb) {
  CoreConn* c = static_cast<CoreConn*>(cb);
  if (c->peer_fin || c->state != CoreConn::kOpen) return;
  c->peer_fin = true;
  push(kRecEnd, c);
}

void Loop::on_sent(Conn* cb, size_t n) {
  CoreConn* c = static_cast<CoreConn*>(cb);
  if (n > c->queued) n = static_cast<size_t>(c->queued);  // never trust past the queue
  c->queued -= n;
  note_sent(c, n);
  while (n > 0 && c->sq_head != nullptr) {
    SendChunk* h = c->sq_head;
    size_t avail = h->end - h->begin;
    size_t take = n < avail ? n : avail;
    h->begin += static_cast<uint32_t>(take);
    n -= take;
    if (h->begin == h->end) {
      c->sq_head = h->next;
      if (c->sq_head == nullptr) c->sq_tail = nullptr;
      pool_.put(h);
      c->chunks--;
    }
  }
  if (c->queued == 0 && (c->close_req || (c->shutdown_req && !c->shut_done))) defer(c);
}

void Loop::on_error(Conn* cb, int err) {
  CoreConn* c = static_cast<CoreConn*>(cb);
  if (c->errored || c->state == CoreConn::kClosing || c->state == CoreConn::kFree) return;
  c->errored = true;
  c->err = err;
  defer(c);
}

void Loop::on_closed(Conn* cb) {
  CoreConn* c = static_cast<CoreConn*>(cb);
  if (c->state == CoreConn::kFree) return;
  if (!tearing_down_) {
    if (c->sent_accum > 0) emit_sent(c);
    Rec& r = push(kRecClose, c);
    r.w[3] = c->errored ? kCloseError : (c->abort_req ? kCloseAbort : kCloseGraceful);
    r.w[4] = static_cast<uint32_t>(c->errored ? c->err : 0);
  }
  c->fd = kInvalidSocket;
  free_conn(c);
}

void Loop::on_wake() {}

// ------------------------------------------------------------------ engine

Backend* new_backend_named(const char* name, int* err) {
  const BackendKind* kinds = nullptr;
  const size_t n = backend_kinds(&kinds);
  for (size_t i = 0; i < n; ++i) {
    if (std::strcmp(kinds[i].name, name) != 0) continue;
    Backend* be = kinds[i].make();
    *err = be == nullptr ? -ENOMEM : 0;
    return be;
  }
  *err = -EINVAL;
  return nullptr;
}

EngineCore::~EngineCore() { destroy(); }

int EngineCore::init(const std::string& backend, uint32_t io_threads, const EngineLimits& limits, size_t recv_bytes) {
  limits_ = limits;
  const uint32_t n = io_threads == 0 ? 1 : io_threads;
  for (uint32_t i = 0; i < n; ++i) {
    Loop* l = new (std::nothrow) Loop(this, i, n);
    if (l == nullptr) return -ENOMEM;
    loops_.push_back(l);
    int r = l->init(backend, recv_bytes, io_threads == 0);
    if (r < 0) return r;
  }
  return 0;
}

void EngineCore::run_commands(const uint8_t* buf, size_t len) {
  if (!loops_[0]->threaded()) {
    loops_[0]->run_commands(buf, len);
    return;
  }
  const size_t n = loops_.size();
  if (route_.size() != n) route_.resize(n);
  size_t off = 0;
  while (off + 16 <= len) {
    uint32_t h[4];
    std::memcpy(h, buf + off, sizeof h);
    const size_t next = off + 16 + ((static_cast<size_t>(h[3]) + 3) & ~static_cast<size_t>(3));
    if (next > len) break;
    std::vector<uint8_t>& r = route_[h[1] % n];
    r.insert(r.end(), buf + off, buf + next);
    off = next;
  }
  for (size_t i = 0; i < n; ++i) {
    if (route_[i].empty()) continue;
    loops_[i]->post_commands(route_[i].data(), route_[i].size());
    route_[i].clear();
    shrink_after_peak(route_[i]);
  }
}

void EngineCore::destroy() {
  for (Loop* l : loops_) l->stop_thread();
  for (Loop* l : loops_) delete l;
  loops_.clear();
}

}  // namespace fastport
