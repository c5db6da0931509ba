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
// The engine's change listener only raises flags and, when a wakeup is due, signals the
// pump (Wakeup), and only while a subscription is registered: with none, appending
// changes wakes no thread (a subscription added later reads them from its cursor, and its
// Add wakes the pump). The pump then polls every registered subscriber, which reads the
// logs after its own cursor and starts a write if it has none in flight. It never waits
// for a subscriber: one with a write in flight is skipped, and continues by itself when
// the write completes. Ingest thus never waits for the pump or for any subscriber.
//
// Pacing: while changes keep coming, the pump also passes on its own every
// `pacing_interval`, and a shard that appends changes with a backlog of work queued
// behind them (more changes are on their way) does not wake it, but leaves them to that
// pass. Under load the changes of several shard batches thus go out together, one
// subscriber batch where there would be several (each batch costs a write, a wakeup and a
// read on both sides, whatever its size), and each waits at most `pacing_interval`. A
// shard that is not backlogged wakes the pump at once, so a change made when the server
// keeps up is sent at once. Once a pass finds nothing new, the pump sleeps until
// woken or `poll_interval`, when idle subscribers send their heartbeats.
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

  // Flags and a condition variable: cheap enough for the engine's change listener (a
  // shard thread takes no lock when a wakeup is already signaled, or left to the pump's
  // pacing). Shared, because the engine's listener and pending snapshot callbacks may
  // outlive the hub.
  class Wakeup {
   public:
    // Wakes the pump now.
    void Notify();
    // Asks for a pass: the pump's next paced one if it is pacing, else Notify().
    void NotifyPaced();
    // The engine's change listener: changes were appended to a shard's log, and that
    // shard has `queued` tasks waiting. Does nothing while no subscription is registered;
    // else NotifyPaced() for a backlogged shard, Notify() for one that is not.
    void NotifyOfChanges(size_t queued) {
      if (subscribers_.load() == 0) return;
      if (queued >= kBacklog) {
        NotifyPaced();
      } else {
        Notify();
      }
    }
    // Waits until Notify(), `timeout`, or (unless `pacing`) changes appended since the
    // last pass; false once Stop() was called. Sets *changed to whether changes were
    // appended (or Notify() called) since the previous Wait returned.
    bool Wait(absl::Duration timeout, bool pacing, bool* changed);
    void Stop();

   private:
    friend class SubscriptionHub;

    // Tasks waiting behind the one appending that make a shard backlogged. Not 1: a
    // server at half its maximum rate often has the next batch queued, and leaving the
    // changes of each batch to wait for the next would delay them for nothing gained.
    static constexpr size_t kBacklog = 2;

    // Every access is sequentially consistent: a shard stores changed_ and then loads
    // pacing_; the pump stores pacing_ and then (under mu_) loads changed_. So either the
    // shard sees that the pump stopped pacing and wakes it, or the pump sees the changes
    // and does not sleep.
    std::atomic<bool> changed_{false};   // changes appended since the pass began
    std::atomic<bool> signaled_{false};  // Notify() since the pass began
    std::atomic<bool> pacing_{false};
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
  SubscriptionHub(Engine& engine, absl::Duration poll_interval, absl::Duration pacing_interval);
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
  const absl::Duration pacing_interval_;
  const std::shared_ptr<Wakeup> wakeup_ = std::make_shared<Wakeup>();
  absl::Mutex mu_;
  absl::flat_hash_map<const Subscriber*, std::shared_ptr<Subscriber>> subscribers_
      ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  std::thread pump_;
};

}  // namespace segd::server
