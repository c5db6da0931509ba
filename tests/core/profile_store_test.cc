#include "core/profile_store.h"

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

#include "tests/core/profile_store_fixture.h"

namespace segd {
namespace {

using namespace store_testing;  // NOLINT: test helpers

TEST_CASE("ProfileStore reads back every value kind", "[core][store]") {
  ProfileStore store(Options());
  ProfileUpdate u = Upd("user-1");
  u.set = {
      {"s", Value::String("hello")},
      {"empty", Value::String("")},
      {"unicode", Value::String("Grüße, 世界 🎉")},
      {"i", Value::Int(-42)},
      {"imax", Value::Int(std::numeric_limits<int64_t>::max())},
      {"imin", Value::Int(std::numeric_limits<int64_t>::min())},
      {"f", Value::Float(3.141592653589793)},
      {"cents", Value::Float(19.99)},
      {"negzero", Value::Float(-0.0)},
      {"big", Value::Float(1e300)},
      {"tiny", Value::Float(5e-324)},
      {"b", Value::Bool(true)},
      {"nb", Value::Bool(false)},
      {"t", Value::Time(kNow - 5)},
      {"tneg", Value::Time(-1000)},
      {"list", Value::List({"a", "bb", "ccc", "", "ünï"})},
      {"nolist", Value::List({})},
      {"名前", Value::Int(7)},
  };
  MustApply(store, u);
  ProfileData p = ReadKey(store, "user-1");
  NamedValues want = u.set;
  std::sort(want.begin(), want.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  REQUIRE(p.key == "user-1");
  REQUIRE(p.attributes == want);
  // Bit-exact floats, -0.0 included.
  for (const auto& [name, v] : p.attributes) {
    if (name == "negzero") REQUIRE(std::signbit(v.float_value()));
  }
  // Times keep their kind.
  auto it = std::find_if(p.attributes.begin(), p.attributes.end(),
                         [](const auto& nv) { return nv.first == "t"; });
  REQUIRE(it->second.kind() == ValueKind::kTime);
}

TEST_CASE("ProfileStore reads back event ids and properties of every scalar kind",
          "[core][store]") {
  ProfileStore store(Options());
  ProfileUpdate u = Upd("k");
  u.events.push_back(Ev("purchase", kNow - 10, "o-1",
                        {{"sku", Value::String("SKU-1")},
                         {"amount", Value::Float(12.5)},
                         {"qty", Value::Int(3)},
                         {"gift", Value::Bool(true)},
                         {"at", Value::Time(kNow - 100)},
                         {"note", Value::String("ßüñ")},
                         {"qty", Value::Int(4)}}));  // later entry wins
  u.events.push_back(Ev("login", kNow));
  MustApply(store, u);
  ProfileData p = ReadKey(store, "k");
  REQUIRE(p.events.size() == 2);
  const Event& e = p.events[0];
  REQUIRE(e.type == "purchase");
  REQUIRE(e.time == kNow - 10);
  REQUIRE(e.id == "o-1");
  NamedValues want = {{"amount", Value::Float(12.5)}, {"at", Value::Time(kNow - 100)},
                      {"gift", Value::Bool(true)},    {"note", Value::String("ßüñ")},
                      {"qty", Value::Int(4)},         {"sku", Value::String("SKU-1")}};
  REQUIRE(e.properties == want);
  REQUIRE(p.events[1] == Ev("login", kNow));
}

// ---- Validation ----

struct Rejection {
  ProfileUpdate update;
  std::string message;
};

TEST_CASE("ProfileStore rejects invalid updates with messages that say what and where",
          "[core][store]") {
  std::vector<Rejection> cases;
  auto add = [&](ProfileUpdate u, std::string msg) { cases.push_back({std::move(u), msg}); };
  add(Upd(std::string(300, 'k')), "key: must be 1-256 bytes, got 300");
  add(Upd(""), "key: must be 1-256 bytes, got 0");
  add(Upd("bad\xff"), "key: must be valid UTF-8");
  {
    ProfileUpdate u = Upd("k");
    u.set = {{"age", Value::Float(std::nan(""))}};
    add(u, "set[\"age\"]: float is NaN");
    u.set = {{"age", Value::Float(INFINITY)}};
    add(u, "set[\"age\"]: float is Inf");
    u.set = {{"age", Value::Float(-INFINITY)}};
    add(u, "set[\"age\"]: float is -Inf");
    u.set = {{"ok", Value::Int(1)}, {std::string(129, 'n'), Value::Int(1)}};
    add(u, "set[1]: name must be 1-128 bytes of UTF-8");
    u.set = {{"", Value::Int(1)}};
    add(u, "set[0]: name must be 1-128 bytes of UTF-8");
    u.set = {{"s", Value::String("\xc0\x80")}};  // overlong
    add(u, "set[\"s\"]: string is not valid UTF-8");
    u.set = {{"tags", Value::List({"ok", "\xed\xa0\x80"})}};  // a surrogate
    add(u, "set[\"tags\"]: list item 1 is not valid UTF-8");
  }
  {
    ProfileUpdate u = Upd("k");
    u.unset = {"a", std::string("\xff")};
    add(u, "unset[1]: must be 1-128 bytes of UTF-8");
  }
  {
    ProfileUpdate u = Upd("k");
    u.increment = {{"n", Value::String("1")}};
    add(u, "increment[\"n\"]: must be an int or float, got string");
    u.increment = {{"n", Value::Time(1)}};
    add(u, "increment[\"n\"]: must be an int or float, got time");
    u.increment = {{"n", Value::Float(std::nan(""))}};
    add(u, "increment[\"n\"]: float is NaN");
  }
  {
    ProfileUpdate u = Upd("k");
    u.events = {Ev("a", kNow), Ev("b", kNow), Ev("c", kNow + 90'000'000)};
    add(u, "events[2].time: 90000000 ms ahead of now, more than max-future 86400000");
    u.events = {Ev("a", -5)};
    add(u, "events[0].time: must not be negative, got -5");
    u.events = {Ev("a", kNow), Ev(std::string(129, 't'), kNow)};
    add(u, "events[1].type: must be 1-128 bytes of UTF-8");
    u.events = {Ev("a", kNow), Ev("", kNow)};
    add(u, "events[1].type: must be 1-128 bytes of UTF-8");
    u.events = {Ev("a", kNow, "", {{"tags", Value::List({"x"})}})};
    add(u, "events[0].properties[\"tags\"]: lists are not allowed in event properties");
    u.events = {Ev("a", kNow, "", {{"x", Value::Float(INFINITY)}})};
    add(u, "events[0].properties[\"x\"]: float is Inf");
    u.events = {Ev("a", kNow, "", {{"", Value::Int(1)}})};
    add(u, "events[0].properties[0]: name must be 1-128 bytes of UTF-8");
    u.events = {Ev("a", kNow, "\xff")};
    add(u, "events[0].id: must be valid UTF-8");
  }

  for (const Rejection& c : cases) {
    ProfileStore store(Options());
    INFO(c.message);
    absl::Status v = store.Validate(c.update, kNow);
    REQUIRE(v.code() == absl::StatusCode::kInvalidArgument);
    REQUIRE(Msg(v) == c.message);
    absl::StatusOr<AppliedUpdate> r = store.Apply(c.update, kNow);
    REQUIRE(r.status().code() == absl::StatusCode::kInvalidArgument);
    REQUIRE(Msg(r.status()) == c.message);
    // Not even the profile was created.
    REQUIRE(store.size() == 0);
    REQUIRE(store.slot_limit() == 0);
    REQUIRE_FALSE(store.Find(c.update.key).has_value());

    // A replayed profile with the same key, attributes and events: the same message, its
    // attributes named as such.
    if (!c.update.unset.empty() || !c.update.increment.empty()) continue;
    const ProfileData profile{c.update.key, c.update.set, c.update.events, {}};
    std::string message = c.message;
    if (message.starts_with("set[")) message.replace(0, 3, "attributes");
    absl::StatusOr<ReplacedProfile> replaced = store.Replace(profile, kNow);
    REQUIRE(replaced.status().code() == absl::StatusCode::kInvalidArgument);
    REQUIRE(Msg(replaced.status()) == message);
    REQUIRE(store.size() == 0);
  }
}

TEST_CASE("ProfileStore accepts UTF-8 beyond ASCII in every string", "[core][store]") {
  ProfileStore store(Options());
  ProfileUpdate u = Upd("nøgle-ключ");
  u.set = {{"land", Value::String("Ørsted")},
           {"страна", Value::String("日本")},
           {"tags", Value::List({"ok", "😀"})}};
  u.events = {Ev("köb", kNow, "ü1", {{"ø", Value::String("ß")}})};
  MustApply(store, u);
  const ProfileData applied = ReadKey(store, "nøgle-ключ");
  REQUIRE(applied.attributes.size() == 3);
  REQUIRE(applied.events.size() == 1);

  const ProfileData profile{"🔑", u.set, u.events, {}};
  REQUIRE(store.Replace(profile, kNow).ok());
  const ProfileData replayed = ReadKey(store, "🔑");
  REQUIRE(replayed.attributes == applied.attributes);
  REQUIRE(replayed.events == applied.events);
}

TEST_CASE("ProfileStore accepts names and keys at their limits", "[core][store]") {
  ProfileStore store(Options());
  ProfileUpdate u = Upd(std::string(256, 'k'));
  u.set = {{std::string(128, 'n'), Value::Int(1)}};
  u.events = {Ev(std::string(128, 't'), kNow + kDay)};  // exactly max-future ahead
  MustApply(store, u);
  REQUIRE(ReadKey(store, std::string(256, 'k')).events.size() == 1);
}

TEST_CASE("ProfileStore changes nothing when an update is rejected", "[core][store]") {
  ProfileStore store(Options());
  ProfileUpdate u = Upd("k");
  u.set = {{"plan", Value::String("free")}, {"n", Value::Int(1)}};
  u.events = {Ev("login", kNow - 1000, "L1")};
  MustApply(store, u);
  const ProfileData before = ReadKey(store, "k");
  const uint64_t events_before = store.event_count();

  SECTION("an invalid event after valid operations") {
    ProfileUpdate bad = Upd("k");
    bad.unset = {"plan"};
    bad.set = {{"n", Value::Int(99)}, {"new", Value::Bool(true)}};
    bad.increment = {{"m", Value::Int(1)}};
    bad.events = {Ev("login", kNow), Ev("bad", -1)};
    REQUIRE_FALSE(store.Apply(bad, kNow).ok());
  }
  SECTION("an increment that fails against the stored state") {
    ProfileUpdate bad = Upd("k");
    bad.set = {{"n", Value::Int(99)}};
    bad.events = {Ev("login", kNow)};
    bad.increment = {{"plan", Value::Int(1)}};
    absl::StatusOr<AppliedUpdate> r = store.Apply(bad, kNow);
    REQUIRE(Msg(r.status()) == "increment[\"plan\"]: attribute is a string, not a number");
    REQUIRE(Msg(store.Validate(bad, kNow)) == Msg(r.status()));
  }
  REQUIRE(ReadKey(store, "k") == before);
  REQUIRE(store.event_count() == events_before);
  REQUIRE(store.size() == 1);
}

// ---- Increment ----

Value AttrOf(const ProfileStore& store, std::string_view key, std::string_view name) {
  for (auto& [n, v] : ReadKey(store, key).attributes) {
    if (n == name) return v;
  }
  FAIL("no attribute " << name);
  return Value();
}

bool HasAttr(const ProfileStore& store, std::string_view key, std::string_view name) {
  for (auto& [n, v] : ReadKey(store, key).attributes) {
    if (n == name) return true;
  }
  return false;
}

TEST_CASE("ProfileStore increments ints and floats, a missing attribute counting as 0",
          "[core][store]") {
  ProfileStore store(Options());
  ProfileUpdate u = Upd("k");
  u.increment = {{"n", Value::Int(5)}, {"f", Value::Float(1.5)}};
  MustApply(store, u);
  REQUIRE(AttrOf(store, "k", "n") == Value::Int(5));
  REQUIRE(AttrOf(store, "k", "f") == Value::Float(1.5));

  u.increment = {{"n", Value::Int(-7)}};
  MustApply(store, u);
  REQUIRE(AttrOf(store, "k", "n") == Value::Int(-2));  // int + int stays int

  u.increment = {{"n", Value::Float(0.5)}, {"f", Value::Int(2)}};
  MustApply(store, u);
  REQUIRE(AttrOf(store, "k", "n") == Value::Float(-1.5));  // anything with a float is a float
  REQUIRE(AttrOf(store, "k", "f") == Value::Float(3.5));

  // Later entries for the same name win; an increment sees the update's own set/unset.
  u.increment = {{"m", Value::Int(1)}, {"m", Value::Int(10)}};
  u.set = {{"s", Value::Int(100)}};
  u.unset = {"f"};
  MustApply(store, u);
  REQUIRE(AttrOf(store, "k", "m") == Value::Int(10));
  u = Upd("k");
  u.set = {{"s", Value::Int(100)}};
  u.unset = {"f"};
  u.increment = {{"s", Value::Int(1)}, {"f", Value::Int(2)}};
  MustApply(store, u);
  REQUIRE(AttrOf(store, "k", "s") == Value::Int(101));
  REQUIRE(AttrOf(store, "k", "f") == Value::Int(2));
}

TEST_CASE("ProfileStore rejects increments of non-numbers and on overflow", "[core][store]") {
  ProfileStore store(Options());
  ProfileUpdate u = Upd("k");
  u.set = {{"plan", Value::String("pro")},
           {"at", Value::Time(5)},
           {"b", Value::Bool(true)},
           {"tags", Value::List({"x"})},
           {"n", Value::Int(std::numeric_limits<int64_t>::max() - 1)},
           {"lo", Value::Int(std::numeric_limits<int64_t>::min())},
           {"f", Value::Float(1.7e308)}};
  MustApply(store, u);
  const ProfileData before = ReadKey(store, "k");
  auto reject = [&](std::string name, Value v, std::string msg) {
    ProfileUpdate inc = Upd("k");
    inc.increment = {{name, std::move(v)}};
    absl::StatusOr<AppliedUpdate> r = store.Apply(inc, kNow);
    REQUIRE(Msg(r.status()) == msg);
  };
  reject("plan", Value::Int(1), "increment[\"plan\"]: attribute is a string, not a number");
  reject("at", Value::Int(1), "increment[\"at\"]: attribute is a time, not a number");
  reject("b", Value::Float(1), "increment[\"b\"]: attribute is a bool, not a number");
  reject("tags", Value::Int(1), "increment[\"tags\"]: attribute is a list, not a number");
  reject("n", Value::Int(2), "increment[\"n\"]: int64 overflow");
  reject("lo", Value::Int(-1), "increment[\"lo\"]: int64 overflow");
  reject("f", Value::Float(1.7e308), "increment[\"f\"]: float result is Inf");
  REQUIRE(ReadKey(store, "k") == before);

  ProfileUpdate ok = Upd("k");
  ok.increment = {{"n", Value::Int(1)}};
  MustApply(store, ok);
  REQUIRE(AttrOf(store, "k", "n") == Value::Int(std::numeric_limits<int64_t>::max()));
}

// ---- Order within an update ----

TEST_CASE("ProfileStore applies unset before set, and later sets win", "[core][store]") {
  ProfileStore store(Options());
  ProfileUpdate u = Upd("k");
  u.set = {{"a", Value::Int(1)}, {"b", Value::Int(2)}};
  MustApply(store, u);

  u = Upd("k");
  u.unset = {"a", "b", "never"};
  u.set = {{"a", Value::Int(3)}, {"a", Value::Int(4)}};
  AppliedUpdate r = MustApply(store, u);
  REQUIRE(AttrOf(store, "k", "a") == Value::Int(4));
  REQUIRE_FALSE(HasAttr(store, "k", "b"));
  REQUIRE(Names(store, r.attributes) == std::vector<std::string>{"a", "b"});
}

TEST_CASE("ProfileStore creates an empty profile from an update with no operations",
          "[core][store]") {
  ProfileStore store(Options());
  AppliedUpdate r = MustApply(store, Upd("empty"));
  REQUIRE(r.created);
  REQUIRE(r.attributes.empty());
  REQUIRE(r.event_types.empty());
  ProfileData p = ReadKey(store, "empty");
  REQUIRE(p.attributes.empty());
  REQUIRE(p.events.empty());
  REQUIRE(store.size() == 1);
  REQUIRE_FALSE(MustApply(store, Upd("empty")).created);
}

// ---- Events ----

TEST_CASE("ProfileStore ignores an event whose (type, id) is already retained", "[core][store]") {
  ProfileStore store(Options());
  ProfileUpdate u = Upd("k");
  u.events = {Ev("purchase", kNow - 100, "o1")};
  MustApply(store, u);

  u.events = {Ev("purchase", kNow - 50, "o1"),  // duplicate of a stored event
              Ev("purchase", kNow - 40, "o2"),  // new
              Ev("purchase", kNow - 30, "o2"),  // duplicate of the one just added
              Ev("refund", kNow - 20, "o1"),    // other type, same id: not a duplicate
              Ev("purchase", kNow - 10),        // no id: never a duplicate
              Ev("purchase", kNow - 10)};
  AppliedUpdate r = MustApply(store, u);
  REQUIRE(r.events_added == 4);
  ProfileData p = ReadKey(store, "k");
  REQUIRE(Times(p) == std::vector<int64_t>{kNow - 100, kNow - 40, kNow - 20, kNow - 10, kNow - 10});
  REQUIRE(Ids(p) == std::vector<std::string>{"o1", "o2", "o1", "", ""});
  REQUIRE(p.events[2].type == "refund");

  // All duplicates: nothing is added.
  u.events = {Ev("purchase", kNow, "o1"), Ev("refund", kNow, "o1")};
  r = MustApply(store, u);
  REQUIRE(r.events_added == 0);
  REQUIRE(r.event_types.empty());
  REQUIRE(store.event_count() == 5);
}

TEST_CASE("ProfileStore drops events past retention on ingest and as time passes",
          "[core][store]") {
  EngineOptions o = Options();
  o.retention_ms = 10 * kDay;
  ProfileStore store(o);
  ProfileUpdate u = Upd("k");
  u.set = {{"a", Value::Int(1)}};
  u.events = {Ev("old", kNow - 10 * kDay),       // exactly at now - retention: dropped
              Ev("kept", kNow - 10 * kDay + 1),  // one ms later: kept
              Ev("new", 0)};                     // time 0 is now
  AppliedUpdate r = MustApply(store, u);
  REQUIRE(r.events_added == 2);
  REQUIRE(Names(store, r.event_types) == std::vector<std::string>{"kept", "new"});
  ProfileData p = ReadKey(store, "k");
  REQUIRE(Times(p) == std::vector<int64_t>{kNow - 10 * kDay + 1, kNow});
  REQUIRE(AttrOf(store, "k", "a") == Value::Int(1));  // the update was applied

  const Slot slot = *store.Find("k");
  ProfileView view;
  store.Load(slot, kNow, &view);
  REQUIRE(view.num_events() == 2);
  store.Load(slot, kNow + 1, &view);  // "kept" is now at now - retention
  REQUIRE(view.num_events() == 1);
  REQUIRE(view.event_time(0) == kNow);
  REQUIRE(Times(store.Read(slot, kNow + 1)) == std::vector<int64_t>{kNow});
  store.Load(slot, kNow + 10 * kDay, &view);
  REQUIRE(view.num_events() == 0);

  // Storage still holds both until pruned.
  REQUIRE(store.event_count() == 2);
  store.Prune(slot, kNow + 1);
  REQUIRE(store.event_count() == 1);
  REQUIRE(Times(store.Read(slot, kNow)) == std::vector<int64_t>{kNow});
  // Apply prunes the profile it touches.
  MustApply(store, Upd("k"), kNow + 10 * kDay);
  REQUIRE(store.event_count() == 0);
}

TEST_CASE("ProfileStore places late events in history order, after ties", "[core][store]") {
  ProfileStore store(Options());
  ProfileUpdate u = Upd("k");
  u.events = {Ev("a", kNow - 300, "1"), Ev("a", kNow - 100, "2")};
  MustApply(store, u);
  u.events = {Ev("a", kNow - 200, "3"),  // between
              Ev("a", kNow - 100, "4"),  // ties go after existing events
              Ev("a", kNow - 400, "5"),  // before all
              Ev("a", kNow - 300, "6"),  // tie with the first
              Ev("a", kNow, "7")};       // at the end
  MustApply(store, u);
  ProfileData p = ReadKey(store, "k");
  REQUIRE(Ids(p) == std::vector<std::string>{"5", "1", "6", "3", "2", "4", "7"});
  REQUIRE(Times(p) == std::vector<int64_t>{kNow - 400, kNow - 300, kNow - 300, kNow - 200,
                                           kNow - 100, kNow - 100, kNow});
  ProfileView view;
  store.Load(*store.Find("k"), kNow, &view);
  REQUIRE(view.num_events() == 7);
  for (size_t i = 0; i < view.num_events(); ++i) REQUIRE(view.event_time(i) == p.events[i].time);
}

TEST_CASE("ProfileStore drops the oldest event past max_events", "[core][store]") {
  ProfileStore store(Options(3));
  ProfileUpdate u = Upd("k");
  u.events = {Ev("a", kNow - 40, "1"), Ev("b", kNow - 30, "2"), Ev("c", kNow - 20, "3")};
  MustApply(store, u);

  u.events = {Ev("d", kNow - 10, "4")};
  AppliedUpdate r = MustApply(store, u);
  REQUIRE(Ids(ReadKey(store, "k")) == std::vector<std::string>{"2", "3", "4"});
  REQUIRE(Names(store, r.event_types) == std::vector<std::string>{"a", "d"});
  REQUIRE(r.events_added == 1);

  // A late event older than all others is added and then dropped itself.
  u.events = {Ev("e", kNow - 1000, "5")};
  r = MustApply(store, u);
  REQUIRE(Ids(ReadKey(store, "k")) == std::vector<std::string>{"2", "3", "4"});
  REQUIRE(Names(store, r.event_types) == std::vector<std::string>{"e"});

  // A late event in the middle pushes out the oldest.
  u.events = {Ev("f", kNow - 25, "6")};
  MustApply(store, u);
  REQUIRE(Ids(ReadKey(store, "k")) == std::vector<std::string>{"6", "3", "4"});
  REQUIRE(Times(ReadKey(store, "k")) == std::vector<int64_t>{kNow - 25, kNow - 20, kNow - 10});
  REQUIRE(store.event_count() == 3);

  // The id of a dropped event is no longer a duplicate.
  u.events = {Ev("b", kNow, "2")};
  MustApply(store, u);
  REQUIRE(Ids(ReadKey(store, "k")) == std::vector<std::string>{"3", "4", "2"});
}

TEST_CASE("ProfileStore keeps a hot profile's long history decoded, in step with it",
          "[core][store]") {
  EngineOptions o = Options(4);
  o.cached_history_min_events = 4;
  ProfileStore store(o);
  auto view_event = [](int i) {  // the i-th event sent: property n = i
    return Ev("view", kNow - 1000 + i, "", {{"n", Value::Int(i)}});
  };
  // What a view of "hot" must show after event `last` was sent: the newest 4 events.
  auto require_view = [&](int last) {
    ProfileView view;
    store.Load(*store.Find("hot"), kNow, &view);
    REQUIRE(view.num_events() == 4);
    const uint32_t n = *store.interner().Find("n");
    for (int k = 0; k < 4; ++k) {
      INFO("last " << last << ", event " << k);
      REQUIRE(view.event_time(k) == kNow - 1000 + last - 3 + k);
      REQUIRE(view.EventProp(k, n).i == last - 3 + k);
    }
  };
  ProfileUpdate u = Upd("hot");
  u.events = {view_event(0), view_event(1), view_event(2), view_event(3)};
  MustApply(store, u);
  for (int i = 4; i < 40; ++i) {
    u.events = {view_event(i)};
    u.set.clear();
    // Attributes of a new size move the events behind them.
    if (i % 3 == 0) u.set = {{"plan", Value::String(std::string(i % 7, 'x'))}};
    MustApply(store, u);
    ProfileUpdate other = Upd("other");
    other.events = {view_event(i)};
    MustApply(store, other);  // another profile, elsewhere in the store
    require_view(i);
  }
  // Seen updated twice with 4 events: its history is kept decoded, patched since.
  REQUIRE(store.CachedHistories() >= 1);

  // A late event lands in the middle (then is dropped as the oldest): decoded again.
  u.set.clear();
  u.events = {Ev("view", kNow - 2000, "", {{"n", Value::Int(-1)}})};
  MustApply(store, u);
  require_view(39);
  u.events = {view_event(40)};
  MustApply(store, u);
  require_view(40);
  // A replace or an erase forgets it.
  const size_t cached = store.CachedHistories();
  store.Erase(*store.Find("hot"));
  REQUIRE(store.CachedHistories() == cached - 1);
}

// ---- Replace ----

TEST_CASE("ProfileStore replaces a whole profile", "[core][store]") {
  EngineOptions o = Options(3);
  o.retention_ms = 10 * kDay;
  ProfileStore store(o);
  ProfileUpdate u = Upd("k");
  u.set = {{"old", Value::Int(1)}, {"both", Value::Int(1)}};
  u.events = {Ev("x", kNow - 5)};
  MustApply(store, u);
  const Slot slot = *store.Find("k");

  ProfileData p;
  p.key = "k";
  p.attributes = {{"both", Value::Int(2)}, {"new", Value::String("v")}, {"both", Value::Int(3)}};
  p.events = {Ev("b", kNow - 20, "i1"),
              Ev("a", kNow - 30),
              Ev("dup", kNow - 25, "d"),
              Ev("dup", kNow - 24, "d"),    // duplicate (type, id): ignored
              Ev("old", kNow - 11 * kDay),  // past retention: dropped
              Ev("c", 0),                   // now
              Ev("a", kNow - 30, "tie")};   // same time: keeps its order
  p.segments = {"ignored"};
  absl::StatusOr<ReplacedProfile> r = store.Replace(p, kNow);
  REQUIRE(r.ok());
  REQUIRE_FALSE(r->created);
  REQUIRE(r->slot == slot);
  REQUIRE(r->events_added == 3);

  ProfileData got = store.Read(slot, kNow);
  REQUIRE(got.attributes == NamedValues{{"both", Value::Int(3)}, {"new", Value::String("v")}});
  // Sorted stably by time, then the newest 3 kept: a(-30), a(-30,tie), dup(-25), b(-20), c(0).
  REQUIRE(Times(got) == std::vector<int64_t>{kNow - 25, kNow - 20, kNow});
  REQUIRE(got.events[0].type == "dup");
  REQUIRE(store.event_count() == 3);

  // A new key is created; a bad profile changes nothing.
  p.key = "k2";
  p.events = {Ev("a", kNow - 30, "t1"), Ev("a", kNow - 30, "t2")};
  r = store.Replace(p, kNow);
  REQUIRE(r->created);
  REQUIRE(Ids(ReadKey(store, "k2")) == std::vector<std::string>{"t1", "t2"});
  ProfileData bad = p;
  bad.key = "k3";
  bad.attributes.emplace_back("f", Value::Float(NAN));
  REQUIRE(Msg(store.Replace(bad, kNow).status()) == "attributes[\"f\"]: float is NaN");
  bad.attributes.pop_back();
  bad.events.push_back(Ev("z", kNow + 2 * kDay));
  REQUIRE(Msg(store.Replace(bad, kNow).status()) ==
          "events[2].time: 172800000 ms ahead of now, more than max-future 86400000");
  bad.key = "k";
  REQUIRE_FALSE(store.Replace(bad, kNow).ok());
  REQUIRE(store.Read(slot, kNow) == got);
  REQUIRE_FALSE(store.Find("k3").has_value());
  REQUIRE(store.size() == 2);
}

// ---- Slots ----

TEST_CASE("ProfileStore reuses the slots of erased profiles", "[core][store]") {
  ProfileStore store(Options());
  ProfileUpdate u = Upd("a");
  u.events = {Ev("e", kNow)};
  const Slot a = MustApply(store, u).slot;
  u.key = "b";
  const Slot b = MustApply(store, u).slot;
  REQUIRE(a != b);
  REQUIRE(store.size() == 2);
  REQUIRE(store.event_count() == 2);

  store.Erase(a);
  REQUIRE_FALSE(store.Find("a").has_value());
  REQUIRE_FALSE(store.IsLive(a));
  REQUIRE(store.IsLive(b));
  REQUIRE(store.size() == 1);
  REQUIRE(store.event_count() == 1);
  REQUIRE(store.Key(b) == "b");

  u.key = "c";
  AppliedUpdate c = MustApply(store, u);
  REQUIRE(c.created);
  REQUIRE(c.slot == a);
  REQUIRE(store.slot_limit() == 2);
  REQUIRE(store.Key(a) == "c");
  REQUIRE(*store.Find("c") == a);
  REQUIRE_FALSE(store.Find("a").has_value());

  // Re-creating an erased key starts from nothing.
  u.key = "a";
  u.events.clear();
  AppliedUpdate again = MustApply(store, u);
  REQUIRE(again.created);
  REQUIRE(ReadKey(store, "a").events.empty());
}

TEST_CASE("ProfileStore finds many keys across slot chunks", "[core][store]") {
  ProfileStore store(Options());
  for (int i = 0; i < 10000; ++i) MustApply(store, Upd("user" + std::to_string(i)));
  for (int i = 0; i < 10000; i += 2) store.Erase(*store.Find("user" + std::to_string(i)));
  for (int i = 0; i < 10000; ++i) {
    const std::string key = "user" + std::to_string(i);
    std::optional<Slot> s = store.Find(key);
    REQUIRE(s.has_value() == (i % 2 == 1));
    if (s) REQUIRE(store.Key(*s) == key);
  }
  REQUIRE(store.size() == 5000);
}

// ---- Interning ----

TEST_CASE("ProfileStore's value interning does not change what is read back", "[core][store]") {
  ProfileStore store(Options());
  // Far more distinct values under one name than it interns, plus shared values.
  for (int i = 0; i < 6000; ++i) {
    ProfileUpdate u = Upd("k" + std::to_string(i));
    u.set = {{"email", Value::String("user" + std::to_string(i) + "@example.com")},
             {"country", Value::String(i % 2 ? "DK" : "SE")},
             {"tags", Value::List({"t" + std::to_string(i), "vip", "x"})}};
    u.events = {
        Ev("view", kNow, "",
           {{"url", Value::String("/p/" + std::to_string(i))}, {"country", Value::String("DK")}})};
    MustApply(store, u);
  }
  for (int i = 0; i < 6000; i += 97) {
    ProfileData p = ReadKey(store, "k" + std::to_string(i));
    REQUIRE(p.attributes ==
            NamedValues{{"country", Value::String(i % 2 ? "DK" : "SE")},
                        {"email", Value::String("user" + std::to_string(i) + "@example.com")},
                        {"tags", Value::List({"t" + std::to_string(i), "vip", "x"})}});
    REQUIRE(p.events[0].properties ==
            NamedValues{{"country", Value::String("DK")},
                        {"url", Value::String("/p/" + std::to_string(i))}});
    ProfileView view;
    store.Load(*store.Find(p.key), kNow, &view);
    const uint32_t url = *store.interner().Find("url");
    REQUIRE(view.EventProp(0, url).s == "/p/" + std::to_string(i));
  }
}

// ---- AppliedUpdate ----

TEST_CASE("ProfileStore reports only the attributes an update changed", "[core][store]") {
  ProfileStore store(Options());
  ProfileUpdate u = Upd("k");
  u.set = {{"a", Value::Int(1)}, {"b", Value::String("x")}, {"f", Value::Float(0.0)}};
  AppliedUpdate r = MustApply(store, u);
  REQUIRE(r.created);
  REQUIRE(Names(store, r.attributes) == std::vector<std::string>{"a", "b", "f"});

  u = Upd("k");
  u.set = {{"a", Value::Int(1)},         // identical: no change
           {"b", Value::String("y")},    // changed
           {"f", Value::Float(-0.0)}};   // a different float
  u.unset = {"missing"};                 // nothing to unset: no change
  u.increment = {{"z", Value::Int(0)}};  // missing -> 0: a new attribute
  r = MustApply(store, u);
  REQUIRE_FALSE(r.created);
  REQUIRE(Names(store, r.attributes) == std::vector<std::string>{"b", "f", "z"});

  u = Upd("k");
  u.increment = {{"a", Value::Int(0)}};  // same value
  u.set = {{"b", Value::Int(1)}};        // another kind
  r = MustApply(store, u);
  REQUIRE(Names(store, r.attributes) == std::vector<std::string>{"b"});

  u = Upd("k");
  u.set = {{"t", Value::Time(1)}};
  MustApply(store, u);
  u.set = {{"t", Value::Int(1)}};  // an int is not a time
  r = MustApply(store, u);
  REQUIRE(Names(store, r.attributes) == std::vector<std::string>{"t"});

  u = Upd("k");
  u.events = {Ev("view", kNow), Ev("view", kNow), Ev("buy", kNow)};
  r = MustApply(store, u);
  REQUIRE(r.attributes.empty());
  REQUIRE(Names(store, r.event_types) == std::vector<std::string>{"buy", "view"});
  REQUIRE(r.events_added == 3);
}

// ---- Load ----

TEST_CASE("ProfileStore loads attributes and events into a ProfileView", "[core][store]") {
  ProfileStore store(Options());
  ProfileUpdate u = Upd("k");
  u.set = {{"country", Value::String("DK")},
           {"age", Value::Int(33)},
           {"ltv", Value::Float(12.25)},
           {"vip", Value::Bool(true)},
           {"signup_at", Value::Time(kNow - 7)},
           {"tags", Value::List({"a", "b"})},
           {"none", Value::List({})},
           {"more", Value::List({"c"})}};
  u.events = {
      Ev("page_view", kNow - 10, "", {{"url", Value::String("/shoes/1")}, {"n", Value::Int(2)}}),
      Ev("purchase", kNow - 5, "o1", {{"amount", Value::Float(9.99)}})};
  MustApply(store, u);
  ProfileView view;
  // Load into a view that held another profile before: nothing of it remains.
  ProfileUpdate other = Upd("other");
  other.set = {{"x", Value::List({"1", "2", "3"})}};
  MustApply(store, other);
  store.Load(*store.Find("other"), kNow, &view);
  store.Load(*store.Find("k"), kNow, &view);

  auto id = [&](std::string_view name) { return store.interner().Intern(name); };
  REQUIRE(view.key() == "k");
  REQUIRE(view.Attr(id("country")).s == "DK");
  REQUIRE(view.Attr(id("age")).i == 33);
  REQUIRE(view.Attr(id("ltv")).f == 12.25);
  REQUIRE(view.Attr(id("vip")).is_true());
  REQUIRE(view.Attr(id("signup_at")).kind == ValKind::kInt);
  REQUIRE(view.Attr(id("signup_at")).i == kNow - 7);
  REQUIRE(view.Attr(id("x")).missing());
  REQUIRE(view.Attr(id("nope")).missing());
  Val tags = view.Attr(id("tags"));
  REQUIRE(tags.kind == ValKind::kList);
  REQUIRE(std::vector<std::string_view>(tags.items, tags.items + tags.n_items) ==
          std::vector<std::string_view>{"a", "b"});
  REQUIRE(view.Attr(id("none")).kind == ValKind::kList);
  REQUIRE(view.Attr(id("none")).n_items == 0);
  Val more = view.Attr(id("more"));
  REQUIRE(more.n_items == 1);
  REQUIRE(more.items[0] == "c");

  REQUIRE(view.num_events() == 2);
  REQUIRE(view.event_type(0) == id("page_view"));
  REQUIRE(view.event_time(0) == kNow - 10);
  REQUIRE(view.EventProp(0, id("url")).s == "/shoes/1");
  REQUIRE(view.EventProp(0, id("n")).i == 2);
  REQUIRE(view.EventProp(0, id("amount")).missing());
  REQUIRE(view.event_type(1) == id("purchase"));
  REQUIRE(view.EventProp(1, id("amount")).f == 9.99);
  REQUIRE(view.EventProp(1, id("url")).missing());
}

}  // namespace
}  // namespace segd
