// Mechanics test of the io_uring backend without Node: a minimal core
// (CoreSink + core_send_iov) drives two UringBackends (server and client)
// on one thread over loopback. Built and run by uring-mech.test.ts (also
// under ASan and valgrind). Exit 0 = pass; prints one JSON line of results.
//
//   uring_mech echo    CONNS MSGS SIZE   every client sends MSGS frames of SIZE at once,
//                                        the server echoes, clients check every byte
//   uring_mech close   CONNS             close (abort/silent/graceful) with recv armed and
//                                        sends in flight; on_closed exactly once each
//   uring_mech flood   CONNS BYTES       every client sends BYTES at once (pattern checked).
//                                        MECH_ECHO=1: the server echoes and clients wait for it.
//                                        MECH_INLINE=1: the server is driven like the engine's
//                                        inline mode (turns of at most 64 polls, a new turn only
//                                        when wait_fd() is readable)
//   uring_mech direct  CONNS             each client sends 100 bytes with try_send_direct()
//                                        (must be taken synchronously), the server checks them
// MECH_FEATURE_READER=1: a second thread calls features() on the server backend
// all along (for TSan: it must not race the loop's run-time fallbacks).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <poll.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "common/backend.h"

namespace fastport {

struct TConn {
  Conn conn;
  std::string out;     // queued bytes (out[sent_off..] not yet taken by the kernel)
  size_t sent_off = 0;
  std::string in;      // received bytes
  int closed = 0;
  int errors = 0;
  bool fin = false;
  bool connected = false;
};

int core_send_iov(const Conn* c, IoSlice* iov, int max_iov, size_t max_bytes, size_t* bytes) {
  const TConn* t = reinterpret_cast<const TConn*>(c);
  size_t n = t->out.size() - t->sent_off;
  if (n > max_bytes) n = max_bytes;
  if (n == 0 || max_iov < 1) {
    if (bytes) *bytes = 0;
    return 0;
  }
  // Two slices when possible, to exercise SENDMSG scatter-gather.
  size_t half = n > 1 && max_iov >= 2 ? n / 2 : n;
  iov[0].iov_base = const_cast<char*>(t->out.data() + t->sent_off);
  iov[0].iov_len = half;
  int cnt = 1;
  if (half < n) {
    iov[1].iov_base = const_cast<char*>(t->out.data() + t->sent_off + half);
    iov[1].iov_len = n - half;
    cnt = 2;
  }
  if (bytes) *bytes = n;
  return cnt;
}

struct Side : CoreSink {
  Backend* b = nullptr;
  LoopStats stats;
  bool echo = false;
  std::vector<TConn*> conns;
  std::vector<TConn*> to_flush;
  int accepted = 0, closed = 0, double_close = 0, listener_closed = 0, data_outside = 0;
  RecvRegion region;

  Conn* on_accepted(Listener*, SocketHandle fd, const sockaddr*, socklen_t) override {
    TConn* t = new TConn();
    t->conn.fd = fd;
    t->conn.gen = 1;
    conns.push_back(t);
    ++accepted;
    return &t->conn;
  }
  void on_listener_error(Listener*, int) override {}
  void on_listener_closed(Listener*) override { ++listener_closed; }
  void on_connected(Conn* c) override { reinterpret_cast<TConn*>(c)->connected = true; }
  void on_data(Conn* c, const uint8_t* p, size_t n) override {
    if (p < region.base || p + n > region.base + region.size) ++data_outside;
    TConn* t = reinterpret_cast<TConn*>(c);
    if (echo) {
      bool was_empty = t->conn.queued == 0;
      t->out.append(reinterpret_cast<const char*>(p), n);
      t->conn.queued += n;
      if (was_empty) to_flush.push_back(t);
    } else {
      t->in.append(reinterpret_cast<const char*>(p), n);
    }
  }
  void on_peer_fin(Conn* c) override { reinterpret_cast<TConn*>(c)->fin = true; }
  void on_sent(Conn* c, size_t n) override {
    TConn* t = reinterpret_cast<TConn*>(c);
    t->sent_off += n;
    t->conn.queued -= n;
    if (t->sent_off == t->out.size()) {
      t->out.clear();
      t->sent_off = 0;
    }
  }
  void on_error(Conn* c, int) override { ++reinterpret_cast<TConn*>(c)->errors; }
  void on_closed(Conn* c) override {
    TConn* t = reinterpret_cast<TConn*>(c);
    if (t->closed++) ++double_close;
    ++closed;
  }
  void on_wake() override {}

  // The engine's inline turn (engine_napi RunInline): at most 64 polls, each
  // followed by the core's submit, the JS batch (sends), then recv_consumed.
  void inline_turn() {
    static const int cap = std::getenv("MECH_INLINE_CAP") ? std::atoi(std::getenv("MECH_INLINE_CAP")) : 64;
    for (int i = 0; i < cap; ++i) {
      int r = b->poll(0);
      b->submit();
      for (TConn* t : to_flush) {
        if (!t->closed) b->send_ready(&t->conn);
      }
      to_flush.clear();
      b->submit();
      b->recv_consumed();
      if (r != kPollMore) return;
    }
    ++capped_turns;
  }
  int capped_turns = 0;
  bool readable() {
    pollfd p{};
    p.fd = b->wait_fd();
    p.events = POLLIN;
    return ::poll(&p, 1, 0) > 0;
  }

  void turn() {
    int r;
    do {
      r = b->poll(0);
      // "JS" done with the batch: flush sends, give buffers back.
      for (TConn* t : to_flush) {
        if (!t->closed) b->send_ready(&t->conn);
      }
      to_flush.clear();
      b->recv_consumed();
      b->submit();
    } while (r == kPollMore);
  }
};

int fail(const char* what) {
  std::fprintf(stderr, "FAIL: %s\n", what);
  return 1;
}

int make_listener(int* port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) < 0 || listen(fd, 4096) < 0) return -1;
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  *port = ntohs(a.sin_port);
  return fd;
}

int run(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "echo";
  int conns = argc > 2 ? std::atoi(argv[2]) : 100;
  int msgs = argc > 3 ? std::atoi(argv[3]) : 10;
  int size = argc > 4 ? std::atoi(argv[4]) : 1000;

  Side srv, cli;
  const bool inline_drive = std::getenv("MECH_INLINE") != nullptr && std::string(std::getenv("MECH_INLINE")) == "1";
  srv.echo = mode != "flood" && mode != "direct";
  if (mode == "flood" && std::getenv("MECH_ECHO") != nullptr && std::string(std::getenv("MECH_ECHO")) == "1") srv.echo = true;
  srv.b = new_uring_backend();
  cli.b = new_uring_backend();
  BackendConfig cfg;
  cfg.stats = &srv.stats;
  int r = srv.b->init(cfg, &srv);
  if (r < 0) {
    std::fprintf(stderr, "init: %d\n", r);
    return 2;
  }
  cfg.stats = &cli.stats;
  if (cli.b->init(cfg, &cli) < 0) return fail("client init");
  srv.region = srv.b->recv_region();
  cli.region = cli.b->recv_region();

  int port = 0;
  Listener lst;
  lst.fd = make_listener(&port);
  if (lst.fd < 0) return fail("listen");
  if (srv.b->add_listener(&lst) < 0) return fail("add_listener");

  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<uint16_t>(port));
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int i = 0; i < conns; ++i) {
    TConn* t = new TConn();
    t->conn.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    t->conn.gen = 1;
    cli.conns.push_back(t);
    if (cli.b->start_connect(&t->conn, reinterpret_cast<sockaddr*>(&to), sizeof to) < 0) return fail("connect");
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  std::atomic<bool> stop_reader{false};
  std::atomic<unsigned long> feature_reads{0};
  std::thread reader;
  if (std::getenv("MECH_FEATURE_READER") != nullptr) {
    reader = std::thread([&] {
      while (!stop_reader.load()) {
        std::string f;
        srv.b->features([](void* ctx, const char* k, const char* v) { *static_cast<std::string*>(ctx) += std::string(k) + v; },
                        &f);
        feature_reads.fetch_add(1);
      }
    });
  }
  struct ReaderJoin {
    std::atomic<bool>* stop;
    std::thread* t;
    ~ReaderJoin() {
      stop->store(true);
      if (t->joinable()) t->join();
    }
  } reader_join{&stop_reader, &reader};
  bool srv_ready = true;  // inline drive: the first turn runs unasked
  auto pump = [&]() {
    cli.turn();
    if (inline_drive) {
      if (srv_ready || srv.readable()) srv.inline_turn();
      srv_ready = false;
    } else {
      srv.turn();
    }
    return std::chrono::steady_clock::now() < deadline;
  };
  auto wait_until = [&](auto pred) {
    while (!pred()) {
      if (!pump()) return false;
    }
    return true;
  };
  if (!wait_until([&] {
        int n = 0;
        for (TConn* t : cli.conns) n += t->connected;
        return n == conns && srv.accepted == conns;
      }))
    return fail("connect/accept timed out");

  if (mode == "echo") {
    // Every client queues all its frames at once.
    for (int i = 0; i < conns; ++i) {
      TConn* t = cli.conns[i];
      for (int m = 0; m < msgs; ++m) {
        for (int k = 0; k < size; ++k) t->out.push_back(static_cast<char>((i * 131 + m * 7 + k) & 0xff));
      }
      t->conn.queued = t->out.size();
      cli.b->send_ready(&t->conn);
    }
    cli.b->submit();
    const size_t want = static_cast<size_t>(msgs) * size;
    if (!wait_until([&] {
          for (TConn* t : cli.conns)
            if (t->in.size() < want) return false;
          return true;
        }))
      return fail("echo timed out");
    for (int i = 0; i < conns; ++i) {
      const std::string& in = cli.conns[i]->in;
      if (in.size() != want) return fail("echo length");
      size_t p = 0;
      for (int m = 0; m < msgs; ++m)
        for (int k = 0; k < size; ++k, ++p)
          if (in[p] != static_cast<char>((i * 131 + m * 7 + k) & 0xff)) return fail("echo bytes differ");
    }
    // Graceful close from the client: the server sees FIN.
    for (TConn* t : cli.conns) cli.b->close(&t->conn, CloseMode::kGraceful);
    if (!wait_until([&] {
          int n = 0;
          for (TConn* t : srv.conns) n += t->fin;
          return n == conns && cli.closed == conns;
        }))
      return fail("graceful close: server did not see every FIN");
    for (TConn* t : srv.conns) srv.b->close(&t->conn, CloseMode::kGraceful);
    if (!wait_until([&] { return srv.closed == conns; })) return fail("server close");
  } else if (mode == "flood" || mode == "direct") {
    const size_t bytes = mode == "direct" ? 100 : static_cast<size_t>(msgs);
    auto pat = [](size_t k) { return static_cast<char>((k * 7 + (k >> 9)) & 0xff); };
    for (TConn* t : cli.conns) {
      for (size_t k = 0; k < bytes; ++k) t->out.push_back(pat(k));
      if (mode == "direct") {
        IoSlice v;
        v.iov_base = const_cast<char*>(t->out.data());
        v.iov_len = t->out.size();
        long n = cli.b->try_send_direct(&t->conn, &v, 1);
        if (n != static_cast<long>(bytes)) {
          std::fprintf(stderr, "try_send_direct took %ld of %zu bytes\n", n, bytes);
          return fail("try_send_direct did not send synchronously");
        }
        t->out.clear();
      } else {
        t->conn.queued = t->out.size();
        cli.b->send_ready(&t->conn);
      }
    }
    cli.b->submit();
    auto server_got = [&] {
      size_t n = 0;
      for (TConn* t : srv.conns) n += t->in.size();
      return n;
    };
    if (srv.echo) {
      if (!wait_until([&] {
            for (TConn* t : cli.conns)
              if (t->in.size() < bytes) return false;
            return true;
          })) {
        size_t n = 0;
        for (TConn* t : cli.conns) n += t->in.size();
        std::fprintf(stderr, "echoed %zu of %zu bytes\n", n, bytes * conns);
        return fail("flood echo timed out");
      }
      for (TConn* t : cli.conns)
        for (size_t k = 0; k < bytes; ++k)
          if (t->in[k] != pat(k)) return fail("flood echo bytes differ");
    } else {
      if (!wait_until([&] { return server_got() >= bytes * conns; })) {
        std::fprintf(stderr, "server got %zu of %zu bytes\n", server_got(), bytes * conns);
        if (std::getenv("MECH_DEBUG") != nullptr) {
          std::fprintf(stderr, "server wait_fd readable: %d\n", srv.readable() ? 1 : 0);
          for (int k = 0; k < 200; ++k) srv.turn();
          std::fprintf(stderr, "after 200 forced turns: %zu\n", server_got());
        }
        return fail("flood: the server stopped receiving");
      }
      for (TConn* t : srv.conns) {
        if (t->in.size() != bytes) return fail("flood length");
        for (size_t k = 0; k < bytes; ++k)
          if (t->in[k] != pat(k)) return fail("flood bytes differ");
      }
    }
    for (TConn* t : cli.conns) cli.b->close(&t->conn, CloseMode::kAbort);
    for (TConn* t : srv.conns) srv.b->close(&t->conn, CloseMode::kSilent);
    srv_ready = true;
    if (!wait_until([&] {
          srv_ready = true;
          return cli.closed == conns && srv.closed == conns;
        }))
      return fail("flood close");
  } else if (mode == "close") {
    // Server connections: recv armed; half of them also get a large send in
    // flight that the client never reads (kernel buffers fill up).
    std::string big(8 << 20, 'x');
    for (int i = 0; i < conns; ++i) {
      TConn* t = srv.conns[i];
      if (i % 2 == 0) {
        t->out = big;
        t->conn.queued = big.size();
        srv.b->send_ready(&t->conn);
      }
    }
    srv.b->submit();
    for (int k = 0; k < 20; ++k) srv.turn();
    // Clients send a little so some recv CQEs race with the close.
    for (TConn* t : cli.conns) {
      t->out.assign(100, 'y');
      t->conn.queued = 100;
      cli.b->send_ready(&t->conn);
    }
    cli.b->submit();
    for (int i = 0; i < conns; ++i) {
      CloseMode m = i % 3 == 0 ? CloseMode::kAbort : i % 3 == 1 ? CloseMode::kSilent : CloseMode::kGraceful;
      srv.b->close(&srv.conns[i]->conn, m);
      srv.b->close(&srv.conns[i]->conn, m);  // a second close is ignored
    }
    srv.b->submit();
    if (!wait_until([&] { return srv.closed == conns; })) return fail("close with ops in flight timed out");
    for (TConn* t : cli.conns) cli.b->close(&t->conn, CloseMode::kAbort);
    if (!wait_until([&] { return cli.closed == conns; })) return fail("client close");
  }
  srv.b->remove_listener(&lst);
  if (!wait_until([&] {
        srv_ready = true;
        return srv.listener_closed == 1;
      }))
    return fail("listener close");
  // A few more turns: nothing may be reported for closed connections.
  for (int k = 0; k < 5; ++k) pump();
  if (srv.double_close || cli.double_close) return fail("on_closed twice");
  if (srv.data_outside || cli.data_outside) return fail("data outside recv_region");

  stop_reader.store(true);
  if (reader.joinable()) reader.join();
  std::string feats;
  srv.b->features(
      [](void* ctx, const char* k, const char* v) {
        std::string* s = static_cast<std::string*>(ctx);
        if (!s->empty()) *s += ",";
        *s += "\"";
        *s += k;
        *s += "\":\"";
        *s += v;
        *s += "\"";
      },
      &feats);
  std::printf("{\"ok\":true,\"mode\":\"%s\",\"conns\":%d,\"srvClosed\":%d,\"cliClosed\":%d,\"recvCalls\":%llu,"
              "\"sendSubmissions\":%llu,\"featureReads\":%lu,\"cappedTurns\":%d,\"features\":{%s}}\n",
              mode.c_str(), conns, srv.closed, cli.closed, static_cast<unsigned long long>(srv.stats.recv_calls),
              static_cast<unsigned long long>(srv.stats.send_submissions), feature_reads.load(), srv.capped_turns, feats.c_str());
  delete srv.b;
  delete cli.b;
  for (TConn* t : srv.conns) delete t;
  for (TConn* t : cli.conns) delete t;
  return 0;
}

}  // namespace fastport

int main(int argc, char** argv) { return fastport::run(argc, argv); }
