#include <algorithm>
#include <catch2/catch.hpp>
#include <random>
#include <set>

#include "tests/core/engine_fixture.h"

namespace segd::testing {
namespace {

using Catch::Matchers::StartsWith;

uint64_t Evaluations(Engine& engine) {
  uint64_t n = 0;
  for (int i = 0; i < engine.num_shards(); ++i) n += engine.shard(i).Stats().evaluations;
  return n;
}

std::vector<std::string> Sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

TEST_CASE_METHOD(EngineFixture, "PutSegment backfills and counts the segment's own changes",
                 "[core][segments]") {
  for (int i = 0; i < 10; ++i) Set("u" + std::to_string(i), {{"age", Value::Int(i * 10)}});
  absl::StatusOr<PutSegmentResult> r = engine.PutSegment({"old", "age >= 50", "fifty+"}, false);
  REQUIRE(r.ok());
  CHECK(r->entered == 5);
  CHECK(r->exited == 0);
  CHECK(r->segment.member_count == 5);
  CHECK(r->segment.updated_at == kT0);
  CHECK(Sorted(*engine.Members("old")) == std::vector<std::string>{"u5", "u6", "u7", "u8", "u9"});

  std::vector<Change> changes = TakeChanges();
  CHECK(changes.size() == 5);
  for (const Change& c : changes) {
    CHECK(c.cause == Cause::kSegmentPut);
    CHECK(c.kind == ChangeKind::kEnter);
    CHECK(c.time == kT0);
  }

  // Replacing the rule emits only the differences.
  r = engine.PutSegment({"old", "age >= 70", ""}, false);
  REQUIRE(r.ok());
  CHECK(r->entered == 0);
  CHECK(r->exited == 2);
  changes = TakeChanges();
  REQUIRE(changes.size() == 2);
  CHECK(changes[0].kind == ChangeKind::kExit);
  CHECK(engine.GetSegment("old")->member_count == 3);
}

TEST_CASE_METHOD(EngineFixture,
                 "A segment put changing more profiles than a shard buffers logs each change once",
                 "[core][segments]") {
  // A shard hands its changes to the log every 4,096 during a long operation.
  constexpr int kProfiles = 20'000;
  std::vector<ProfileUpdate> batch;
  for (int i = 0; i < kProfiles; ++i) {
    ProfileUpdate& u = batch.emplace_back();
    u.key = "u" + std::to_string(i);
    u.set = {{"age", Value::Int(i % 2 == 0 ? 40 : 10)}};
  }
  REQUIRE(engine.Apply(std::move(batch)).errors.empty());
  const Cursor before = engine.CurrentCursor();
  absl::StatusOr<PutSegmentResult> r = engine.PutSegment({"adult", "age >= 18", ""}, false);
  REQUIRE(r.ok());
  CHECK(r->entered == kProfiles / 2);

  std::vector<Change> changes = TakeChanges();
  REQUIRE(changes.size() == kProfiles / 2);
  std::set<std::string> keys;
  for (const Change& c : changes) {
    CHECK(c.cause == Cause::kSegmentPut);
    keys.insert(c.key);
  }
  CHECK(keys.size() == kProfiles / 2);
  CHECK(keys.count("u0") == 1);
  CHECK(keys.count("u1") == 0);
  uint64_t logged = 0;
  const Cursor after = engine.CurrentCursor();
  for (size_t shard = 0; shard < after.positions.size(); ++shard)
    logged += after.positions[shard] - before.positions[shard];
  CHECK(logged == kProfiles / 2);
}

TEST_CASE_METHOD(EngineFixture, "A dry run counts but changes nothing", "[core][segments]") {
  for (int i = 0; i < 10; ++i) Set("u" + std::to_string(i), {{"age", Value::Int(i * 10)}});
  Put("old", "age >= 50");
  TakeChanges();
  absl::StatusOr<PutSegmentResult> r = engine.PutSegment({"old", "age >= 30", ""}, true);
  REQUIRE(r.ok());
  CHECK(r->entered == 2);
  CHECK(r->exited == 0);
  CHECK(r->segment.member_count == 7);
  r = engine.PutSegment({"new", "age < 20", ""}, true);
  REQUIRE(r.ok());
  CHECK(r->entered == 2);
  CHECK(TakeChanges().empty());
  CHECK(engine.GetSegment("old")->rule == "age >= 50");
  CHECK(engine.GetSegment("new").status().code() == absl::StatusCode::kNotFound);
}

TEST_CASE_METHOD(EngineFixture, "Segment definitions are checked", "[core][segments]") {
  auto put = [&](std::string id, std::string rule) {
    return engine.PutSegment({std::move(id), std::move(rule), ""}, false).status();
  };
  CHECK(put("bad id!", "true").code() == absl::StatusCode::kInvalidArgument);
  CHECK(put("", "true").code() == absl::StatusCode::kInvalidArgument);
  CHECK(put(std::string(129, 'a'), "true").code() == absl::StatusCode::kInvalidArgument);
  CHECK(put(std::string(128, 'a'), "true").ok());
  absl::Status s = put("x", "age >= ");
  CHECK(s.code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(s.message()), StartsWith("1:8: "));
  s = put("x", "in_segment(\"ghost\")");
  CHECK(s.code() == absl::StatusCode::kInvalidArgument);
  CHECK(s.message() == "1:1: unknown segment 'ghost'");
  s = put("x", "true and in_segment(\"x\")");
  CHECK(s.message() == "1:10: segment 'x' cannot reference itself");

  Put("a", "true");
  Put("b", "in_segment(\"a\")");
  s = put("a", "in_segment(\"b\")");
  CHECK(s.code() == absl::StatusCode::kInvalidArgument);
  CHECK(s.message() == "1:1: in_segment(\"b\") makes a cycle: a -> b -> a");
  CHECK(engine.GetSegment("a")->rule == "true");  // unchanged

  s = engine.DeleteSegment("a").status();
  CHECK(s.code() == absl::StatusCode::kFailedPrecondition);
  CHECK(s.message() == "segment 'a' is referenced by in_segment in: b");
  CHECK(engine.DeleteSegment("nope").status().code() == absl::StatusCode::kNotFound);
  CHECK(engine.DeleteSegment("b").ok());
  CHECK(engine.DeleteSegment("a").ok());
}

TEST_CASE("The segment limit is RESOURCE_EXHAUSTED", "[core][segments]") {
  EngineOptions options;
  options.max_segments = 2;
  EngineFixture f(options);
  f.Put("a", "true");
  f.Put("b", "true");
  CHECK(f.engine.PutSegment({"c", "true", ""}, false).status().code() ==
        absl::StatusCode::kResourceExhausted);
  f.Put("b", "false");  // replacing is not a new segment
  REQUIRE(f.engine.DeleteSegment("a").ok());
  f.Put("c", "true");
  std::vector<SegmentInfo> list = f.engine.ListSegments();
  REQUIRE(list.size() == 2);
  CHECK(list[0].id == "b");
  CHECK(list[1].id == "c");
  CHECK(list[1].member_count == 0);
}

TEST_CASE_METHOD(EngineFixture, "Deleting a segment exits every member", "[core][segments]") {
  Set("a", {{"x", Value::Int(1)}});
  Set("b", {{"x", Value::Int(1)}});
  Put("s", "x = 1");
  TakeChanges();
  CHECK(*engine.DeleteSegment("s") == 2);
  std::vector<Change> changes = TakeChanges();
  REQUIRE(changes.size() == 2);
  for (const Change& c : changes) {
    CHECK(c.kind == ChangeKind::kExit);
    CHECK(c.cause == Cause::kSegmentDelete);
  }
  CHECK(engine.GetProfile("a")->segments.empty());
}

TEST_CASE_METHOD(EngineFixture, "Dependents cascade when a segment is put", "[core][segments]") {
  Set("a", {{"x", Value::Int(1)}, {"y", Value::Int(1)}});
  Put("base", "x = 2");
  Put("dep", "in_segment(\"base\") and y = 1");
  TakeChanges();
  absl::StatusOr<PutSegmentResult> r = engine.PutSegment({"base", "x = 1", ""}, false);
  REQUIRE(r.ok());
  CHECK(r->entered == 1);  // base only
  std::vector<Change> changes = TakeChanges();
  REQUIRE(changes.size() == 2);
  CHECK(changes[0].segment == "base");
  CHECK(changes[1].segment == "dep");
  CHECK(changes[1].cause == Cause::kSegmentPut);
}

TEST_CASE("An update re-evaluates only the segments that read what it changed",
          "[core][incremental]") {
  EngineFixture f(EngineOptions{}, 1);
  f.Put("by_age", "age > 30");
  f.Put("by_country", "country = \"DK\"");
  f.Put("viewer", "did(view)");
  f.Put("buyer", "did(buy within 1d)");
  f.Put("anything", "count(*) > 2");
  f.Put("dep", "in_segment(\"by_age\") and in_segment(\"viewer\")");
  f.Set("p", {{"age", Value::Int(20)}});  // created: all six evaluated
  uint64_t before = Evaluations(f.engine);

  f.Set("p", {{"age", Value::Int(25)}});  // by_age only; no flip, so no cascade
  CHECK(Evaluations(f.engine) - before == 1);
  before = Evaluations(f.engine);

  f.Set("p", {{"age", Value::Int(40)}});  // by_age flips -> dep too
  CHECK(Evaluations(f.engine) - before == 2);
  before = Evaluations(f.engine);

  f.Set("p", {{"age", Value::Int(40)}});  // no change at all
  CHECK(Evaluations(f.engine) - before == 0);
  before = Evaluations(f.engine);

  f.AddEvent("p", MakeEvent("buy", kT0));  // buyer and anything ("*")
  CHECK(Evaluations(f.engine) - before == 2);
  before = Evaluations(f.engine);

  f.Set("p", {{"city", Value::String("Aarhus")}});  // read by no segment
  CHECK(Evaluations(f.engine) - before == 0);
}

TEST_CASE("Members of a rule monotone in the added events are not re-evaluated",
          "[core][incremental]") {
  EngineFixture f(EngineOptions{}, 1);
  f.Put("viewer", "did(view within 7d)");
  f.Put("no_login", "not did(login within 14d)");
  f.Put("spend", "sum(buy.amount) > 10");
  f.AddEvent("p", MakeEvent("view", kT0));  // created: all evaluated
  auto evaluations = [&] { return Evaluations(f.engine); };
  uint64_t before = evaluations();
  f.AddEvent("p", MakeEvent("view", kT0));  // still a viewer: skipped
  CHECK(evaluations() - before == 0);
  CHECK(f.engine.shard(0).Stats().evaluations_skipped == 1);
  before = evaluations();
  f.AddEvent("p", MakeEvent("login", kT0));  // a no_login member: must be evaluated
  CHECK(evaluations() - before == 1);
  CHECK_FALSE(f.IsMember("p", "no_login"));
  before = evaluations();
  f.AddEvent("p", MakeEvent("login", kT0));  // no longer a member: skipped
  CHECK(evaluations() - before == 0);
  before = evaluations();
  f.AddEvent("p", MakeEvent("buy", kT0, {{"amount", Value::Int(-5)}}));  // sum: always evaluated
  CHECK(evaluations() - before == 1);
  // The skipped evaluations left the timers right: the window still closes on time.
  f.SetTime(kT0 + 8 * kDay);
  CHECK_FALSE(f.IsMember("p", "viewer"));
  CHECK(f.IsMember("p", "no_login") == false);
  f.SetTime(kT0 + 15 * kDay);
  CHECK(f.IsMember("p", "no_login"));
}

TEST_CASE("An appended event that no selector of a rule can see does not re-evaluate it",
          "[core][incremental]") {
  EngineFixture f(EngineOptions{}, 1);
  f.Put("shoes", "count(view where url starts_with \"/shoes\" within 3d) >= 2");
  f.Put("funnel", "sequence(view, cart, buy within 7d)");
  f.Put("spend", "sum(buy.amount where amount > 0) > 10");  // moves both ways
  auto url = [](std::string u) { return NamedValues{{"url", Value::String(std::move(u))}}; };
  auto amount = [](int64_t a) { return NamedValues{{"amount", Value::Int(a)}}; };
  f.AddEvent("p", MakeEvent("view", kT0 - 3, url("/shoes/1")));  // created: all evaluated
  auto evaluations = [&] { return Evaluations(f.engine); };
  const uint64_t skipped_before = f.engine.shard(0).Stats().evaluations_skipped;
  uint64_t before = evaluations();

  f.AddEvent("p",
             MakeEvent("view", kT0 - 2, url("/bags/1")));  // not a shoe; not funnel's last step
  f.AddEvent("p", MakeEvent("cart", kT0 - 1));             // not funnel's last step
  CHECK(evaluations() - before == 0);
  CHECK(f.engine.shard(0).Stats().evaluations_skipped - skipped_before == 3);

  f.AddEvent("p", MakeEvent("buy", kT0, amount(-5)));  // funnel completes; spend's where fails
  CHECK(evaluations() - before == 1);
  CHECK(f.IsMember("p", "funnel"));
  CHECK_FALSE(f.IsMember("p", "spend"));

  f.AddEvent("p", MakeEvent("view", kT0, url("/shoes/2")));  // the second shoe
  CHECK(evaluations() - before == 2);
  CHECK(f.IsMember("p", "shoes"));

  f.AddEvent("p", MakeEvent("buy", kT0, amount(20)));
  CHECK(evaluations() - before == 3);
  CHECK(f.IsMember("p", "spend"));

  // The skipped evaluations left the timers right: shoes leaves when the first shoe does.
  f.SetTime(kT0 - 3 + 3 * kDay);
  CHECK_FALSE(f.IsMember("p", "shoes"));
  CHECK(f.IsMember("p", "funnel"));
}

TEST_CASE("An event inserted before the last can be any step of a sequence",
          "[core][incremental]") {
  EngineFixture f(EngineOptions{}, 1);
  f.Put("funnel", "sequence(view, cart, buy within 7d)");
  f.AddEvent("p", MakeEvent("cart", kT0 - 2));
  f.AddEvent("p", MakeEvent("buy", kT0 - 1));
  CHECK_FALSE(f.IsMember("p", "funnel"));
  f.AddEvent("p", MakeEvent("view", kT0 - 3));  // late: goes first, and completes it
  CHECK(f.IsMember("p", "funnel"));
}

TEST_CASE("An appended event a where predicate with now() may match later is evaluated",
          "[core][incremental][time]") {
  EngineFixture f(EngineOptions{}, 1);
  f.Put("due", "did(task where due_at < now())");
  f.AddEvent("p", MakeEvent("login", kT0));  // created
  f.AddEvent("p", MakeEvent("task", kT0, {{"due_at", Value::Time(kT0 + kHour)}}));
  CHECK_FALSE(f.IsMember("p", "due"));
  f.TakeChanges();
  f.SetTime(kT0 + 2 * kHour);
  CHECK(f.IsMember("p", "due"));
  const std::vector<Change> changes = f.TakeChanges();
  REQUIRE(changes.size() == 1);
  CHECK(changes[0].kind == ChangeKind::kEnter);
  CHECK(changes[0].time == kT0 + kHour + 1);
}

TEST_CASE("Dropping the oldest event past max-events re-evaluates its type",
          "[core][incremental]") {
  EngineOptions options;
  options.max_events = 2;
  EngineFixture f(options, 1);
  f.Put("viewer", "did(view)");
  f.AddEvent("p", MakeEvent("view", kT0 - 10));
  f.AddEvent("p", MakeEvent("buy", kT0 - 5));
  CHECK(f.IsMember("p", "viewer"));
  f.AddEvent("p", MakeEvent("buy", kT0));
  CHECK_FALSE(f.IsMember("p", "viewer"));
}

TEST_CASE_METHOD(EngineFixture, "A window flips at exactly event time + D", "[core][time]") {
  Put("active", "did(view within 7d)");
  AddEvent("p", MakeEvent("view", kT0 - kDay));
  TakeChanges();
  SetTime(kT0 + 6 * kDay - 1);
  CHECK(TakeChanges().empty());
  CHECK(IsMember("p", "active"));
  SetTime(kT0 + 30 * kDay);
  std::vector<Change> changes = TakeChanges();
  REQUIRE(changes.size() == 1);
  CHECK(changes[0].kind == ChangeKind::kExit);
  CHECK(changes[0].cause == Cause::kTime);
  CHECK(changes[0].time == kT0 - kDay + 7 * kDay);
  CHECK_FALSE(IsMember("p", "active"));
}

TEST_CASE_METHOD(EngineFixture, "A >= now() comparison turns false one ms after the edge",
                 "[core][time]") {
  Put("new_user", "signup_at >= now() - 7d");
  Put("new_user_strict", "signup_at > now() - 7d");
  Set("p", {{"signup_at", Value::Time(kT0)}});
  TakeChanges();
  SetTime(kT0 + 8 * kDay);
  std::vector<Change> changes = TakeChanges();
  REQUIRE(changes.size() == 2);
  CHECK(changes[0].segment == "new_user_strict");
  CHECK(changes[0].time == kT0 + 7 * kDay);
  CHECK(changes[1].segment == "new_user");
  CHECK(changes[1].time == kT0 + 7 * kDay + 1);
}

TEST_CASE_METHOD(EngineFixture, "One SetTime jump can exit and re-enter in time order",
                 "[core][time]") {
  Put("not_1_to_2_days", "not (signup_at < now() - 1d and signup_at >= now() - 2d)");
  Put("one_to_two_days", "signup_at < now() - 1d and signup_at >= now() - 2d");
  Set("p", {{"signup_at", Value::Time(kT0)}});
  Set("q", {{"signup_at", Value::Time(kT0 + kHour)}});
  TakeChanges();
  SetTime(kT0 + 10 * kDay);
  std::vector<Change> changes = TakeChanges();
  std::vector<std::string> seen;
  for (const Change& c : changes) seen.push_back(Describe(c));
  const std::string p1 = std::to_string(kT0 + kDay + 1), p2 = std::to_string(kT0 + 2 * kDay + 1);
  const std::string q1 = std::to_string(kT0 + kHour + kDay + 1);
  const std::string q2 = std::to_string(kT0 + kHour + 2 * kDay + 1);
  CHECK(seen == std::vector<std::string>{
                    "p EXIT not_1_to_2_days @" + p1 + " TIME",
                    "p ENTER one_to_two_days @" + p1 + " TIME",
                    "q EXIT not_1_to_2_days @" + q1 + " TIME",
                    "q ENTER one_to_two_days @" + q1 + " TIME",
                    "p ENTER not_1_to_2_days @" + p2 + " TIME",
                    "p EXIT one_to_two_days @" + p2 + " TIME",
                    "q ENTER not_1_to_2_days @" + q2 + " TIME",
                    "q EXIT one_to_two_days @" + q2 + " TIME",
                });
}

TEST_CASE_METHOD(EngineFixture, "SetTime to now changes nothing; backwards is refused",
                 "[core][time]") {
  Put("active", "did(view within 1d)");
  AddEvent("p", MakeEvent("view", kT0));
  TakeChanges();
  SetTime(kT0);
  CHECK(TakeChanges().empty());
  absl::Status s = engine.SetTime(kT0 - 1);
  CHECK(s.code() == absl::StatusCode::kFailedPrecondition);
}

TEST_CASE_METHOD(EngineFixture, "Time flips cascade to in_segment dependents and count windows",
                 "[core][time]") {
  Put("engaged", "count(view within 1d) >= 2");
  Put("engaged_dk", "in_segment(\"engaged\") and country = \"DK\"");
  Set("p", {{"country", Value::String("DK")}});
  AddEvent("p", MakeEvent("view", kT0 - 2 * kHour));
  AddEvent("p", MakeEvent("view", kT0 - 1 * kHour));
  AddEvent("p", MakeEvent("view", kT0));
  CHECK(IsMember("p", "engaged_dk"));
  TakeChanges();
  SetTime(kT0 + 2 * kDay);
  std::vector<Change> changes = TakeChanges();
  REQUIRE(changes.size() == 2);
  // Three views: count drops below 2 when the second oldest leaves.
  CHECK(changes[0].segment == "engaged");
  CHECK(changes[0].time == kT0 - kHour + kDay);
  CHECK(changes[1].segment == "engaged_dk");
  CHECK(changes[1].time == kT0 - kHour + kDay);
}

TEST_CASE_METHOD(EngineFixture, "now() inside a where predicate flips on time", "[core][time]") {
  Put("has_valid_coupon", "did(coupon where expires > now())");
  AddEvent("p", MakeEvent("coupon", kT0, {{"expires", Value::Int(kT0 + 5 * kHour)}}));
  CHECK(IsMember("p", "has_valid_coupon"));
  TakeChanges();
  SetTime(kT0 + kDay);
  std::vector<Change> changes = TakeChanges();
  REQUIRE(changes.size() == 1);
  CHECK(changes[0].kind == ChangeKind::kExit);
  CHECK(changes[0].time == kT0 + 5 * kHour);
}

TEST_CASE_METHOD(EngineFixture, "Retention flips a rule with no window", "[core][time]") {
  Put("ever_viewed", "did(view)");
  AddEvent("p", MakeEvent("view", kT0 - 10 * kDay));
  TakeChanges();
  SetTime(kT0 + 100 * kDay);
  std::vector<Change> changes = TakeChanges();
  REQUIRE(changes.size() == 1);
  CHECK(changes[0].time == kT0 - 10 * kDay + 90 * kDay);
}

TEST_CASE_METHOD(EngineFixture, "Late events are placed in history and memberships follow",
                 "[core][time]") {
  Put("seq", "sequence(view, buy)");
  AddEvent("p", MakeEvent("buy", kT0 - kHour));
  CHECK_FALSE(IsMember("p", "seq"));
  AddEvent("p", MakeEvent("view", kT0 - 2 * kHour));
  CHECK(IsMember("p", "seq"));
}

TEST_CASE_METHOD(EngineFixture, "Changes carry their causes", "[core][changes]") {
  Put("dk", "country = \"DK\"");
  Set("a", {{"country", Value::String("DK")}});
  std::vector<Change> changes = TakeChanges();
  REQUIRE(changes.size() == 1);
  CHECK(Describe(changes[0]) == "a ENTER dk @" + std::to_string(kT0) + " UPDATE");

  Apply(KeyOnly("a", /*del=*/true));
  changes = TakeChanges();
  REQUIRE(changes.size() == 1);
  CHECK(Describe(changes[0]) == "a EXIT dk @" + std::to_string(kT0) + " PROFILE_DELETE");
  CHECK(engine.GetProfile("a").status().code() == absl::StatusCode::kNotFound);

  std::vector<ProfileData> profiles = {Profile("b", {{"country", Value::String("DK")}})};
  ReplayResult rr = engine.Replay(profiles, /*quiet=*/false);
  CHECK(rr.profiles == 1);
  changes = TakeChanges();
  REQUIRE(changes.size() == 1);
  CHECK(changes[0].cause == Cause::kReplay);

  profiles = {Profile("c", {{"country", Value::String("DK")}})};
  engine.Replay(profiles, /*quiet=*/true);
  CHECK(TakeChanges().empty());
  CHECK(IsMember("c", "dk"));
}

TEST_CASE_METHOD(EngineFixture, "Rejected updates are reported by index and change nothing",
                 "[core][changes]") {
  Put("dk", "country = \"DK\"");
  std::vector<ProfileUpdate> batch(3);
  batch[0].key = "a";
  batch[0].set = {{"country", Value::String("DK")}};
  batch[1].key = "b";
  batch[1].set = {{"country", Value::String("DK")}, {"score", Value::Float(std::nan(""))}};
  batch[2].key = "";
  BatchResult r = engine.Apply(batch);
  CHECK(r.applied == 1);
  REQUIRE(r.errors.size() == 2);
  CHECK(r.errors[0].index == 1);
  CHECK(r.errors[0].key == "b");
  CHECK(r.errors[1].index == 2);
  CHECK(engine.GetProfile("b").status().code() == absl::StatusCode::kNotFound);
  CHECK(TakeChanges().size() == 1);
  // Deleting a profile that does not exist counts as applied.
  r = engine.Apply(std::vector<ProfileUpdate>{KeyOnly("ghost", /*del=*/true)});
  CHECK(r.applied == 1);
}

TEST_CASE_METHOD(EngineFixture, "A cursor resumes with exactly the changes after it",
                 "[core][changes]") {
  Put("dk", "country = \"DK\"");
  Cursor start = engine.CurrentCursor();
  Set("a", {{"country", Value::String("DK")}});
  Set("b", {{"country", Value::String("DK")}});
  Cursor middle = engine.CurrentCursor();
  Set("c", {{"country", Value::String("DK")}});
  Set("a", {{"country", Value::String("SE")}});

  std::vector<Change> all, rest;
  Cursor c = start;
  REQUIRE(engine.ReadChanges(&c, 100, nullptr, &all).ok());
  CHECK(all.size() == 4);
  CHECK(c == engine.CurrentCursor());
  Cursor decoded = *DecodeCursor(EncodeCursor(middle));
  REQUIRE(engine.ReadChanges(&decoded, 100, nullptr, &rest).ok());
  std::vector<std::string> got;
  for (const Change& ch : rest) got.push_back(ch.key + ChangeKindName(ch.kind).data());
  std::sort(got.begin(), got.end());
  CHECK(got == std::vector<std::string>{"aEXIT", "cENTER"});

  // Filtered by segment.
  StringSet only = {"other"};
  std::vector<Change> none;
  c = start;
  REQUIRE(engine.ReadChanges(&c, 100, &only, &none).ok());
  CHECK(none.empty());
  CHECK(c == engine.CurrentCursor());
}

TEST_CASE("A cursor older than the change log is OUT_OF_RANGE", "[core][changes]") {
  EngineOptions options;
  options.change_log_capacity = 3;
  EngineFixture f(options, 1);
  f.Put("dk", "country = \"DK\"");
  Cursor start = f.engine.CurrentCursor();
  for (int i = 0; i < 5; ++i) f.Set("u" + std::to_string(i), {{"country", Value::String("DK")}});
  std::vector<Change> out;
  absl::Status s = f.engine.ReadChanges(&start, 100, nullptr, &out);
  CHECK(s.code() == absl::StatusCode::kOutOfRange);

  Cursor other = f.engine.CurrentCursor();
  other.incarnation ^= 1;
  CHECK(f.engine.ReadChanges(&other, 100, nullptr, &out).code() == absl::StatusCode::kOutOfRange);
  CHECK(DecodeCursor("garbage").status().code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("A read that fails moves neither the cursor nor what was read", "[core][changes]") {
  EngineOptions options;
  options.change_log_capacity = 3;
  EngineFixture f(options, 2);
  f.Put("dk", "country = \"DK\"");
  std::vector<std::string> keys[2];
  for (int i = 0; keys[0].empty() || keys[1].size() < 5; ++i) {
    const std::string key = "u" + std::to_string(i);
    keys[f.engine.ShardOf(key)].push_back(key);
  }
  const Cursor start = f.engine.CurrentCursor();
  // Shard 0 holds the one change after `start`; shard 1's log has moved past it.
  f.Set(keys[0][0], {{"country", Value::String("DK")}});
  for (int i = 0; i < 5; ++i) f.Set(keys[1][i], {{"country", Value::String("DK")}});

  std::vector<Change> out = {Change{"earlier", "dk", ChangeKind::kEnter, 1, Cause::kUpdate}};
  Cursor cursor = start;
  CHECK(f.engine.ReadChanges(&cursor, 100, nullptr, &out).code() == absl::StatusCode::kOutOfRange);
  CHECK(cursor == start);
  REQUIRE(out.size() == 1);
  CHECK(out[0].key == "earlier");

  cursor = start;
  CHECK(f.engine.ReadChanges(&cursor, 100, nullptr, [](const ChangeView&) {}).code() ==
        absl::StatusCode::kOutOfRange);
  CHECK(cursor == start);
}

TEST_CASE_METHOD(EngineFixture, "A snapshot and its cut lose and repeat nothing",
                 "[core][changes]") {
  Put("dk", "country = \"DK\"");
  Put("se", "country = \"SE\"");
  Set("a", {{"country", Value::String("DK")}});
  Set("b", {{"country", Value::String("SE")}});
  StringSet only = {"dk"};
  Snapshot snap = engine.TakeSnapshot(&only);
  REQUIRE(snap.size() == 1);
  std::vector<Change> members;
  Snapshot::Position pos;
  CHECK(snap.Read(&pos, 10, &members) == 1);
  REQUIRE(members.size() == 1);
  CHECK(Describe(members[0]) == "a ENTER dk @" + std::to_string(kT0) + " SNAPSHOT");
  Set("c", {{"country", Value::String("DK")}});
  std::vector<Change> live;
  REQUIRE(engine.ReadChanges(&snap.cursor, 100, &only, &live).ok());
  REQUIRE(live.size() == 1);
  CHECK(live[0].key == "c");
}

TEST_CASE_METHOD(EngineFixture, "Count, Members and GetProfile", "[core][queries]") {
  Put("dk", "country = \"DK\"");
  Put("adult", "age >= 18");
  Set("a", {{"country", Value::String("DK")}, {"age", Value::Int(30)}});
  Set("b", {{"country", Value::String("DK")}, {"age", Value::Int(10)}});
  Set("c", {{"country", Value::String("SE")}});
  absl::StatusOr<CountResult> count = engine.Count("country = \"DK\" and age > 5");
  REQUIRE(count.ok());
  CHECK(count->matched == 2);
  CHECK(count->total == 3);
  CHECK(engine.Count("in_segment(\"adult\")")->matched == 1);
  CHECK(engine.Count("in_segment(\"nope\")").status().message() == "1:1: unknown segment 'nope'");
  CHECK(engine.Count("age +").status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(Sorted(*engine.Members("dk")) == std::vector<std::string>{"a", "b"});
  CHECK(engine.Members("nope").status().code() == absl::StatusCode::kNotFound);
  absl::StatusOr<ProfileData> p = engine.GetProfile("a");
  REQUIRE(p.ok());
  CHECK(p->segments == std::vector<std::string>{"adult", "dk"});
  CHECK(p->attributes.size() == 2);
}

TEST_CASE_METHOD(EngineFixture, "Funnel counts each step's prefix", "[core][queries]") {
  auto events = [&](const std::string& key, std::vector<std::pair<std::string, int64_t>> evs) {
    ProfileUpdate u;
    u.key = key;
    for (auto& [t, at] : evs)
      u.events.push_back(MakeEvent(t, at, {{"price", Value::Int(at % 100)}}));
    Apply(u);
  };
  events("a", {{"view", kT0 - 50}, {"cart", kT0 - 40}, {"buy", kT0 - 30}});
  events("b", {{"view", kT0 - 50}, {"cart", kT0 - 40}});
  events("c", {{"cart", kT0 - 50}, {"view", kT0 - 40}, {"buy", kT0 - 30}});
  events("d", {{"view", kT0 - 3 * kDay}, {"cart", kT0 - 40}, {"buy", kT0 - 30}});
  Set("e", {});
  std::vector<std::string> steps = {"view", "cart", "buy"};
  absl::StatusOr<FunnelResult> r = engine.Funnel(steps, 0);
  REQUIRE(r.ok());
  CHECK(r->counts == std::vector<uint64_t>{4, 3, 2});
  CHECK(r->total == 5);
  r = engine.Funnel(steps, kDay);
  CHECK(r->counts == std::vector<uint64_t>{3, 2, 1});
  // price is the event time mod 100: the views of a and b at kT0 - 50 have price 50.
  std::vector<std::string> where = {"view where price = 50", "cart", "buy"};
  CHECK(engine.Funnel(where, 0)->counts == std::vector<uint64_t>{2, 2, 1});
  CHECK(engine.Funnel(steps, -1).status().code() == absl::StatusCode::kInvalidArgument);
  std::vector<std::string> bad = {"view", "cart where ("};
  absl::Status s = engine.Funnel(bad, 0).status();
  CHECK(s.code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(s.message()), StartsWith("steps[1]: 1:"));
}

// Steps without `where` are matched on the event heads alone, several histories side by
// side; with an always-true `where` the same steps go through the evaluator's view. Both
// must count the same — over deleted slots, empty histories, events that retention has
// dropped since they were stored, windows, and types no profile has.
TEST_CASE("Funnel on event heads agrees with the evaluator's matching", "[core][queries]") {
  EngineOptions options;
  options.retention_ms = 8 * kDay;
  EngineFixture f(options);
  std::mt19937_64 rng(301);
  const std::vector<std::string> types = {"view", "cart", "buy", "other"};
  for (int i = 0; i < 300; ++i) {
    ProfileUpdate u;
    u.key = "p" + std::to_string(i);
    u.set = {{"n", Value::Int(i)}};
    const int n = static_cast<int>(rng() % 12);
    for (int e = 0; e < n; ++e) {
      const int64_t at = kT0 - static_cast<int64_t>(rng() % (7 * kDay));
      u.events.push_back(MakeEvent(types[rng() % types.size()], at, {}));
    }
    f.Apply(u);
  }
  for (int i = 0; i < 300; i += 7) {
    ProfileUpdate u;
    u.key = "p" + std::to_string(i);
    u.del = true;
    f.Apply(u);
  }
  f.SetTime(kT0 + 3 * kDay);  // the oldest events are now past retention
  const std::string always = " where has(x) or not has(x)";
  for (const std::vector<std::string>& steps : {std::vector<std::string>{"view", "cart", "buy"},
                                                {"cart", "*", "cart"},
                                                {"buy"},
                                                {"view", "never_sent", "buy"},
                                                {"*", "*", "*", "*", "*"}}) {
    std::vector<std::string> slow;
    for (const std::string& s : steps) slow.push_back(s + always);
    for (int64_t within : {int64_t{0}, kDay, 3 * kDay, 20 * kDay}) {
      INFO(steps[0] << ", " << steps.size() << " steps, within " << within);
      absl::StatusOr<FunnelResult> fast = f.engine.Funnel(steps, within);
      absl::StatusOr<FunnelResult> view = f.engine.Funnel(slow, within);
      REQUIRE(fast.ok());
      REQUIRE(view.ok());
      CHECK(fast->counts == view->counts);
      CHECK(fast->total == 300 - 43);
      CHECK(fast->total == view->total);
      CHECK(fast->events_scanned == view->events_scanned);
    }
  }
}

TEST_CASE_METHOD(EngineFixture, "Explain shows each sub-expression and its value",
                 "[core][queries]") {
  Put("dk_adult", "country = \"DK\" and age >= 18");
  Set("a", {{"country", Value::String("DK")}, {"age", Value::Int(12)}});
  absl::StatusOr<ExplainResult> r = engine.Explain("a", "dk_adult", "");
  REQUIRE(r.ok());
  CHECK_FALSE(r->matched);
  REQUIRE(r->terms.size() == 7);
  CHECK(r->terms[0].text == "country = \"DK\" and age >= 18");
  CHECK(r->terms[0].value == "false");
  CHECK(r->terms[0].depth == 0);
  CHECK(r->terms[1].text == "country = \"DK\"");
  CHECK(r->terms[1].value == "true");
  CHECK(r->terms[1].depth == 1);
  CHECK(r->terms[2].text == "country");
  CHECK(r->terms[2].value == "\"DK\"");
  CHECK(r->terms[2].depth == 2);
  CHECK(r->terms[4].text == "age >= 18");
  CHECK(r->terms[4].value == "false");
  CHECK(r->terms[5].value == "12");
  CHECK(engine.Explain("nobody", "dk_adult", "").status().code() == absl::StatusCode::kNotFound);
  CHECK(engine.Explain("a", "nope", "").status().code() == absl::StatusCode::kNotFound);
  CHECK(engine.Explain("a", "", "").status().code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE_METHOD(EngineFixture, "Members are read shard by shard in pieces of at most max keys",
                 "[core][query]") {
  for (int i = 0; i < 25; ++i) Set("u" + std::to_string(i), {{"age", Value::Int(i)}});
  REQUIRE(engine.PutSegment({"late", "age >= 12", ""}, false).ok());
  using Chunk = absl::StatusOr<ShardChunk<std::string>>;
  auto read = [&](int shard, uint32_t from, size_t max) {
    Chunk out = absl::UnknownError("not called");
    engine.MembersChunkAsync("late", shard, from, max, [&](Chunk c) { out = std::move(c); });
    return out;
  };
  std::vector<std::string> keys;
  for (int shard = 0; shard < engine.num_shards(); ++shard) {
    for (uint32_t from = 0; from != kExportDone;) {
      Chunk c = read(shard, from, 3);
      REQUIRE(c.ok());
      CHECK(c->items.size() <= 3);
      for (std::string& k : c->items) keys.push_back(std::move(k));
      from = c->next;
    }
  }
  std::vector<std::string> want;
  for (int i = 12; i < 25; ++i) want.push_back("u" + std::to_string(i));
  CHECK(Sorted(keys) == Sorted(want));
  CHECK(Sorted(*engine.Members("late")) == Sorted(want));

  // A listing whose segment goes away meanwhile ends NOT_FOUND.
  REQUIRE(engine.DeleteSegment("late").ok());
  Chunk gone = read(0, 0, 3);
  CHECK(gone.status().code() == absl::StatusCode::kNotFound);
  CHECK(gone.status().message() == "segment 'late' not found");
}

}  // namespace
}  // namespace segd::testing

namespace segd::testing {
namespace {

TEST_CASE_METHOD(EngineFixture, "A 16 KiB chain of additions is stored, evaluated and explained",
                 "[core][limits]") {
  std::string rule = "a = 0";
  while (rule.size() + 2 <= kMaxRuleBytes) rule += "+1";
  const int64_t ones = static_cast<int64_t>((rule.size() - 5) / 2);
  Set("p", {{"a", Value::Int(ones)}});
  Put("long", rule);
  CHECK(IsMember("p", "long"));
  absl::StatusOr<ExplainResult> r = engine.Explain("p", "long", "");
  REQUIRE(r.ok());
  CHECK(r->matched);
  CHECK(engine.PutSegment({"too_long", rule + "+1", ""}, false).status().code() ==
        absl::StatusCode::kInvalidArgument);
}

TEST_CASE_METHOD(EngineFixture,
                 "A rule whose attribute test fails is decided without its history, in "
                 "backfill, dry run and count alike",
                 "[core][segments]") {
  // `country = "SE"` is tested on the attributes before the history is read; the
  // results must be those of the whole rule, and a profile skipped at the backfill
  // must still enter when its attributes change, and a member still leave on time.
  const std::string rule = "did(buy within 1d) and country = \"SE\" and age >= 18";
  struct P {
    std::string key, country;
    int64_t age;
    bool buy;
  };
  const std::vector<P> people = {{"se_buyer", "SE", 30, true}, {"se_kid", "SE", 12, true},
                                 {"se_idle", "SE", 40, false}, {"dk_buyer", "DK", 30, true},
                                 {"dk_idle", "DK", 30, false}, {"se_buyer2", "SE", 18, true}};
  for (const P& p : people) {
    ProfileUpdate u = KeyOnly(p.key);
    u.set = {{"country", Value::String(p.country)}, {"age", Value::Int(p.age)}};
    if (p.buy) u.events = {MakeEvent("buy", kT0 - 23 * kHour)};
    Apply(u);
  }
  absl::StatusOr<PutSegmentResult> dry = engine.PutSegment({"s", rule, ""}, /*dry_run=*/true);
  REQUIRE(dry.ok());
  CHECK(dry->entered == 2);
  absl::StatusOr<CountResult> count = engine.Count(rule);
  REQUIRE(count.ok());
  CHECK(count->matched == 2);
  CHECK(count->total == people.size());

  Put("s", rule);
  for (const P& p : people) {
    INFO(p.key);
    CHECK(IsMember(p.key, "s") == (p.key == "se_buyer" || p.key == "se_buyer2"));
  }
  TakeChanges();
  Set("dk_buyer", {{"country", Value::String("SE")}});  // skipped at the backfill
  CHECK(IsMember("dk_buyer", "s"));
  // Every buy leaves its 1d window (time > now - 1d) at kT0 + 1h: the members leave
  // then, not before.
  SetTime(kT0 + kHour - 1);
  CHECK(IsMember("se_buyer", "s"));
  SetTime(kT0 + kHour);
  CHECK_FALSE(IsMember("se_buyer", "s"));
  CHECK_FALSE(IsMember("se_buyer2", "s"));
  CHECK_FALSE(IsMember("dk_buyer", "s"));
}

}  // namespace
}  // namespace segd::testing
