#include "core/shard_executor.h"

#include "absl/strings/str_cat.h"
#include "core/thread_name.h"

namespace segd {

ThreadedExecutor::ThreadedExecutor(int shards) {
  for (int i = 0; i < shards; ++i) {
    queues_.push_back(std::make_unique<Queue>());
    Queue* q = queues_.back().get();
    q->thread = std::thread([q, i] {
      NameThisThread(absl::StrCat("segd-shard-", i));
      Run(q);
    });
  }
}

ThreadedExecutor::~ThreadedExecutor() {
  for (auto& q : queues_) {
    absl::MutexLock lock(&q->mu);
    q->stopping = true;
  }
  for (auto& q : queues_) q->thread.join();
}

void ThreadedExecutor::Post(int shard, Task task) {
  Queue& q = *queues_[shard];
  absl::MutexLock lock(&q.mu);
  q.tasks.push_back(std::move(task));
  q.waiting.fetch_add(1, std::memory_order_relaxed);
}

// Takes every queued task at once, so a burst of small posts costs one lock round.
void ThreadedExecutor::Run(Queue* q) {
  std::deque<Task> batch;
  while (true) {
    {
      absl::MutexLock lock(&q->mu);
      auto ready = [q]() ABSL_SHARED_LOCKS_REQUIRED(q->mu) {
        return !q->tasks.empty() || q->stopping;
      };
      q->mu.Await(absl::Condition(&ready));
      if (q->tasks.empty()) return;  // stopping, and drained
      batch.swap(q->tasks);
    }
    for (Task& task : batch) {
      q->waiting.fetch_sub(1, std::memory_order_relaxed);
      std::move(task)();
    }
    batch.clear();
  }
}

}  // namespace segd
