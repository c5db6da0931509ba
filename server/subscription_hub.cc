#include "server/subscription_hub.h"

#include <utility>

#include "core/thread_name.h"

namespace segd::server {

// A wakeup is lost neither way: Notify() sets signaled_ before it takes mu_, and Wait()
// checks signaled_ under mu_ before it sleeps, so a Notify() that comes after that check
// can only take mu_ once the waiter sleeps, and its Signal() wakes it.
void SubscriptionHub::Wakeup::Notify() {
  changed_.store(true);
  if (signaled_.exchange(true)) return;
  absl::MutexLock lock(&mu_);
  cv_.Signal();
}

void SubscriptionHub::Wakeup::NotifyPaced() {
  changed_.store(true);
  if (pacing_.load()) return;  // the pump passes within its pacing interval
  Notify();
}

bool SubscriptionHub::Wakeup::Wait(absl::Duration timeout, bool pacing, bool* changed) {
  absl::MutexLock lock(&mu_);
  pacing_.store(pacing);
  if (!stopped_ && !signaled_.load() && (pacing || !changed_.load())) {
    cv_.WaitWithTimeout(&mu_, timeout);
  }
  // Cleared before the pump's pass, so that changes appended during it count for the next.
  signaled_.store(false);
  *changed = changed_.exchange(false);
  return !stopped_;
}

void SubscriptionHub::Wakeup::Stop() {
  absl::MutexLock lock(&mu_);
  stopped_ = true;
  cv_.SignalAll();
}

SubscriptionHub::SubscriptionHub(Engine& engine, absl::Duration poll_interval,
                                 absl::Duration pacing_interval)
    : poll_interval_(poll_interval), pacing_interval_(pacing_interval) {
  engine.SetChangeListener([wakeup = wakeup_](size_t queued) { wakeup->NotifyOfChanges(queued); });
  pump_ = std::thread([this] {
    NameThisThread("segd-pump");
    Run();
  });
}

SubscriptionHub::~SubscriptionHub() {
  wakeup_->Stop();
  pump_.join();
}

bool SubscriptionHub::Add(std::shared_ptr<Subscriber> subscriber) {
  {
    absl::MutexLock lock(&mu_);
    if (closed_) return false;
    const Subscriber* key = subscriber.get();
    subscribers_.emplace(key, std::move(subscriber));
    wakeup_->subscribers_.store(subscribers_.size());
  }
  wakeup_->Notify();
  return true;
}

void SubscriptionHub::Remove(const Subscriber* subscriber) {
  std::shared_ptr<Subscriber> removed;  // released outside the lock
  absl::MutexLock lock(&mu_);
  auto it = subscribers_.find(subscriber);
  if (it == subscribers_.end()) return;
  removed = std::move(it->second);
  subscribers_.erase(it);
  wakeup_->subscribers_.store(subscribers_.size());
}

std::vector<std::shared_ptr<SubscriptionHub::Subscriber>> SubscriptionHub::Close() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
  std::vector<std::shared_ptr<Subscriber>> out;
  out.reserve(subscribers_.size());
  for (const auto& [key, subscriber] : subscribers_) out.push_back(subscriber);
  return out;
}

void SubscriptionHub::Run() {
  std::vector<std::shared_ptr<Subscriber>> pass;
  // Paced while each pass finds changes appended since the one before.
  bool changed = false;
  while (wakeup_->Wait(changed ? pacing_interval_ : poll_interval_, changed, &changed)) {
    {
      absl::MutexLock lock(&mu_);
      pass.reserve(subscribers_.size());
      for (const auto& [key, subscriber] : subscribers_) pass.push_back(subscriber);
    }
    const absl::Time now = absl::Now();
    for (const std::shared_ptr<Subscriber>& subscriber : pass) subscriber->Poll(now);
    pass.clear();  // a subscriber may be freed here, on the pump thread
  }
}

}  // namespace segd::server
