// The IOCP backend (src/win/iocp.cc) against the backend contract, without
// the core: this file plays the core (a CoreSink with send queues of real
// SendChunks, core_send_iov, deferred closes and sends after poll(), and
// recv_consumed() after every batch as JS would). Cross-compiled with
// mingw-w64 and run under Wine by scripts/test-win32.sh.
//
// Checks: echo (40 clients x 6 rounds, small sends through try_send_direct,
// one 1 MiB send through the queue, a 64 KiB receive region so poll() runs
// short of memory), half-close both ways (shutdown_write then FIN back),
// abort (RST) seen as ECONNRESET by the peer, connect refused as
// ECONNREFUSED, wake() from another thread, iocp_wait_readiness(),
// remove_listener(), and that every context and op is gone at the end.
// Prints "key=value" lines and "result=ok" or exits 1.
#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "common/backend.h"
#include "common/sockets.h"
#include "win/iocp.h"
#include "win/port_backend.h"
#include "win/rio.h"

// Built twice by scripts/test-win32.sh: as is against the iocp backend, and
// with -DFASTPORT_TEST_RIO against the rio backend on the emulated RIO table
// (same contract, same checks; the live counters are the backend's own).
#if defined(FASTPORT_TEST_RIO)
#define NEW_BACKEND() fastport::new_rio_emulated_backend()
#define LIVE(b) fastport::rio_live(b)
#define LIVE_OPS(lv) ((lv).ops + (lv).requests)
#else
#define NEW_BACKEND() fastport::new_iocp_backend()
#define LIVE(b) fastport::iocp_live(b)
#define LIVE_OPS(lv) ((lv).ops)
#endif

namespace fastport {

int core_send_iov(const Conn* c, IoSlice* iov, int max_iov, size_t max_bytes, size_t* bytes) {
  int n = 0;
  size_t total = 0;
  for (SendChunk* k = c->sq_head; k != nullptr && n < max_iov && total < max_bytes; k = k->next) {
    size_t len = k->end - k->begin;
    if (len == 0) continue;
    if (len > max_bytes - total) len = max_bytes - total;
    iov[n].iov_base = k->data + k->begin;
    iov[n].iov_len = static_cast<ULONG>(len);
    ++n;
    total += len;
  }
  if (bytes != nullptr) *bytes = total;
  return n;
}

}  // namespace fastport

namespace {

using namespace fastport;

constexpr int kClients = 40;
constexpr int kRounds = 6;

struct TConn : Conn {
  bool client = false;
  bool connected = false;
  bool close_called = false;
  bool closed = false;
  bool errored = false;
  bool peer_fin = false;
  bool shut_sent = false;
  bool want_graceful = false;
  bool want_abort = false;
  bool dirty = false;
  int err = 0;
  int round = 0;
  int role = 0;  // 0 echo, 1 abort-client, 2 abort-server side, 3 refused, 4 flood client, 5 flood server side
  std::vector<uint8_t> expect;
  size_t got = 0;
};

struct Counts {
  long accepted = 0, connected = 0, closed = 0, clients_done = 0, mismatches = 0, region_violations = 0;
  long unexpected_errors = 0, listener_errors = 0, wakes = 0, poll_more = 0, direct_bytes = 0;
  long long echoed = 0, verified = 0;
  int abort_peer_err = 0, refused_err = 0;
  long flood_resets = 0, flood_fins = 0, flood_connected = 0, flood_client_errors = 0;
  bool listener_closed = false;
};

Counts k;
bool flood_phase = false;
uint16_t sentinel_port = 0;  // network order; the flood's end marker
bool sentinel_accepted = false;
uint16_t pause_port = 0;  // network order: the client of the pause check
TConn* pause_server = nullptr;
size_t paused_bytes = 0;
long flood_server_sides = 0;
Backend* be = nullptr;
RecvRegion region;
std::vector<TConn*> conns;
std::vector<TConn*> dirty;

void mark(TConn* c) {
  if (!c->dirty) {
    c->dirty = true;
    dirty.push_back(c);
  }
}

void queue_bytes(TConn* c, const uint8_t* p, size_t n) {
  while (n > 0) {
    SendChunk* t = c->sq_tail;
    if (t == nullptr || t->end == kChunkSize) {
      SendChunk* nk = new SendChunk();
      nk->data = static_cast<uint8_t*>(std::malloc(kChunkSize));
      if (t) t->next = nk;
      else c->sq_head = nk;
      c->sq_tail = t = nk;
    }
    size_t take = kChunkSize - t->end;
    if (take > n) take = n;
    std::memcpy(t->data + t->end, p, take);
    t->end += static_cast<uint32_t>(take);
    c->queued += take;
    p += take;
    n -= take;
  }
}

void free_queue(TConn* c) {
  for (SendChunk* q = c->sq_head; q != nullptr;) {
    SendChunk* nx = q->next;
    std::free(q->data);
    delete q;
    q = nx;
  }
  c->sq_head = c->sq_tail = nullptr;
  c->queued = 0;
}

std::vector<uint8_t> message(int id, int round) {
  size_t n = round % 2 == 0 ? 1 + (static_cast<size_t>(id) * 37 + static_cast<size_t>(round)) % 1400
                            : 1 + (static_cast<size_t>(id) * 7919 + static_cast<size_t>(round) * 104729) % 150000;
  if (id == 0 && round == 3) n = 1 << 20;
  std::vector<uint8_t> v(n);
  uint32_t x = 2166136261u ^ static_cast<uint32_t>(id * 131 + round);
  for (size_t i = 0; i < n; i++) {
    x = x * 16777619u + 0x9e3779b9u;
    v[i] = static_cast<uint8_t>(x >> 24);
  }
  return v;
}

// A send as the core does it: direct when the queue is empty, the rest queued.
void send_msg(TConn* c, const std::vector<uint8_t>& m) {
  size_t done = 0;
  if (c->queued == 0) {
    IoSlice iov[1];
    iov[0].iov_base = const_cast<uint8_t*>(m.data());
    iov[0].iov_len = static_cast<ULONG>(m.size());
    long r = be->try_send_direct(c, iov, 1);
    if (r < 0) {
      c->errored = true;
      c->err = static_cast<int>(-r);
      mark(c);
      return;
    }
    done = static_cast<size_t>(r);
    k.direct_bytes += r;
  }
  if (done < m.size()) {
    queue_bytes(c, m.data() + done, m.size() - done);
    mark(c);
  }
}

class Sink final : public CoreSink {
 public:
  Conn* on_accepted(Listener*, SocketHandle fd, const sockaddr* addr, socklen_t len) override {
    k.accepted++;
    if (addr == nullptr || len < static_cast<socklen_t>(sizeof(sockaddr_in)) || addr->sa_family != AF_INET) {
      k.unexpected_errors++;
      std::printf("note=accepted without a peer address\n");
    }
    TConn* c = new TConn();
    c->fd = fd;
    c->connected = true;
    if (pause_port != 0 && addr != nullptr && reinterpret_cast<const sockaddr_in*>(addr)->sin_port == pause_port) {
      c->role = 9;  // server side of the pause check: counts, does not echo
      pause_server = c;
    } else if (sentinel_port != 0 && addr != nullptr &&
        reinterpret_cast<const sockaddr_in*>(addr)->sin_port == sentinel_port) {
      c->role = 6;  // accepted after every flood connection before it (FIFO backlog)
      sentinel_accepted = true;
    } else if (flood_phase) {
      c->role = 5;
      flood_server_sides++;
    }
    conns.push_back(c);
    return c;
  }
  void on_listener_error(Listener*, int err) override {
    k.listener_errors++;
    std::printf("note=listener error %d\n", err);
  }
  void on_listener_closed(Listener*) override { k.listener_closed = true; }
  void on_connected(Conn* cc) override {
    TConn* c = static_cast<TConn*>(cc);
    c->connected = true;
    k.connected++;
    if (c->role == 4) {  // opened and dropped at once
      k.flood_connected++;
      c->want_abort = true;
      mark(c);
      return;
    }
    if (c->role == 0) {
      c->expect = message(static_cast<int>(c->slot), c->round);
      c->got = 0;
      send_msg(c, c->expect);
    }
  }
  void on_data(Conn* cc, const uint8_t* p, size_t n) override {
    TConn* c = static_cast<TConn*>(cc);
    if (p < region.base || p + n > region.base + region.size) k.region_violations++;
    if (c->role == 9) {
      paused_bytes += n;
      return;
    }
    if (!c->client) {
      k.echoed += static_cast<long long>(n);
      queue_bytes(c, p, n);  // copied: region memory is reused after recv_consumed()
      mark(c);
      return;
    }
    if (c->got + n > c->expect.size() || std::memcmp(c->expect.data() + c->got, p, n) != 0) {
      k.mismatches++;
      c->want_abort = true;
      mark(c);
      return;
    }
    c->got += n;
    k.verified += static_cast<long long>(n);
    if (c->got == c->expect.size()) {
      if (++c->round < kRounds) {
        c->expect = message(static_cast<int>(c->slot), c->round);
        c->got = 0;
        send_msg(c, c->expect);
      } else {
        c->shut_sent = true;  // half-close; the server's FIN comes back after the echo
        int r = be->shutdown_write(c);
        if (r < 0) {
          k.unexpected_errors++;
          std::printf("note=shutdown_write %d\n", -r);
        }
      }
    }
  }
  void on_peer_fin(Conn* cc) override {
    TConn* c = static_cast<TConn*>(cc);
    c->peer_fin = true;
    if (c->role == 5) k.flood_fins++;
    if (c->client) {
      if (c->shut_sent) k.clients_done++;
      else if (c->role == 0) k.unexpected_errors++;
    }
    c->want_graceful = true;
    mark(c);
  }
  void on_sent(Conn* cc, size_t n) override {
    TConn* c = static_cast<TConn*>(cc);
    if (n > c->queued) {
      k.unexpected_errors++;
      std::printf("note=on_sent %zu > queued %llu\n", n, static_cast<unsigned long long>(c->queued));
      n = c->queued;
    }
    c->queued -= n;
    while (n > 0 && c->sq_head != nullptr) {
      SendChunk* h = c->sq_head;
      size_t take = h->end - h->begin;
      if (take > n) take = n;
      h->begin += static_cast<uint32_t>(take);
      n -= take;
      if (h->begin == h->end) {
        c->sq_head = h->next;
        if (c->sq_head == nullptr) c->sq_tail = nullptr;
        std::free(h->data);
        delete h;
      }
    }
    if (c->queued == 0 && c->want_graceful) mark(c);
  }
  void on_error(Conn* cc, int err) override {
    TConn* c = static_cast<TConn*>(cc);
    c->errored = true;
    c->err = err;
    if (c->role == 2) k.abort_peer_err = err;
    else if (c->role == 3) k.refused_err = err;
    else if (c->role == 5 && (err == ECONNRESET || err == ECONNABORTED)) k.flood_resets++;
    else if (c->role == 4) k.flood_client_errors++;  // a reset before the connect completed
    else {
      k.unexpected_errors++;
      std::printf("note=on_error slot %u role %d err %d\n", c->slot, c->role, err);
    }
    mark(c);
  }
  void on_closed(Conn* cc) override {
    TConn* c = static_cast<TConn*>(cc);
    if (c->closed) {
      k.unexpected_errors++;
      std::printf("note=on_closed twice\n");
    }
    c->closed = true;
    k.closed++;
    free_queue(c);
  }
  void on_wake() override { k.wakes++; }
};

// The core's end of turn: closes and sends, then "JS returned".
void after_poll() {
  for (size_t i = 0; i < dirty.size(); ++i) {
    TConn* c = dirty[i];
    c->dirty = false;
    if (c->close_called) continue;
    if (c->errored) {
      c->close_called = true;
      be->close(c, CloseMode::kSilent);
    } else if (c->want_abort) {
      c->close_called = true;
      be->close(c, CloseMode::kAbort);
    } else if (c->queued > 0 && c->connected) {
      be->send_ready(c);
    } else if (c->want_graceful && c->queued == 0) {
      c->close_called = true;
      be->close(c, CloseMode::kGraceful);
    }
  }
  dirty.clear();
  be->recv_consumed();
}

void turn(int timeout_ms) {
  int r = be->poll(timeout_ms);
  if (r == kPollMore) k.poll_more++;
  else if (r < 0) {
    k.unexpected_errors++;
    std::printf("note=poll %d\n", r);
  }
  after_poll();
}

template <typename F>
bool run_until(F done, DWORD ms) {
  ULONGLONG end = GetTickCount64() + ms;
  while (!done() && GetTickCount64() < end) turn(50);
  return done();
}

// Sockets as the core makes them (win/sockets.cc).
SOCKET new_socket() {
  sockaddr_in remote{};
  remote.sin_family = AF_INET;
  SockOpts o;
  o.no_delay = 1;
  SocketHandle fd = kInvalidSocket;
  int r = sock_outbound(reinterpret_cast<sockaddr*>(&remote), nullptr, 0, o, &fd);
  if (r != 0) std::printf("note=sock_outbound %d\n", -r);
  return static_cast<SOCKET>(fd);
}

TConn* connect_to(const sockaddr_in& addr, int role, uint16_t* bound_port = nullptr) {
  TConn* c = new TConn();
  c->client = true;
  c->role = role;
  c->slot = static_cast<uint32_t>(conns.size());
  c->fd = static_cast<SocketHandle>(new_socket());
  conns.push_back(c);
  if (bound_port != nullptr) {  // bound first, so the port is known before the accept
    sockaddr_in me{};
    me.sin_family = AF_INET;
    me.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int mlen = sizeof me;
    bind(static_cast<SOCKET>(c->fd), reinterpret_cast<sockaddr*>(&me), sizeof me);
    getsockname(static_cast<SOCKET>(c->fd), reinterpret_cast<sockaddr*>(&me), &mlen);
    *bound_port = me.sin_port;
  }
  int r = be->start_connect(c, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  if (r < 0) {
    std::printf("note=start_connect %d\n", -r);
    k.unexpected_errors++;
    closesocket(static_cast<SOCKET>(c->fd));
    c->closed = true;
  }
  return c;
}

bool check(const char* what, bool ok) {
  std::printf("check_%s=%s\n", what, ok ? "ok" : "FAILED");
  return ok;
}

}  // namespace

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  WSADATA wsa;
  if (WSAStartup(MAKEWORD(2, 2), &wsa) != 0) return 1;
  Sink sink;
  LoopStats stats;
  be = NEW_BACKEND();
  BackendConfig cfg;
  cfg.inline_mode = false;
  cfg.recv_bytes = 64 * 1024;
  cfg.stats = &stats;
  if (be == nullptr || be->init(cfg, &sink) != 0) {
    std::printf("result=FAILED init\n");
    return 1;
  }
  region = be->recv_region();
  bool ok = true;

  // Listener, as the core makes it.
  sockaddr_storage resolved;
  socklen_t rlen = 0;
  SocketHandle lfd = kInvalidSocket;
  if (sock_resolve("127.0.0.1", 0, &resolved, &rlen) != 0 ||
      sock_listen(reinterpret_cast<sockaddr*>(&resolved), rlen, 4096, false, false, &lfd) != 0) {
    std::printf("result=FAILED listen\n");
    return 1;
  }
  SOCKET ls = static_cast<SOCKET>(lfd);
  sockaddr_storage bound;
  socklen_t blen = 0;
  sock_local_name(lfd, &bound, &blen);
  sockaddr_in addr;
  std::memcpy(&addr, &bound, sizeof addr);
  uint32_t words[6];
  sock_addr_words(reinterpret_cast<sockaddr*>(&bound), words);
  std::printf("listening=%u.%u.%u.%u:%u\n", words[2] & 0xff, (words[2] >> 8) & 0xff, (words[2] >> 16) & 0xff,
              words[2] >> 24, words[1]);
  Listener l;
  l.fd = static_cast<SocketHandle>(ls);
  ok &= check("add_listener", be->add_listener(&l) == 0);

  // 1. echo with half-close both ways.
  for (int i = 0; i < kClients; i++) connect_to(addr, 0);
  ok &= check("echo", run_until([] { return k.clients_done + k.mismatches + k.unexpected_errors >= kClients; }, 60000) &&
                          k.clients_done == kClients && k.mismatches == 0);
  ok &= check("echo_closed", run_until([] { return k.closed >= 2 * kClients; }, 20000));

  // 2. abort: the client resets, the server side sees ECONNRESET.
  long acc = k.accepted;
  TConn* ac = connect_to(addr, 1);
  run_until([&] { return ac->connected && k.accepted > acc; }, 10000);
  TConn* server_side = conns.back();
  server_side->role = 2;
  ac->want_abort = true;
  mark(ac);
  ok &= check("abort_econnreset", run_until([] { return k.abort_peer_err != 0; }, 10000) &&
                                      k.abort_peer_err == ECONNRESET);

  // 2b. pause (contract 10): while the server side is paused, a 5000-byte
  //     write and a FIN from the client are not reported; after the resume
  //     both are.
  {
    TConn* pc = connect_to(addr, 8, &pause_port);
    run_until([&] { return pc->connected && pause_server != nullptr; }, 10000);
    bool setup = pause_server != nullptr && pc->connected;
    if (setup) {
      be->set_receiving(pause_server, false);
      std::vector<uint8_t> m = message(77, 1);
      m.resize(5000);
      send_msg(pc, m);
      after_poll();
      ULONGLONG until = GetTickCount64() + 300;  // a window in which nothing may arrive
      while (GetTickCount64() < until && pc->queued > 0) turn(20);
      if (be->shutdown_write(pc) != 0) k.unexpected_errors++;
      until = GetTickCount64() + 300;
      while (GetTickCount64() < until) turn(20);
    }
    bool held = setup && paused_bytes == 0 && !pause_server->peer_fin;
    if (setup) be->set_receiving(pause_server, true);
    bool resumed = setup && run_until([] { return paused_bytes == 5000 && pause_server->peer_fin; }, 10000);
    std::printf("pause_held=%d paused_bytes_after_resume=%zu\n", held ? 1 : 0, paused_bytes);
    ok &= check("pause", held && resumed);
    ok &= check("pause_closed", run_until([&] { return pc->closed && pause_server->closed; }, 10000));
  }

  // 3. refused: a port nobody listens on.
  SOCKET probe = new_socket();
  sockaddr_in dead{};
  dead.sin_family = AF_INET;
  dead.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int dlen = sizeof dead;
  bind(probe, reinterpret_cast<sockaddr*>(&dead), sizeof dead);
  getsockname(probe, reinterpret_cast<sockaddr*>(&dead), &dlen);
  closesocket(probe);
  connect_to(dead, 3);
  ok &= check("refused_econnrefused", run_until([] { return k.refused_err != 0; }, 15000) && k.refused_err == ECONNREFUSED);
  std::printf("refused_err=%d abort_err=%d\n", k.refused_err, k.abort_peer_err);

  // 4. wake() from another thread, many times: at least one on_wake, no flood.
  long wakes0 = k.wakes;
  std::thread waker([] {
    for (int i = 0; i < 1000; i++) be->wake();
  });
  waker.join();
  run_until([&] { return k.wakes > wakes0; }, 5000);
  turn(0);
  ok &= check("wake", k.wakes - wakes0 >= 1 && k.wakes - wakes0 <= 2);

  // 5. iocp_wait_readiness on a helper thread (inline mode's waiter): it
  //    returns when a packet arrives and leaves it for poll().
  std::atomic<int> ready{-99};
  std::thread waiter([&] { ready = port_wait_readiness(be, 10000); });
  Sleep(50);  // not deciding anything: the waiter may or may not be blocked yet, both are valid
  long wakes1 = k.wakes;
  be->wake();
  waiter.join();
  run_until([&] { return k.wakes > wakes1; }, 5000);
  ok &= check("wait_readiness", ready == 1 && k.wakes == wakes1 + 1);

  // 5b. Inline mode as the binding would run it on Windows (ioThreads 0):
  //    the "JS thread" (this one) only ever calls poll(0), when a waiter
  //    thread blocked in iocp_wait_readiness() says the port has work (the
  //    binding would use a napi_threadsafe_function there instead of an
  //    event); the waiter waits again only after the batch was drained.
  {
    HANDLE ready_ev = CreateEventW(nullptr, FALSE, FALSE, nullptr);
    HANDLE drained_ev = CreateEventW(nullptr, FALSE, FALSE, nullptr);
    std::atomic<bool> stop{false};
    std::atomic<long> signals{0};
    std::thread w([&] {
      while (!stop.load()) {
        int r = port_wait_readiness(be, 1000);
        if (stop.load() || r < 0) break;
        if (r == 0) continue;
        signals++;
        SetEvent(ready_ev);
        WaitForSingleObject(drained_ev, INFINITE);
      }
    });
    constexpr int kInline = 10;
    long done0 = k.clients_done;
    long closed0 = k.closed;
    long batches = 0;
    for (int i = 0; i < kInline; i++) connect_to(addr, 0);
    ULONGLONG end = GetTickCount64() + 60000;
    while ((k.clients_done - done0 < kInline || k.closed - closed0 < 2 * kInline) && k.mismatches == 0 &&
           GetTickCount64() < end) {
      if (WaitForSingleObject(ready_ev, 100) != WAIT_OBJECT_0) continue;
      int r;
      do {
        r = be->poll(0);
        after_poll();
      } while (r == kPollMore);
      batches++;
      SetEvent(drained_ev);
    }
    stop = true;
    SetEvent(drained_ev);
    be->wake();
    w.join();
    turn(0);  // the wake packet the waiter posted back
    CloseHandle(ready_ev);
    CloseHandle(drained_ev);
    std::printf("inline_batches=%ld inline_signals=%ld\n", batches, signals.load());
    ok &= check("inline_mode", k.clients_done - done0 == kInline && k.closed - closed0 == 2 * kInline && batches > 0);
  }

  // 6. 1,000 connections opened and dropped (RST) at once: every context
  //    goes, the listener keeps accepting (checked by the counts).
  flood_phase = true;
  long closed0 = k.closed;
  constexpr int kFlood = 1000;
  for (int i = 0; i < kFlood; i++) connect_to(addr, 4);
  bool clients_gone = run_until([&] { return k.flood_connected + k.flood_client_errors >= kFlood &&
                                             k.closed - closed0 >= kFlood; }, 60000);
  // Then one more connection: once it is accepted, every flood connection
  // still in the backlog has been accepted or dropped by the kernel.
  TConn* sentinel = connect_to(addr, 7, &sentinel_port);
  bool flood_done = run_until([&] {
    long sides_closed = 0;
    for (TConn* c : conns)
      if (c->role == 5 && c->closed) sides_closed++;
    return sentinel_accepted && sides_closed == flood_server_sides;
  }, 60000);
  std::printf("flood_connected=%ld flood_accepted=%ld flood_resets=%ld flood_fins=%ld flood_client_errors=%ld\n",
              k.flood_connected, flood_server_sides, k.flood_resets, k.flood_fins, k.flood_client_errors);
  ok &= check("flood", clients_gone && flood_done && k.listener_errors == 0);
  sentinel->want_graceful = true;
  mark(sentinel);
  ok &= check("after_flood_accepts", run_until([&] { return sentinel->closed; }, 10000));
  flood_phase = false;

  // 7. listener removal with the whole AcceptEx pool pending.
  be->remove_listener(&l);
  ok &= check("listener_closed", run_until([] { return k.listener_closed; }, 10000));
  run_until([] {
    auto lv = LIVE(be);
    return lv.conns == 0 && LIVE_OPS(lv) == 0 && lv.listeners == 0;
  }, 10000);
  auto lv = LIVE(be);
  long open_conns = 0;
  for (TConn* c : conns)
    if (!c->closed) open_conns++;
  ok &= check("all_closed", open_conns == 0);
  ok &= check("no_live_contexts", lv.conns == 0 && LIVE_OPS(lv) == 0 && lv.listeners == 0);
  ok &= check("region", k.region_violations == 0);
  ok &= check("no_unexpected_errors", k.unexpected_errors == 0 && k.listener_errors == 0);

  std::printf(
      "accepted=%ld connected=%ld closed=%ld clients_done=%ld echoed=%lld verified=%lld direct_bytes=%ld "
      "poll_more=%ld send_submissions=%llu recv_calls=%llu live_conns=%zu live_ops=%zu\n",
      k.accepted, k.connected, k.closed, k.clients_done, k.echoed, k.verified, k.direct_bytes, k.poll_more,
      static_cast<unsigned long long>(stats.send_submissions), static_cast<unsigned long long>(stats.recv_calls),
      lv.conns, LIVE_OPS(lv));
  // 8. Destruction with sends in flight: a peer (a plain socket in the
  //    backlog, never read) stalls 4 MiB; the backend is destroyed with its
  //    send outstanding. It must not crash, and (rio) must return every
  //    request of the emulated table before it goes (checked after delete).
  SOCKET raw = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
  sockaddr_in raw_addr{};
  raw_addr.sin_family = AF_INET;
  raw_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int raw_len = sizeof raw_addr;
  bind(raw, reinterpret_cast<sockaddr*>(&raw_addr), sizeof raw_addr);
  listen(raw, 4);
  getsockname(raw, reinterpret_cast<sockaddr*>(&raw_addr), &raw_len);
  TConn* stalled = connect_to(raw_addr, 10);
  bool stalled_connected = run_until([&] { return stalled->connected; }, 10000);
  if (stalled_connected) {
    std::vector<uint8_t> big(4u << 20, 0x5a);
    send_msg(stalled, big);
    after_poll();
    for (int i = 0; i < 20; i++) turn(10);  // the sends reach the kernel and stall there
  }
  auto lv_stalled = LIVE(be);
  std::printf("destroy_with_sends_in_flight queued=%llu live_ops=%zu\n",
              static_cast<unsigned long long>(stalled->queued), LIVE_OPS(lv_stalled));
  ok &= check("stalled_send_in_flight", stalled_connected && stalled->queued > 0 && LIVE_OPS(lv_stalled) > 0);

  std::printf("features=");
  be->features([](void*, const char* key, const char* value) { std::printf("%s:%s ", key, value); }, nullptr);
  std::printf("\n");
  delete be;
#if defined(FASTPORT_TEST_RIO)
  // The emulated table's own objects go with the backend's CQ and buffers.
  rio::EmulatedLive el = rio::emulated_live();
  std::printf("emulated_live cqs=%zu rqs=%zu requests=%zu buffers=%zu\n", el.cqs, el.rqs, el.requests, el.buffers);
  ok &= check("emulated_table_empty", el.cqs == 0 && el.rqs == 0 && el.requests == 0 && el.buffers == 0);
#endif
  closesocket(raw);
  for (TConn* c : conns) {
    if (!c->closed) free_queue(c);  // the stalled one: destroyed without callbacks
    delete c;
  }
  WSACleanup();
  std::printf("result=%s\n", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
