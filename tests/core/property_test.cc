// The engine's guard: random rules from the whole grammar, random updates (late
// events, duplicates, deletes, invalid ones), segment puts and deletes, and random
// clock jumps. After every step:
//  - each segment's incrementally maintained members equal a from-scratch evaluation
//    of its rule over every profile;
//  - the change log, replayed from empty, reproduces the memberships, and never has
//    two ENTERs (or EXITs) of one (key, segment) in a row;
//  - every TIME change lies in the jump, in time order per profile, and (checked by an oracle that
//    evaluates the profile from scratch at the change's time and one ms before) marks
//    the exact first millisecond of the new result.
#include <cmath>
#include <map>
#include <random>
#include <set>

#define CATCH_CONFIG_ENABLE_PAIR_STRINGMAKER
#include <catch2/catch.hpp>

#include "absl/strings/str_cat.h"
#include "tests/core/engine_fixture.h"

namespace segd::testing {
namespace {

class Random {
 public:
  explicit Random(uint64_t seed) : rng_(seed) {}
  int Below(int n) { return static_cast<int>(rng_() % static_cast<uint64_t>(n)); }
  bool Chance(int percent) { return Below(100) < percent; }
  int64_t Range(int64_t lo, int64_t hi) {  // inclusive
    return lo + static_cast<int64_t>(rng_() % static_cast<uint64_t>(hi - lo + 1));
  }
  template <typename T>
  const T& Pick(const std::vector<T>& v) {
    return v[Below(static_cast<int>(v.size()))];
  }

 private:
  std::mt19937_64 rng_;
};

const std::vector<std::string> kKeys = {"k0", "k1", "k2", "k3", "k4",  "k5",
                                        "k6", "k7", "k8", "k9", "k10", "k11"};
const std::vector<std::string> kWords = {"", "a", "ab", "b", "ba", "é", "k1", "k2", "x y"};
const std::vector<std::string> kTypes = {"x", "y", "\"z z\"", "*"};
const std::vector<std::string> kDurations = {"1ms", "500ms", "90s", "30m", "1h",
                                             "6h",  "1d",    "2d",  "3d",  "1w"};

// Random rules from the whole grammar of SPEC §3. Profile attributes: ints a, b; float f;
// string s; bool flag; list tags; time t. Event properties: p (any kind), q (string),
// ts (a time).
class RuleGenerator {
 public:
  RuleGenerator(Random& r, std::vector<std::string> segments)
      : r_(r), segments_(std::move(segments)) {}

  std::string Rule() { return Bool(3, false); }

 private:
  std::string Bool(int depth, bool where) {
    const int choice = r_.Below(depth <= 0 ? 7 : 14);
    switch (choice) {
      case 0:
        return absl::StrCat(Num(depth - 1, where), " ", CmpOp(), " ", Num(depth - 1, where));
      case 1:
        return absl::StrCat(Str(where), " ", CmpOp(), " ", Str(where));
      case 2: {
        std::string items;
        const int n = r_.Below(4);
        for (int i = 0; i < n; ++i) {
          if (i > 0) items += ", ";
          items += r_.Chance(50) ? Quote(r_.Pick(kWords)) : std::to_string(r_.Range(-3, 3));
          if (r_.Chance(10)) items += ", -1d";
        }
        const std::string subject = where ? r_.Pick<std::string>({"p", "q"})
                                          : r_.Pick<std::string>({"a", "s", "f", "flag", "t"});
        return absl::StrCat(subject, r_.Chance(30) ? " not in [" : " in [", items, "]");
      }
      case 3:
        return where ? absl::StrCat(Str(true), " contains ", Quote(r_.Pick(kWords)))
                     : absl::StrCat(r_.Pick<std::string>({"tags", "s"}), " contains ",
                                    Quote(r_.Pick(kWords)));
      case 4:
        return absl::StrCat(Str(where), r_.Chance(50) ? " starts_with " : " ends_with ",
                            Quote(r_.Pick(kWords)));
      case 5:
        return absl::StrCat(Str(where), " matches ",
                            Quote(r_.Pick<std::string>({"^a", "b$", "k[12]", "é|x", ""})));
      case 6: {
        if (where) return absl::StrCat("has(", r_.Pick<std::string>({"p", "q", "ts"}), ")");
        return absl::StrCat("has(", r_.Pick<std::string>({"a", "s", "flag", "tags", "`t`"}), ")");
      }
      case 7:
        return absl::StrCat("not ", Bool(depth - 1, where));
      case 8:
        return absl::StrCat("(", Bool(depth - 1, where), r_.Chance(50) ? " and " : " or ",
                            Bool(depth - 1, where), ")");
      case 9:
        return r_.Pick<std::string>({"flag", "true", "false", where ? "p" : "s"});
      case 10:
        return NowComparison(depth, where);
      case 11:
        if (where) return NowComparison(depth, where);
        return r_.Chance(30) ? Sequence(depth) : absl::StrCat("did(", Selector(depth - 1), ")");
      case 12:
        if (where) return Bool(depth - 1, where);
        return absl::StrCat(Aggregate(depth - 1), " ", CmpOp(), " ",
                            std::to_string(r_.Range(0, 3)));
      default:
        if (where || segments_.empty()) return Bool(depth - 1, where);
        return absl::StrCat("in_segment(\"", r_.Pick(segments_), "\")");
    }
  }

  std::string NowComparison(int depth, bool where) {
    std::string other = where ? "ts"
                              : (r_.Chance(60) ? "t"
                                               : absl::StrCat(r_.Chance(50) ? "last(" : "first(",
                                                              Selector(depth - 1), ")"));
    std::string now_side;
    switch (r_.Below(4)) {
      case 0:
        now_side = "now()";
        break;
      case 1:
        now_side = absl::StrCat("now() - ", r_.Pick(kDurations));
        break;
      case 2:
        now_side = absl::StrCat("now() + ", r_.Pick(kDurations));
        break;
      case 3:
        if (r_.Chance(30)) {
          now_side = absl::StrCat(r_.Pick(kDurations), " + ", r_.Pick(kDurations), " + now()");
          break;
        }
        [[fallthrough]];
      default:
        now_side = absl::StrCat(r_.Pick(kDurations), " + now()");
        break;
    }
    return r_.Chance(50) ? absl::StrCat(other, " ", CmpOp(), " ", now_side)
                         : absl::StrCat(now_side, " ", CmpOp(), " ", other);
  }

  std::string Num(int depth, bool where) {
    const int choice = r_.Below(depth <= 0 ? 4 : 8);
    switch (choice) {
      case 0:
        return std::to_string(r_.Range(-2, 5));
      case 1:
        return r_.Pick<std::string>({"0.5", "2e0", "1.0", "1h", "30m", "-1"});
      case 2:
      case 3:
        return where ? r_.Pick<std::string>({"p", "ts"})
                     : r_.Pick<std::string>({"a", "b", "f", "t"});
      case 4: {
        std::string chain = Num(depth - 1, where);
        for (int i = 1 + r_.Below(3); i > 0; --i) {  // 3+ operands make a kArith chain
          absl::StrAppend(&chain, " ", r_.Pick<std::string>({"+", "-", "*", "/"}), " ",
                          Num(depth - 1, where));
        }
        return absl::StrCat("(", chain, ")");
      }
      case 5:
        return absl::StrCat("-", Num(depth - 1, where));
      default:
        return where ? Num(depth - 1, where) : Aggregate(depth - 1);
    }
  }

  std::string Str(bool where) {
    if (r_.Chance(30)) return Quote(r_.Pick(kWords));
    return where ? r_.Pick<std::string>({"q", "p"}) : r_.Pick<std::string>({"s", "tags"});
  }

  std::string Aggregate(int depth) {
    switch (r_.Below(5)) {
      case 0:
        return absl::StrCat("count(", Selector(depth), ")");
      case 1:
        return absl::StrCat(r_.Chance(50) ? "first(" : "last(", Selector(depth), ")");
      default: {
        std::string s =
            absl::StrCat(r_.Pick<std::string>({"sum", "avg", "min", "max", "count_distinct"}), "(",
                         r_.Pick(kTypes), ".", r_.Pick<std::string>({"p", "q", "ts"}));
        if (r_.Chance(30)) s += " where " + Bool(depth - 1, true);
        if (r_.Chance(50)) s += " within " + r_.Pick(kDurations);
        return s + ")";
      }
    }
  }

  std::string Selector(int depth) {
    std::string s = r_.Pick(kTypes);
    if (r_.Chance(35)) s += " where " + Bool(depth - 1, true);
    if (r_.Chance(60)) s += " within " + r_.Pick(kDurations);
    return s;
  }

  std::string Sequence(int depth) {
    std::string s = "sequence(";
    const int n = 1 + r_.Below(3);
    for (int i = 0; i < n; ++i) {
      if (i > 0) s += ", ";
      s += r_.Pick(kTypes);
      if (r_.Chance(25)) s += " where " + Bool(depth - 1, true);
    }
    if (r_.Chance(50)) s += " within " + r_.Pick(kDurations);
    return s + ")";
  }

  std::string CmpOp() { return r_.Pick<std::string>({"=", "!=", "<", "<=", ">", ">="}); }
  static std::string Quote(const std::string& w) { return "\"" + w + "\""; }

  Random& r_;
  std::vector<std::string> segments_;
};

class PropertyRun {
 public:
  PropertyRun(uint64_t seed, EngineOptions options) : r_(seed), options_(options), f_(options, 3) {}

  void Step() {
    const int choice = r_.Below(100);
    if (choice < 55) {
      Updates();
    } else if (choice < 75) {
      Jump();
    } else if (choice < 83) {
      PutSegment();
    } else if (choice < 85) {
      DeleteSegment();
    } else if (choice < 92) {
      Replay();
    } else {
      Delete();
    }
    Check();
  }

  uint64_t rules_tried = 0, rules_accepted = 0, time_changes = 0, oracle_checks = 0;

 private:
  Value RandomValue(const std::string& name) {
    if (r_.Chance(10)) {  // the wrong kind now and then
      return r_.Pick<Value>({Value::Int(r_.Range(-2, 5)), Value::String(r_.Pick(kWords)),
                             Value::Bool(r_.Chance(50)), Value::Float(1.5)});
    }
    if (name == "a" || name == "b") return Value::Int(r_.Range(-2, 5));
    if (name == "f") return Value::Float(static_cast<double>(r_.Range(-4, 8)) / 2);
    if (name == "s") return Value::String(r_.Pick(kWords));
    if (name == "flag") return Value::Bool(r_.Chance(50));
    if (name == "tags") {
      std::vector<std::string> items;
      for (int i = r_.Below(3); i > 0; --i) items.push_back(r_.Pick(kWords));
      return Value::List(items);
    }
    return Value::Time(Now() + r_.Range(-10, 10) * kHour);  // t
  }

  int64_t EventTime() {
    switch (r_.Below(8)) {
      case 0:
        return 0;  // the server's now
      case 1:
        return Now() + r_.Range(1, 30) * kHour;  // future, some too far
      case 2:
        return Now() - 6 * kDay - r_.Range(0, 10);  // at or past retention
      case 3:
        return Now() - r_.Range(0, 3);
      default:
        return Now() - r_.Range(0, 4 * 24) * kHour / 2;
    }
  }

  Event RandomEvent() {
    Event e;
    e.type = r_.Pick<std::string>({"x", "y", "z z", "w"});
    e.time = EventTime();
    if (r_.Chance(30)) e.id = r_.Pick<std::string>({"i1", "i2", "i3"});
    if (r_.Chance(70)) {
      e.properties.push_back(
          {"p", r_.Pick<Value>({Value::Int(r_.Range(-2, 5)), Value::Float(2.5),
                                Value::String(r_.Pick(kWords)), Value::Bool(true)})});
    }
    if (r_.Chance(50)) e.properties.push_back({"q", Value::String(r_.Pick(kWords))});
    if (r_.Chance(40)) e.properties.push_back({"ts", Value::Int(Now() + r_.Range(-6, 6) * kHour)});
    if (r_.Chance(2)) e.properties.push_back({"bad", Value::Float(NAN)});
    return e;
  }

  ProfileUpdate RandomUpdate() {
    ProfileUpdate u;
    u.key = r_.Chance(2) ? "" : r_.Pick(kKeys);
    const std::vector<std::string> names = {"a", "b", "f", "s", "flag", "tags", "t"};
    for (int i = r_.Below(3); i > 0; --i) {
      const std::string& n = r_.Pick(names);
      u.set.push_back({n, RandomValue(n)});
    }
    if (r_.Chance(15)) u.unset.push_back(r_.Pick(names));
    if (r_.Chance(15)) {
      const std::string n = r_.Pick<std::string>({"a", "f", "s"});
      u.increment.push_back({n, r_.Chance(50) ? Value::Int(r_.Range(-2, 2)) : Value::Float(0.5)});
    }
    for (int i = r_.Below(4); i > 0; --i) u.events.push_back(RandomEvent());
    return u;
  }

  void Updates() {
    std::vector<ProfileUpdate> batch;
    for (int i = 1 + r_.Below(3); i > 0; --i) batch.push_back(RandomUpdate());
    f_.engine.Apply(batch);
  }

  void Delete() {
    ProfileUpdate u;
    u.key = r_.Pick(kKeys);
    u.del = true;
    f_.engine.Apply(std::vector<ProfileUpdate>{u});
  }

  void Replay() {
    ProfileData p;
    p.key = r_.Pick(kKeys);
    for (const std::string n : {"a", "s", "t", "tags"}) {
      if (r_.Chance(60)) p.attributes.push_back({n, RandomValue(n)});
    }
    for (int i = r_.Below(5); i > 0; --i) p.events.push_back(RandomEvent());
    const bool quiet = r_.Chance(20);
    f_.engine.Replay(std::vector<ProfileData>{p}, quiet);
    if (quiet) quiet_resync_ = true;  // it emits nothing: the mirror must be told
  }

  void Jump() {
    const int64_t before = Now();
    int64_t delta;
    switch (r_.Below(5)) {
      case 0:
        delta = 1;
        break;
      case 1:
        delta = 0;
        break;
      case 2:
        delta = r_.Range(1, 2 * kHour);
        break;
      case 3:
        delta = r_.Range(1, 2 * kDay);
        break;
      default:
        delta = r_.Range(1, 7 * kDay);
        break;
    }
    // Remember each profile as it was, for the oracle.
    std::map<std::string, ProfileData> profiles;
    for (const std::string& k : kKeys) {
      if (absl::StatusOr<ProfileData> p = f_.engine.GetProfile(k); p.ok()) profiles[k] = *p;
    }
    REQUIRE(f_.engine.SetTime(before + delta).ok());
    std::vector<Change> changes = Drain();
    std::map<std::string, int64_t> last;  // per profile: order is promised within one profile
    int oracle_budget = 3;
    for (const Change& c : changes) {
      INFO(Describe(c));
      REQUIRE(c.cause == Cause::kTime);
      REQUIRE(c.time > before);
      REQUIRE(c.time <= before + delta);
      REQUIRE(c.time >= last[c.key]);
      last[c.key] = c.time;
      ++time_changes;
      if (oracle_budget-- > 0) {
        REQUIRE(OracleMember(profiles.at(c.key), c.segment, c.time - 1) ==
                (c.kind == ChangeKind::kExit));
        REQUIRE(OracleMember(profiles.at(c.key), c.segment, c.time) ==
                (c.kind == ChangeKind::kEnter));
        ++oracle_checks;
      }
    }
  }

  // Whether `profile` is a member of `segment` at time `at`, evaluated from scratch in a
  // fresh engine that holds every current segment and nothing else.
  bool OracleMember(ProfileData profile, const std::string& segment, int64_t at) {
    ManualClock clock(at);
    Engine oracle(options_, 1, clock);
    const std::shared_ptr<const SegmentCatalog> catalog = f_.engine.catalog();
    for (const auto& def : catalog->order()) {
      REQUIRE(oracle.PutSegment({def->id, def->rule_text, ""}, false).ok());
    }
    profile.segments.clear();
    ReplayResult r = oracle.Replay(std::vector<ProfileData>{profile}, true);
    REQUIRE(r.errors.empty());
    absl::StatusOr<ProfileData> p = oracle.GetProfile(profile.key);
    REQUIRE(p.ok());
    return std::find(p->segments.begin(), p->segments.end(), segment) != p->segments.end();
  }

  void PutSegment() {
    std::vector<std::string> ids;
    const std::shared_ptr<const SegmentCatalog> catalog = f_.engine.catalog();
    for (const auto& def : catalog->order()) ids.push_back(def->id);
    const std::string id =
        r_.Chance(70) || ids.empty() ? "s" + std::to_string(r_.Below(8)) : r_.Pick(ids);
    // Only reference segments with a smaller number, so most puts have no cycle.
    std::vector<std::string> refs;
    for (const std::string& other : ids) {
      if (other < id) refs.push_back(other);
    }
    RuleGenerator gen(r_, refs);
    const std::string rule = gen.Rule();
    ++rules_tried;
    absl::StatusOr<PutSegmentResult> put = f_.engine.PutSegment({id, rule, ""}, r_.Chance(10));
    if (put.ok()) ++rules_accepted;
  }

  void DeleteSegment() {
    const std::shared_ptr<const SegmentCatalog> catalog = f_.engine.catalog();
    const auto& order = catalog->order();
    if (order.empty()) return;
    (void)f_.engine.DeleteSegment(order[r_.Below(static_cast<int>(order.size()))]->id);
  }

  std::vector<Change> Drain() {
    std::vector<Change> out;
    REQUIRE(f_.engine.ReadChanges(&cursor_, 1 << 30, nullptr, &out).ok());
    for (const Change& c : out) {
      INFO(Describe(c));
      auto key = std::make_pair(c.key, c.segment);
      if (c.kind == ChangeKind::kEnter) {
        REQUIRE(mirror_.insert(key).second);
      } else {
        REQUIRE(mirror_.erase(key) == 1);
      }
    }
    return out;
  }

  void Check() {
    Drain();
    std::set<std::pair<std::string, std::string>> members;
    const std::shared_ptr<const SegmentCatalog> catalog = f_.engine.catalog();
    for (const auto& def : catalog->order()) {
      absl::StatusOr<std::vector<std::string>> keys = f_.engine.Members(def->id);
      REQUIRE(keys.ok());
      for (const std::string& k : *keys) members.insert({k, def->id});
      // A from-scratch evaluation of the rule must agree with every maintained membership.
      const std::string agree =
          absl::StrCat("((", def->rule_text, ") and in_segment(\"", def->id, "\")) or (not (",
                       def->rule_text, ") and not in_segment(\"", def->id, "\"))");
      absl::StatusOr<CountResult> count = f_.engine.Count(agree);
      INFO(def->id << ": " << def->rule_text);
      REQUIRE(count.ok());
      REQUIRE(count->matched == count->total);
    }
    if (quiet_resync_) {
      mirror_ = members;
      quiet_resync_ = false;
    }
    REQUIRE(members == mirror_);
  }

  int64_t Now() { return f_.engine.Stats().now; }

  Random r_;
  EngineOptions options_;
  EngineFixture f_;
  Cursor cursor_ = f_.engine.CurrentCursor();
  std::set<std::pair<std::string, std::string>> mirror_;
  bool quiet_resync_ = false;
};

TEST_CASE("Incremental memberships always equal a full re-evaluation", "[core][property]") {
  EngineOptions options;
  options.retention_ms = 6 * kDay;
  options.max_events = 6;
  options.max_future_ms = kDay;
  options.change_log_capacity = 1 << 24;
  const uint64_t seed = GENERATE(301, 302, 303, 304);
  // Odd seeds keep every history the store sees updated twice decoded (ProfileStore's
  // cache), even ones: none (the standard threshold is past max_events here).
  options.cached_history_min_events = seed % 2 == 1 ? 1 : 256;
  PropertyRun run(seed, options);
  for (int step = 0; step < 5000; ++step) {
    INFO("seed " << seed << " step " << step);
    run.Step();
  }
  INFO("rules accepted " << run.rules_accepted << " of " << run.rules_tried);
  CHECK(run.rules_accepted * 10 >= run.rules_tried * 7);  // the generator mostly writes valid rules
  CHECK(run.time_changes > 100);
  CHECK(run.oracle_checks > 100);
}

}  // namespace
}  // namespace segd::testing
