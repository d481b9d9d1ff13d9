// A Loop on its own native I/O thread (ioThreads >= 1): the thread's main
// loop, the inbox of command streams from the JS thread, run_sync for work
// that must happen on the loop's thread (listen, connect, options), and the
// hand-off of records to the JS thread. Kept apart from the core so the core
// reads as single-threaded code: everything in engine_core.cc runs on one
// loop's thread.

#include "common/engine_core.h"

namespace fastport {

int Loop::start_thread(void (*notify)(void*), void* ctx) {
  notify_ = notify;
  notify_ctx_ = ctx;
  threaded_ = true;
  thread_ = std::thread([this] { thread_main(); });
  return 0;
}

void Loop::stop_thread() {
  if (!threaded_ || !thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> g(mu_);
    stop_.store(true);
  }
  cv_.notify_all();
  be_->wake();
  thread_.join();
  // Wake anyone still waiting in run_sync (cannot happen from JS, but be safe).
  std::lock_guard<std::mutex> g(mu_);
  task_done_ = task_seq_;
  done_cv_.notify_all();
}

void Loop::run_sync(const std::function<void()>& fn) {
  if (!threaded_) {
    fn();
    return;
  }
  std::unique_lock<std::mutex> lk(mu_);
  if (stop_.load()) return;
  const uint64_t my = ++task_seq_;
  in_tasks_.push_back(&fn);
  lk.unlock();
  cv_.notify_all();
  be_->wake();
  lk.lock();
  done_cv_.wait(lk, [&] { return task_done_ >= my; });
}

void Loop::post_commands(const uint8_t* buf, size_t len) {
  {
    std::lock_guard<std::mutex> g(mu_);
    in_cmds_.insert(in_cmds_.end(), buf, buf + len);
  }
  cv_.notify_all();
  be_->wake();
}

uint64_t Loop::take_posted(std::vector<Rec>* out) {
  std::lock_guard<std::mutex> g(mu_);
  if (!out_recs_.empty()) {
    out->insert(out->end(), out_recs_.begin(), out_recs_.end());
    out_recs_.clear();
    shrink_after_peak(out_recs_);
  }
  return posted_seq_;
}

bool Loop::keeps_js_alive() {
  if (!threaded_) return busy_.load(std::memory_order_relaxed) > 0;
  // busy_ and out_recs_ change together under mu_: seeing neither means JS
  // has taken every record up to the last drop.
  std::lock_guard<std::mutex> g(mu_);
  return busy_.load(std::memory_order_relaxed) > 0 || !out_recs_.empty();
}

void Loop::release(uint64_t seq) {
  if (released_seq_.load() >= seq) return;
  {
    std::lock_guard<std::mutex> g(mu_);
    released_seq_.store(seq);
  }
  cv_.notify_all();
  be_->wake();
}

bool Loop::handle_inbox() {
  std::vector<const std::function<void()>*> tasks;
  {
    std::lock_guard<std::mutex> g(mu_);
    tasks.swap(in_tasks_);
    work_cmds_.swap(in_cmds_);
  }
  bool did = false;
  if (!tasks.empty()) {
    for (const std::function<void()>* t : tasks) (*t)();
    {
      std::lock_guard<std::mutex> g(mu_);
      task_done_ += tasks.size();
    }
    done_cv_.notify_all();
    did = true;
  }
  if (!work_cmds_.empty()) {
    run_commands(work_cmds_.data(), work_cmds_.size());
    work_cmds_.clear();
    shrink_after_peak(work_cmds_);
    did = true;
  }
  return did;
}

void Loop::post_records() {
  snap_subs_.store(stats_.send_submissions, std::memory_order_relaxed);
  snap_recvs_.store(stats_.recv_calls, std::memory_order_relaxed);
  snap_chunks_.store(pool_.chunks_held() * kChunkSize, std::memory_order_relaxed);
  snap_slabs_.store(pool_.slab_count() * kSlabBytes, std::memory_order_relaxed);
  if (recs_.empty()) {
    if (busy_drop_due_) {
      std::lock_guard<std::mutex> g(mu_);
      busy_.store(live_ + listeners_.size(), std::memory_order_relaxed);
      busy_drop_due_ = false;
    }
    return;
  }
  {
    std::lock_guard<std::mutex> g(mu_);
    if (out_recs_.empty()) {
      out_recs_.swap(recs_);
    } else {
      out_recs_.insert(out_recs_.end(), recs_.begin(), recs_.end());
    }
    if (posted_data_) ++posted_seq_;
    // A drop becomes visible with the records that explain it (update_busy).
    busy_.store(live_ + listeners_.size(), std::memory_order_relaxed);
    busy_drop_due_ = false;
  }
  recs_.clear();
  shrink_after_peak(recs_);
  posted_data_ = false;
  notify_(notify_ctx_);
}

void Loop::thread_main() {
  uint64_t consumed_at = 0;  // data sequence up to which recv memory was recycled
  int last = kPollDone;
  while (!stop_.load()) {
    handle_inbox();
    post_records();
    // Recycle the receive memory once JS is done with everything posted.
    uint64_t posted;
    {
      std::lock_guard<std::mutex> g(mu_);
      posted = posted_seq_;
    }
    const uint64_t released = released_seq_.load();
    if (released == posted && consumed_at != posted) {
      be_->recv_consumed();
      consumed_at = posted;
    } else if (released == posted && last == kPollMore) {
      be_->recv_consumed();
    }
    if (last == kPollMore && released != posted) {
      // Receive memory is short and JS still holds some: wait for the release
      // (or work from JS) instead of spinning on readable sockets.
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] {
        return stop_.load() || released_seq_.load() == posted_seq_ || !in_tasks_.empty() || !in_cmds_.empty();
      });
      last = kPollDone;
      continue;
    }
    // Blocks until there is work, or until housekeeping is due.
    last = be_->poll(maint_wait_ms_);
    if (last < 0) last = kPollDone;
    finish_turn();
  }
  post_records();
}

}  // namespace fastport
