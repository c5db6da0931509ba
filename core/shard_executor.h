#pragma once

#include <atomic>
#include <deque>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"

namespace segd {

// Runs work on shards. Each shard's tasks run one at a time, in the order they were
// posted, so a shard needs no lock: whoever runs its tasks owns it.
//
// Thread safety: Post may be called from any thread.
class ShardExecutor {
 public:
  using Task = absl::AnyInvocable<void() &&>;
  virtual ~ShardExecutor() = default;
  virtual void Post(int shard, Task task) = 0;
  // How many tasks posted to `shard` wait to start behind the one running: asked by a
  // task that may leave work to be done with theirs. Any thread; a hint, stale by the
  // time it returns.
  virtual size_t Queued(int /*shard*/) const { return 0; }
};

// Runs each task at once, on the posting thread: for tests, benchmarks and tools that
// drive an engine from one thread.
class InlineExecutor final : public ShardExecutor {
 public:
  void Post(int /*shard*/, Task task) override { std::move(task)(); }
};

// One thread per shard, each draining its own queue: the server's model (one shard per
// core, no lock on the update path but the queue's).
class ThreadedExecutor final : public ShardExecutor {
 public:
  explicit ThreadedExecutor(int shards);
  // Runs every task already posted, then stops the threads.
  ~ThreadedExecutor() override;
  ThreadedExecutor(const ThreadedExecutor&) = delete;
  ThreadedExecutor& operator=(const ThreadedExecutor&) = delete;

  void Post(int shard, Task task) override;
  size_t Queued(int shard) const override {
    return queues_[shard]->waiting.load(std::memory_order_relaxed);
  }

 private:
  struct Queue {
    absl::Mutex mu;
    std::deque<Task> tasks ABSL_GUARDED_BY(mu);
    std::atomic<size_t> waiting{0};  // posted, not yet started
    bool stopping ABSL_GUARDED_BY(mu) = false;
    std::thread thread;
  };
  static void Run(Queue* q);

  std::vector<std::unique_ptr<Queue>> queues_;
};

}  // namespace segd
