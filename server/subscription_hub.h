#pragma once

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/engine.h"

namespace segd::server {

// The thread that moves changes from the engine's change logs to the open change-stream
// subscriptions (SPEC §4), and the registry of those subscriptions.
//
// The engine's change listener only raises a flag and signals the pump (Wakeup), and only
// while a subscription is registered: with none, appending changes wakes no thread (a
// subscription added later reads them from its cursor, and its Add wakes the pump). The
// pump then polls every registered subscriber, which reads the logs after its own cursor
// and starts a write if it has none in flight. The pump also wakes every
// `poll_interval`, so that idle subscribers send their heartbeats. It never waits for a
// subscriber: one with a write in flight is skipped, and continues by itself when the
// write completes. Ingest thus never waits for the pump or for any subscriber.
//
// Thread safety: all methods may be called from any thread.
class SubscriptionHub {
 public:
  // What the pump drives: one open subscription.
  class Subscriber {
   public:
    virtual ~Subscriber() = default;
    // Sends what is due (new changes, or a heartbeat). Runs on the pump thread; must
    // not block.
    virtual void Poll(absl::Time now) = 0;
  };

  // A flag and a condition variable: Notify() is cheap enough for the engine's change
  // listener (a shard thread takes no lock when a wakeup is already pending). Shared,
  // because the engine's listener and pending snapshot callbacks may outlive the hub.
  class Wakeup {
   public:
    void Notify();
    // Notify() if a subscription is registered (the engine's change listener).
    void NotifyOfChanges() {
      if (subscribers_.load() > 0) Notify();
    }
    // Waits until Notify() or `timeout`; false once Stop() was called.
    bool Wait(absl::Duration timeout);
    void Stop();

   private:
    friend class SubscriptionHub;

    std::atomic<bool> pending_{false};
    // Set by the hub under its mu_ before Add's Notify(). A shard that appends changes
    // and then reads 0 here misses no subscription: one added after that read gets the
    // changes from the log on the pump's pass that its own Notify() starts.
    std::atomic<size_t> subscribers_{0};
    absl::Mutex mu_;
    absl::CondVar cv_;
    bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  };

  // Installs the engine's change listener and starts the pump.
  // REQUIRES: the engine is not yet shared (Engine::SetChangeListener); it outlives the
  // hub.
  SubscriptionHub(Engine& engine, absl::Duration poll_interval);
  // Stops and joins the pump.
  ~SubscriptionHub();
  SubscriptionHub(const SubscriptionHub&) = delete;
  SubscriptionHub& operator=(const SubscriptionHub&) = delete;

  // Registers `subscriber` and wakes the pump; false (and nothing registered) once
  // Close() was called.
  bool Add(std::shared_ptr<Subscriber> subscriber);
  // Unregisters; the pump polls it no more once its current pass is over (a pass holds
  // its own references).
  void Remove(const Subscriber* subscriber);
  // Refuses new subscribers from now on; returns the registered ones.
  std::vector<std::shared_ptr<Subscriber>> Close();

  // The pump's wakeup, for callbacks that may run after the hub is gone.
  const std::shared_ptr<Wakeup>& wakeup() const { return wakeup_; }

 private:
  void Run();

  const absl::Duration poll_interval_;
  const std::shared_ptr<Wakeup> wakeup_ = std::make_shared<Wakeup>();
  absl::Mutex mu_;
  absl::flat_hash_map<const Subscriber*, std::shared_ptr<Subscriber>> subscribers_
      ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  std::thread pump_;
};

}  // namespace segd::server
