#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "core/evaluator.h"
#include "core/profile_store.h"
#include "tests/core/profile_store_fixture.h"

namespace segd {
namespace {

using namespace store_testing;  // NOLINT: test helpers

// ---- Randomized round trip ----

// The reference: SPEC §2 applied to plain containers.
struct ModelProfile {
  std::map<std::string, Value> attrs;
  std::vector<Event> events;
};

class Model {
 public:
  explicit Model(const EngineOptions& o) : o_(o) {}

  // Returns false if the update must be rejected (only increment errors are generated).
  bool Apply(const ProfileUpdate& u, int64_t now) {
    ModelProfile p = profiles_.count(u.key) ? profiles_[u.key] : ModelProfile();
    std::erase_if(p.events, [&](const Event& e) { return e.time <= now - o_.retention_ms; });
    for (const std::string& n : u.unset) p.attrs.erase(n);
    for (const auto& [n, v] : u.set) p.attrs[n] = v;
    std::map<std::string, Value> inc;
    for (const auto& [n, v] : u.increment) inc[n] = v;
    for (const auto& [n, d] : inc) {
      Value base = p.attrs.count(n) ? p.attrs[n] : Value::Int(0);
      if (base.kind() == ValueKind::kInt && d.kind() == ValueKind::kInt) {
        int64_t r;
        if (__builtin_add_overflow(base.int_value(), d.int_value(), &r)) return false;
        p.attrs[n] = Value::Int(r);
        continue;
      }
      if (base.kind() != ValueKind::kInt && base.kind() != ValueKind::kFloat) return false;
      double b = base.kind() == ValueKind::kInt ? base.int_value() : base.float_value();
      double x = d.kind() == ValueKind::kInt ? d.int_value() : d.float_value();
      if (!std::isfinite(b + x)) return false;
      p.attrs[n] = Value::Float(b + x);
    }
    for (Event e : u.events) {
      if (e.time == 0) e.time = now;
      if (e.time <= now - o_.retention_ms) continue;
      bool dup = !e.id.empty() &&
                 std::any_of(p.events.begin(), p.events.end(),
                             [&](const Event& x) { return x.type == e.type && x.id == e.id; });
      if (dup) continue;
      std::map<std::string, Value> props;
      for (const auto& [n, v] : e.properties) props[n] = v;
      e.properties.assign(props.begin(), props.end());
      auto at = std::upper_bound(p.events.begin(), p.events.end(), e.time,
                                 [](int64_t t, const Event& x) { return t < x.time; });
      p.events.insert(at, e);
      if (p.events.size() > o_.max_events) p.events.erase(p.events.begin());
    }
    profiles_[u.key] = std::move(p);
    return true;
  }

  void Erase(const std::string& key) { profiles_.erase(key); }

  ProfileData Read(const std::string& key, int64_t now) const {
    const ModelProfile& p = profiles_.at(key);
    ProfileData out;
    out.key = key;
    out.attributes.assign(p.attrs.begin(), p.attrs.end());
    for (const Event& e : p.events) {
      if (e.time > now - o_.retention_ms) out.events.push_back(e);
    }
    return out;
  }

  const std::map<std::string, ModelProfile>& profiles() const { return profiles_; }

 private:
  EngineOptions o_;
  std::map<std::string, ModelProfile> profiles_;
};

class RandomUpdates {
 public:
  explicit RandomUpdates(uint32_t seed) : rng_(seed) {}

  size_t Below(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }
  bool OneIn(size_t n) { return Below(n) == 0; }

  std::string Name() {
    static const char* kNames[] = {"a", "b", "c", "plan", "age", "ltv", "tags", "名"};
    return kNames[Below(8)];
  }
  std::string String() {
    switch (Below(4)) {
      case 0:
        return std::string(Below(3), 'x');
      case 1:
        return "v" + std::to_string(Below(5));
      case 2:
        return "unique-" + std::to_string(counter_++);
      default:
        return "ünï" + std::to_string(Below(50));
    }
  }
  Value Scalar() {
    switch (Below(6)) {
      case 0:
        return Value::String(String());
      case 1: {
        static const int64_t kInts[] = {0,
                                        1,
                                        -1,
                                        127,
                                        128,
                                        -1000000,
                                        std::numeric_limits<int64_t>::max(),
                                        std::numeric_limits<int64_t>::min()};
        return Value::Int(OneIn(2) ? kInts[Below(8)] : static_cast<int64_t>(rng_()));
      }
      case 2: {
        static const double kFloats[] = {0.0, -0.0, 19.99, 0.1, 1e300, -2.5, 1234.567};
        return Value::Float(OneIn(2) ? kFloats[Below(7)]
                                     : std::uniform_real_distribution<double>(-1e6, 1e6)(rng_));
      }
      case 3:
        return Value::Bool(OneIn(2));
      default:
        return Value::Time(static_cast<int64_t>(rng_() >> 20) - 1000);
    }
  }
  Value AnyValue() {
    if (OneIn(6)) {
      std::vector<std::string> items(Below(4));
      for (auto& s : items) s = String();
      return Value::List(std::move(items));
    }
    return Scalar();
  }
  Value Number() {
    return OneIn(2) ? Value::Int(static_cast<int64_t>(Below(2000)) - 1000)
                    : Value::Float(std::uniform_real_distribution<double>(-50, 50)(rng_));
  }

  ProfileUpdate Next(int64_t now, int num_keys) {
    ProfileUpdate u = Upd("key" + std::to_string(Below(num_keys)));
    if (OneIn(4)) {
      for (size_t i = Below(3); i > 0; --i) u.unset.push_back(Name());
    }
    if (OneIn(2)) {
      for (size_t i = Below(4); i > 0; --i) u.set.emplace_back(Name(), AnyValue());
    }
    if (OneIn(4)) {
      for (size_t i = Below(3); i > 0; --i) u.increment.emplace_back(Name(), Number());
    }
    for (size_t i = Below(4); i > 0; --i) {
      static const char* kTypes[] = {"view", "cart", "buy", "login"};
      Event e;
      e.type = kTypes[Below(4)];
      // Mostly recent; some late, some at now, some past retention.
      switch (Below(5)) {
        case 0:
          e.time = 0;
          break;
        case 1:
          e.time = now - static_cast<int64_t>(Below(30)) * kDay;
          break;
        case 2:
          e.time = now - static_cast<int64_t>(Below(1000));
          break;
        default:
          e.time = now - static_cast<int64_t>(Below(3600'000));
      }
      if (OneIn(3)) e.id = "id" + std::to_string(Below(6));
      for (size_t k = Below(4); k > 0; --k) e.properties.emplace_back(Name(), Scalar());
      u.events.push_back(std::move(e));
    }
    return u;
  }

 private:
  std::mt19937_64 rng_;
  uint64_t counter_ = 0;
};

// The view Load fills shows what Read returns: every retained event's time, type and
// properties (decoded from the blob, or kept decoded by the store's cache of long
// histories).
void RequireViewMatchesRead(const ProfileStore& store, Slot slot, int64_t now) {
  ProfileView view;
  store.Load(slot, now, &view);
  const ProfileData p = store.Read(slot, now);
  REQUIRE(view.num_events() == p.events.size());
  for (size_t i = 0; i < p.events.size(); ++i) {
    const Event& e = p.events[i];
    INFO("event " << i);
    REQUIRE(view.event_time(i) == e.time);
    REQUIRE(view.event_type(i) == store.interner().Find(e.type));
    for (const auto& [name, value] : e.properties) {
      if (value.kind() == ValueKind::kTime || value.kind() == ValueKind::kList) continue;
      const Val want = LiteralVal(value);
      const Val v = view.EventProp(i, *store.interner().Find(name));
      REQUIRE(v.kind == want.kind);
      REQUIRE(CompareVals(v, CompareOp::kEq, want));
    }
  }
}

TEST_CASE("ProfileStore matches a reference model under random updates", "[core][store]") {
  EngineOptions o = Options(12);
  o.retention_ms = 20 * kDay;
  // 1: every profile updated twice in a row of its place has its history kept decoded.
  o.cached_history_min_events = GENERATE(1u, 1024u);
  ProfileStore store(o);
  Model model(o);
  RandomUpdates gen(301);
  int64_t now = kNow;
  constexpr int kKeys = 40;
  int rejected = 0;
  for (int step = 0; step < 20000; ++step) {
    if (gen.OneIn(50)) now += static_cast<int64_t>(gen.Below(3)) * kDay;
    if (gen.OneIn(200)) {
      const std::string key = "key" + std::to_string(gen.Below(kKeys));
      if (std::optional<Slot> s = store.Find(key)) store.Erase(*s);
      model.Erase(key);
      continue;
    }
    if (gen.OneIn(300)) {  // a replay of the model's own profile reads back the same
      const std::string key = "key" + std::to_string(gen.Below(kKeys));
      if (model.profiles().count(key)) {
        ProfileData p = model.Read(key, now);
        REQUIRE(store.Replace(p, now).ok());
        REQUIRE(store.Read(*store.Find(key), now) == p);
      }
      continue;
    }
    const ProfileUpdate u = gen.Next(now, kKeys);
    const bool ok = model.Apply(u, now);
    absl::StatusOr<AppliedUpdate> r = store.Apply(u, now);
    INFO("step " << step << ": " << r.status().ToString());
    REQUIRE(r.ok() == ok);
    if (!ok) ++rejected;
    const std::optional<Slot> slot = store.Find(u.key);
    if (ok) {
      REQUIRE(slot.has_value());
      REQUIRE(store.Read(*slot, now) == model.Read(u.key, now));
      RequireViewMatchesRead(store, *slot, now);
      // Later, when retention may have dropped some of the events out of the view.
      RequireViewMatchesRead(store, *slot, now + static_cast<int64_t>(gen.Below(30)) * kDay);
    }
  }
  REQUIRE(rejected > 0);
  if (o.cached_history_min_events == 1) REQUIRE(store.CachedHistories() > 0);
  uint64_t events = 0;
  for (const auto& [key, p] : model.profiles()) {
    REQUIRE(store.Read(*store.Find(key), now) == model.Read(key, now));
    events += model.Read(key, now).events.size();
  }
  REQUIRE(store.size() == model.profiles().size());
  for (Slot s = 0; s < store.slot_limit(); ++s) {
    if (store.IsLive(s)) store.Prune(s, now);
  }
  REQUIRE(store.event_count() == events);
}

// ---- Memory and speed (informative) ----

// A profile shaped like shared/BENCHMARK.md's: 9 attributes and 20 events over 30 days.
ProfileData BenchmarkProfile(uint64_t n, int64_t now, std::mt19937_64& rng) {
  static const char* kCountries[] = {"DK", "SE", "NO", "DE", "US", "GB", "FR", "ES", "IT", "NL"};
  static const char* kDevices[] = {"ios", "android", "web"};
  static const char* kPlans[] = {"free", "basic", "pro", "enterprise"};
  static const char* kDomains[] = {"gmail.com", "yahoo.com", "hotmail.com", "outlook.com"};
  static const char* kSections[] = {"shoes", "bags", "hats", "coats", "shirts", "belts"};
  auto below = [&](uint64_t k) { return rng() % k; };
  ProfileData p;
  p.key = "u" + std::to_string(n);
  std::vector<std::string> tags;
  for (uint64_t i = below(4); i > 0; --i) tags.push_back("tag" + std::to_string(below(10)));
  p.attributes = {
      {"country", Value::String(kCountries[below(10)])},
      {"device", Value::String(kDevices[below(3)])},
      {"plan", Value::String(kPlans[below(4)])},
      {"age", Value::Int(18 + below(63))},
      {"ltv", Value::Float(std::pow(std::uniform_real_distribution<double>(0, 1)(rng), 3) * 2000)},
      {"email", Value::String("u" + std::to_string(n) + "@" + kDomains[below(4)])},
      {"signup_at", Value::Time(now - below(365 * kDay))},
      {"tags", Value::List(tags)},
      {"newsletter", Value::Bool(below(10) < 3)},
  };
  for (int i = 0; i < 20; ++i) {
    const int64_t t = now - 1 - below(30 * kDay);
    const uint64_t kind = below(100);
    if (kind < 70) {
      p.events.push_back(Ev("page_view", t, "",
                            {{"url", Value::String(std::string("/") + kSections[below(6)] + "/" +
                                                   std::to_string(below(2000)))},
                             {"category", Value::String("cat" + std::to_string(below(12)))}}));
    } else if (kind < 85) {
      p.events.push_back(Ev("add_to_cart", t, "",
                            {{"sku", Value::String("sku" + std::to_string(below(5000)))},
                             {"price", Value::Float(static_cast<double>(below(50000)) / 100)}}));
    } else if (kind < 90) {
      p.events.push_back(
          Ev("purchase", t, "",
             {{"order_id", Value::String("o" + std::to_string(rng() % 100000000))},
              {"amount", Value::Float(5 + static_cast<double>(below(49500)) / 100)}}));
    } else if (kind < 97) {
      p.events.push_back(
          Ev("login", t, "", {{"method", Value::String(below(2) ? "password" : "sso")}}));
    } else {
      p.events.push_back(Ev("email_click", t, "",
                            {{"campaign", Value::String("camp" + std::to_string(below(20)))}}));
    }
  }
  auto by_name = [](const auto& a, const auto& b) { return a.first < b.first; };
  std::sort(p.attributes.begin(), p.attributes.end(), by_name);
  for (Event& e : p.events) std::sort(e.properties.begin(), e.properties.end(), by_name);
  std::sort(p.events.begin(), p.events.end(),
            [](const Event& a, const Event& b) { return a.time < b.time; });
  return p;
}

TEST_CASE("ProfileStore memory and speed on benchmark-like profiles", "[core][store]") {
  ProfileStore store(Options());
  std::mt19937_64 rng(7);
  // SEGD_STORE_BENCH_PROFILES=1000000 measures at the benchmark's scale, where the
  // store's fixed costs (interned values, tables) no longer weigh per profile.
  const char* env = std::getenv("SEGD_STORE_BENCH_PROFILES");
  const int kProfiles = env != nullptr ? std::atoi(env) : 10000;
  std::vector<ProfileData> profiles;
  for (int n = 0; n < kProfiles; ++n) profiles.push_back(BenchmarkProfile(n, kNow, rng));
  for (const ProfileData& p : profiles) REQUIRE(store.Replace(p, kNow).ok());
  REQUIRE(store.size() == static_cast<size_t>(kProfiles));
  REQUIRE(store.event_count() == 20u * kProfiles);
  const double per_profile = static_cast<double>(store.MemoryBytes()) / kProfiles;
  std::printf("ProfileStore: %.1f bytes/profile (MemoryBytes, %d profiles x 20 events)\n",
              per_profile, kProfiles);
  REQUIRE(per_profile > 100);
  for (int n = 0; n < kProfiles; n += 503) {
    REQUIRE(store.Read(*store.Find(profiles[n].key), kNow) == profiles[n]);
  }

  using Clock = std::chrono::steady_clock;
  ProfileView view;
  auto start = Clock::now();
  uint64_t seen = 0;
  for (int round = 0; round < 5; ++round) {
    for (Slot s = 0; s < store.slot_limit(); ++s) {
      store.Load(s, kNow, &view);
      seen += view.num_events();
    }
  }
  const double load_ns =
      std::chrono::duration<double, std::nano>(Clock::now() - start).count() / (5.0 * kProfiles);
  REQUIRE(seen == 5u * 20 * kProfiles);

  ProfileUpdate u;
  u.events = {Ev("page_view", 0, "",
                 {{"url", Value::String("/shoes/17")}, {"category", Value::String("cat3")}})};
  start = Clock::now();
  for (int n = 0; n < kProfiles; ++n) {
    u.key = profiles[n].key;
    REQUIRE(store.Apply(u, kNow + 1).ok());
  }
  const double apply_ns =
      std::chrono::duration<double, std::nano>(Clock::now() - start).count() / kProfiles;
  std::printf(
      "ProfileStore: Load %.0f ns/profile, Apply (one event) %.0f ns/update; "
      "%.1f bytes/profile after\n",
      load_ns, apply_ns, static_cast<double>(store.MemoryBytes()) / kProfiles);
}

}  // namespace
}  // namespace segd
