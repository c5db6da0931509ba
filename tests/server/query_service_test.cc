#include "server/query_service.h"

#include <grpcpp/grpcpp.h>

#include <catch2/catch.hpp>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/profile_update.h"
#include "core/value.h"
#include "server/convert.h"
#include "server/service_env.h"
#include "tests/server/server_fixture.h"

namespace segd::server::testing {
namespace {

constexpr int64_t kMinute = 60'000;

Event MakeEvent(std::string type, int64_t time, NamedValues properties = {}, std::string id = "") {
  return Event{std::move(type), time, std::move(id), std::move(properties)};
}

void Apply(ServerFixture& f, std::vector<ProfileUpdate> updates) {
  BatchResult r = f.server->engine().Apply(updates);
  INFO((r.errors.empty() ? std::string() : r.errors[0].message));
  REQUIRE(r.errors.empty());
}

ProfileUpdate Set(std::string key, NamedValues set) {
  ProfileUpdate u;
  u.key = std::move(key);
  u.set = std::move(set);
  return u;
}

void PutSegment(ServerFixture& f, const std::string& id, const std::string& rule) {
  absl::StatusOr<PutSegmentResult> r = f.server->engine().PutSegment({id, rule, ""}, false);
  INFO(r.status().message());
  REQUIRE(r.ok());
}

grpc::Status GetProfile(ServerFixture& f, const std::string& key, v1::Profile* out) {
  grpc::ClientContext ctx;
  v1::GetProfileRequest request;
  request.set_key(key);
  return f.query->GetProfile(&ctx, request, out);
}

// Reads a whole ListMembers stream.
grpc::Status ListMembers(ServerFixture& f, const std::string& segment,
                         std::vector<v1::MemberBatch>* batches) {
  grpc::ClientContext ctx;
  v1::ListMembersRequest request;
  request.set_segment(segment);
  std::unique_ptr<grpc::ClientReader<v1::MemberBatch>> reader = f.query->ListMembers(&ctx, request);
  for (v1::MemberBatch b; reader->Read(&b);) batches->push_back(b);
  return reader->Finish();
}

grpc::Status Count(ServerFixture& f, const std::string& rule, v1::CountResponse* out) {
  grpc::ClientContext ctx;
  v1::CountRequest request;
  request.set_rule(rule);
  return f.query->Count(&ctx, request, out);
}

grpc::Status Funnel(ServerFixture& f, const std::vector<std::string>& steps, int64_t within_ms,
                    v1::FunnelResponse* out) {
  grpc::ClientContext ctx;
  v1::FunnelRequest request;
  for (const std::string& s : steps) request.add_steps(s);
  request.set_within_ms(within_ms);
  return f.query->Funnel(&ctx, request, out);
}

grpc::Status Explain(ServerFixture& f, const std::string& key, const std::string& segment,
                     const std::string& rule, v1::ExplainResponse* out) {
  grpc::ClientContext ctx;
  v1::ExplainRequest request;
  request.set_key(key);
  request.set_segment(segment);
  request.set_rule(rule);
  return f.query->Explain(&ctx, request, out);
}

grpc::Status Export(ServerFixture& f, std::vector<v1::ExportBatch>* batches) {
  grpc::ClientContext ctx;
  std::unique_ptr<grpc::ClientReader<v1::ExportBatch>> reader =
      f.query->Export(&ctx, v1::ExportRequest());
  for (v1::ExportBatch b; reader->Read(&b);) batches->push_back(b);
  return reader->Finish();
}

// ---- GetProfile ----

TEST_CASE("GetProfile returns every kind of value, events in history order, sorted segments",
          "[server][query]") {
  ServerFixture f;
  PutSegment(f, "zz_buyers", "did(purchase)");
  PutSegment(f, "aa_named", "has(name)");
  PutSegment(f, "never", "false");
  ProfileUpdate u;
  u.key = "ünï";
  u.set = {{"name", Value::String("Ada")},
           {"age", Value::Int(-36)},
           {"score", Value::Float(0.25)},
           {"vip", Value::Bool(true)},
           {"signup_at", Value::Time(kT0 - kDay)},
           {"tags", Value::List({"a", "", "b c"})},
           {"no_tags", Value::List({})}};
  // Out of order on purpose: history order is by time.
  u.events = {MakeEvent("purchase", kT0 - kMinute,
                        {{"amount", Value::Float(9.5)},
                         {"currency", Value::String("EUR")},
                         {"items", Value::Int(3)},
                         {"gift", Value::Bool(false)},
                         {"shipped_at", Value::Time(kT0 - 1)}},
                        "order-1"),
              MakeEvent("login", kT0 - kHour)};
  Apply(f, {u});

  v1::Profile p;
  grpc::Status s = GetProfile(f, "ünï", &p);
  INFO(s.error_message());
  REQUIRE(s.ok());
  CHECK(p.key() == "ünï");
  REQUIRE(p.attributes_size() == 7);
  const auto& a = p.attributes();
  CHECK(a.at("name").string_value() == "Ada");
  CHECK(a.at("age").int_value() == -36);
  CHECK(a.at("score").float_value() == 0.25);
  CHECK(a.at("vip").kind_case() == v1::Value::kBoolValue);
  CHECK(a.at("vip").bool_value());
  CHECK(a.at("signup_at").kind_case() == v1::Value::kTimeValue);
  CHECK(a.at("signup_at").time_value() == kT0 - kDay);
  REQUIRE(a.at("tags").kind_case() == v1::Value::kListValue);
  CHECK(std::vector<std::string>(a.at("tags").list_value().values().begin(),
                                 a.at("tags").list_value().values().end()) ==
        std::vector<std::string>{"a", "", "b c"});
  CHECK(a.at("no_tags").kind_case() == v1::Value::kListValue);
  CHECK(a.at("no_tags").list_value().values_size() == 0);

  REQUIRE(p.events_size() == 2);
  CHECK(p.events(0).type() == "login");
  CHECK(p.events(0).time() == kT0 - kHour);
  CHECK(p.events(0).id() == "");
  CHECK(p.events(0).properties_size() == 0);
  const v1::Event& e = p.events(1);
  CHECK(e.type() == "purchase");
  CHECK(e.time() == kT0 - kMinute);
  CHECK(e.id() == "order-1");
  REQUIRE(e.properties_size() == 5);
  CHECK(e.properties().at("amount").float_value() == 9.5);
  CHECK(e.properties().at("currency").string_value() == "EUR");
  CHECK(e.properties().at("items").int_value() == 3);
  CHECK(e.properties().at("gift").kind_case() == v1::Value::kBoolValue);
  CHECK_FALSE(e.properties().at("gift").bool_value());
  CHECK(e.properties().at("shipped_at").kind_case() == v1::Value::kTimeValue);
  CHECK(e.properties().at("shipped_at").time_value() == kT0 - 1);

  CHECK(std::vector<std::string>(p.segments().begin(), p.segments().end()) ==
        std::vector<std::string>{"aa_named", "zz_buyers"});

  // What GetProfile returns converts back to exactly what was stored.
  absl::StatusOr<ProfileData> back = ProfileFromProto(p);
  REQUIRE(back.ok());
  absl::StatusOr<ProfileData> stored = f.server->engine().GetProfile("ünï");
  REQUIRE(stored.ok());
  back->segments = stored->segments;
  CHECK(*back == *stored);
}

TEST_CASE("GetProfile of an absent profile is NOT_FOUND", "[server][query]") {
  ServerFixture f;
  Apply(f, {Set("a", {})});
  v1::Profile p;
  REQUIRE(GetProfile(f, "a", &p).ok());
  CHECK(p.key() == "a");
  CHECK(p.attributes_size() == 0);
  CHECK(p.events_size() == 0);
  grpc::Status s = GetProfile(f, "b", &p);
  CHECK(s.error_code() == grpc::StatusCode::NOT_FOUND);
  CHECK(s.error_message() == "profile 'b' not found");
}

TEST_CASE("GetProfile drops events that fell out of retention", "[server][query]") {
  ServerFixture f;
  ProfileUpdate u = Set("a", {});
  u.events = {MakeEvent("old", kT0 - 89 * kDay), MakeEvent("new", kT0)};
  Apply(f, {u});
  REQUIRE(f.server->engine().SetTime(kT0 + 2 * kDay).ok());
  v1::Profile p;
  REQUIRE(GetProfile(f, "a", &p).ok());
  REQUIRE(p.events_size() == 1);
  CHECK(p.events(0).type() == "new");
}

// ---- ListMembers ----

TEST_CASE("ListMembers streams every member once, in batches of at most 1000", "[server][query]") {
  ServerFixture f;
  constexpr int kProfiles = 3000;
  constexpr int kMembers = 2600;
  std::vector<ProfileUpdate> updates;
  for (int i = 0; i < kProfiles; ++i) {
    updates.push_back(Set("key-" + std::to_string(i), {{"n", Value::Int(i)}}));
  }
  Apply(f, updates);
  PutSegment(f, "low", "n < " + std::to_string(kMembers));
  PutSegment(f, "empty", "n < 0");

  std::vector<v1::MemberBatch> batches;
  grpc::Status s = ListMembers(f, "low", &batches);
  INFO(s.error_message());
  REQUIRE(s.ok());
  CHECK(batches.size() >= 3);
  std::multiset<std::string> keys;
  for (const v1::MemberBatch& b : batches) {
    CHECK(b.keys_size() > 0);
    CHECK(b.keys_size() <= 1000);
    keys.insert(b.keys().begin(), b.keys().end());
  }
  REQUIRE(keys.size() == kMembers);
  for (int i = 0; i < kMembers; ++i) CHECK(keys.count("key-" + std::to_string(i)) == 1);

  batches.clear();
  REQUIRE(ListMembers(f, "empty", &batches).ok());
  size_t n = 0;
  for (const v1::MemberBatch& b : batches) n += b.keys_size();
  CHECK(n == 0);
}

TEST_CASE("ListMembers of an unknown segment is NOT_FOUND, of a bad id INVALID_ARGUMENT",
          "[server][query]") {
  ServerFixture f;
  std::vector<v1::MemberBatch> batches;
  grpc::Status s = ListMembers(f, "nope", &batches);
  CHECK(s.error_code() == grpc::StatusCode::NOT_FOUND);
  CHECK(s.error_message() == "segment 'nope' not found");
  CHECK(batches.empty());
  s = ListMembers(f, "bad id", &batches);
  CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(batches.empty());
}

TEST_CASE("A ListMembers reader that goes away early leaves the server serving",
          "[server][query]") {
  ServerFixture f;
  std::vector<ProfileUpdate> updates;
  for (int i = 0; i < 5000; ++i) updates.push_back(Set("k" + std::to_string(i), {}));
  Apply(f, updates);
  PutSegment(f, "all", "true");
  for (int round = 0; round < 5; ++round) {
    grpc::ClientContext ctx;
    v1::ListMembersRequest request;
    request.set_segment("all");
    auto reader = f.query->ListMembers(&ctx, request);
    v1::MemberBatch b;
    REQUIRE(reader->Read(&b));
    CHECK(b.keys_size() > 0);
    ctx.TryCancel();
    while (reader->Read(&b)) {
    }
    CHECK(reader->Finish().error_code() == grpc::StatusCode::CANCELLED);
  }
  std::vector<v1::MemberBatch> batches;
  REQUIRE(ListMembers(f, "all", &batches).ok());
  size_t n = 0;
  for (const v1::MemberBatch& b : batches) n += b.keys_size();
  CHECK(n == 5000);
}

// ---- Count ----

TEST_CASE("Count counts the profiles an ad-hoc rule matches", "[server][query]") {
  ServerFixture f;
  Apply(f, {Set("a", {{"age", Value::Int(12)}}), Set("b", {{"age", Value::Int(30)}}),
            Set("c", {{"age", Value::Int(45)}, {"vip", Value::Bool(true)}}), Set("d", {})});
  v1::CountResponse r;
  REQUIRE(Count(f, "age >= 18", &r).ok());
  CHECK(r.matched() == 2);
  CHECK(r.total() == 4);
  REQUIRE(Count(f, "not has(age)", &r).ok());
  CHECK(r.matched() == 1);
  CHECK(r.total() == 4);
  PutSegment(f, "adults", "age >= 18");
  REQUIRE(Count(f, "in_segment(\"adults\") and vip", &r).ok());
  CHECK(r.matched() == 1);
  // Nothing is stored.
  CHECK(f.server->engine().ListSegments().size() == 1);
}

TEST_CASE("Count rejects a bad rule with its line and column", "[server][query]") {
  ServerFixture f;
  v1::CountResponse r;
  grpc::Status s = Count(f, "age >= 18 and (b = 1 or c", &r);
  CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(s.error_message() == "1:26: expected ')' to close '(' at 1:15, found end of rule");
  s = Count(f, "age + 1", &r);
  CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK_THAT(s.error_message(), Catch::StartsWith("1:1: "));
  s = Count(f, "a = 1 and in_segment(\"nope\")", &r);
  CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(s.error_message() == "1:11: unknown segment 'nope'");
}

// ---- Funnel ----

// Three shoppers: u1 views, adds a 20.00 cart, buys; u2 views, adds a 5.00 cart, buys;
// u3 buys before viewing. u1's steps are 1 hour apart, u2's 1 day apart.
void AddShoppers(ServerFixture& f) {
  ProfileUpdate u1 = Set("u1", {});
  u1.events = {MakeEvent("view", kT0 - 3 * kHour),
               MakeEvent("cart", kT0 - 2 * kHour, {{"amount", Value::Float(20)}}),
               MakeEvent("buy", kT0 - kHour)};
  ProfileUpdate u2 = Set("u2", {});
  u2.events = {MakeEvent("view", kT0 - 3 * kDay),
               MakeEvent("cart", kT0 - 2 * kDay, {{"amount", Value::Float(5)}}),
               MakeEvent("buy", kT0 - kDay)};
  ProfileUpdate u3 = Set("u3", {});
  u3.events = {MakeEvent("buy", kT0 - 2 * kHour), MakeEvent("view", kT0 - kHour)};
  Apply(f, {u1, u2, u3, Set("u4", {})});
}

TEST_CASE("Funnel counts the profiles through each prefix of the steps", "[server][query]") {
  ServerFixture f;
  AddShoppers(f);
  v1::FunnelResponse r;
  grpc::Status s = Funnel(f, {"view", "cart", "buy"}, 0, &r);
  INFO(s.error_message());
  REQUIRE(s.ok());
  CHECK(std::vector<uint64_t>(r.counts().begin(), r.counts().end()) ==
        std::vector<uint64_t>{3, 2, 2});
  CHECK(r.total() == 4);

  // A where predicate on a step.
  REQUIRE(Funnel(f, {"view", "cart where amount > 10", "buy"}, 0, &r).ok());
  CHECK(std::vector<uint64_t>(r.counts().begin(), r.counts().end()) ==
        std::vector<uint64_t>{3, 1, 1});

  // A window: every step after now - within.
  REQUIRE(Funnel(f, {"view", "cart", "buy"}, 12 * kHour, &r).ok());
  CHECK(std::vector<uint64_t>(r.counts().begin(), r.counts().end()) ==
        std::vector<uint64_t>{2, 1, 1});
  CHECK(r.total() == 4);

  // Order matters.
  REQUIRE(Funnel(f, {"buy", "view"}, 0, &r).ok());
  CHECK(std::vector<uint64_t>(r.counts().begin(), r.counts().end()) == std::vector<uint64_t>{3, 1});
}

TEST_CASE("Funnel rejects a bad step, no steps and a negative window", "[server][query]") {
  ServerFixture f;
  AddShoppers(f);
  v1::FunnelResponse r;
  grpc::Status s = Funnel(f, {"view", "cart where amount >", "buy"}, 0, &r);
  CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK_THAT(s.error_message(), Catch::StartsWith("steps[1]: 1:"));
  s = Funnel(f, {"view", "cart within 1d"}, 0, &r);
  CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK_THAT(s.error_message(), Catch::StartsWith("steps[1]: 1:"));
  s = Funnel(f, {"view"}, -1, &r);
  CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(s.error_message() == "within_ms: must be >= 0, got -1");
  s = Funnel(f, {}, 0, &r);
  CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(s.error_message() == "steps: a funnel needs at least one step");
}

// ---- Explain ----

TEST_CASE("Explain shows each term of a segment's rule and its value", "[server][query]") {
  ServerFixture f;
  PutSegment(f, "dk_adult", "country = \"DK\" and age >= 18");
  Apply(f, {Set("a", {{"country", Value::String("DK")}, {"age", Value::Int(12)}})});
  v1::ExplainResponse r;
  grpc::Status s = Explain(f, "a", "dk_adult", "", &r);
  INFO(s.error_message());
  REQUIRE(s.ok());
  CHECK_FALSE(r.matched());
  struct Term {
    std::string text;
    std::string value;
    uint32_t depth;
  };
  const std::vector<Term> want = {
      {"country = \"DK\" and age >= 18", "false", 0},
      {"country = \"DK\"", "true", 1},
      {"country", "\"DK\"", 2},
      {"\"DK\"", "\"DK\"", 2},
      {"age >= 18", "false", 1},
      {"age", "12", 2},
      {"18", "18", 2},
  };
  REQUIRE(r.terms_size() == static_cast<int>(want.size()));
  for (size_t i = 0; i < want.size(); ++i) {
    INFO("term " << i);
    CHECK(r.terms(i).text() == want[i].text);
    CHECK(r.terms(i).value() == want[i].value);
    CHECK(r.terms(i).depth() == want[i].depth);
  }
}

TEST_CASE("Explain of an ad-hoc rule", "[server][query]") {
  ServerFixture f;
  ProfileUpdate u = Set("a", {{"tags", Value::List({"x", "y"})}});
  u.events = {MakeEvent("login", kT0 - kHour), MakeEvent("login", kT0 - kMinute)};
  Apply(f, {u});
  v1::ExplainResponse r;
  REQUIRE(Explain(f, "a", "", "count(login within 1d) >= 2 or missing_attr", &r).ok());
  CHECK(r.matched());
  REQUIRE(r.terms_size() >= 3);
  CHECK(r.terms(0).text() == "count(login within 1d) >= 2 or missing_attr");
  CHECK(r.terms(0).value() == "true");
  CHECK(r.terms(0).depth() == 0);
  bool saw_count = false;
  bool saw_missing = false;
  for (const v1::ExplainTerm& t : r.terms()) {
    if (t.text() == "count(login within 1d)") {
      saw_count = true;
      CHECK(t.value() == "2");
    }
    if (t.text() == "missing_attr") {
      saw_missing = true;
      CHECK(t.value() == "missing");
      CHECK(t.depth() == 1);
    }
  }
  CHECK(saw_count);
  CHECK(saw_missing);

  REQUIRE(Explain(f, "a", "", "tags contains \"y\"", &r).ok());
  CHECK(r.matched());
  REQUIRE(r.terms_size() == 3);
  CHECK(r.terms(1).value() == "[\"x\", \"y\"]");
}

TEST_CASE("Explain errors: unknown profile or segment, bad rule, segment and rule both or neither",
          "[server][query]") {
  ServerFixture f;
  PutSegment(f, "s", "true");
  Apply(f, {Set("a", {})});
  v1::ExplainResponse r;
  grpc::Status s = Explain(f, "nobody", "s", "", &r);
  CHECK(s.error_code() == grpc::StatusCode::NOT_FOUND);
  CHECK(s.error_message() == "profile 'nobody' not found");
  s = Explain(f, "a", "nope", "", &r);
  CHECK(s.error_code() == grpc::StatusCode::NOT_FOUND);
  CHECK(s.error_message() == "segment 'nope' not found");
  s = Explain(f, "a", "", "x ==", &r);
  CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  // The parser reports '==' at its second '=' (as in the core's own tests).
  CHECK(s.error_message() == "1:4: '==' is not an operator: compare with '='");
  s = Explain(f, "a", "", "", &r);
  CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  s = Explain(f, "a", "s", "true", &r);
  CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  s = Explain(f, "a", "bad id", "", &r);
  CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
}

// ---- Export ----

TEST_CASE("Export returns every replayed profile exactly once, as it was replayed",
          "[server][query]") {
  ServerFixture f;
  constexpr int kProfiles = 1500;
  std::vector<ProfileData> replayed;
  for (int i = 0; i < kProfiles; ++i) {
    ProfileData p;
    p.key = "user-" + std::to_string(i);
    // Sorted by name, as the engine returns them.
    p.attributes = {{"i", Value::Int(i)},
                    {"name", Value::String("n" + std::to_string(i % 7))},
                    {"score", Value::Float(i / 4.0)},
                    {"seen", Value::Time(kT0 - i)},
                    {"tags", Value::List({"t" + std::to_string(i % 3)})},
                    {"vip", Value::Bool(i % 2 == 0)}};
    for (int k = 0; k < i % 5; ++k) {
      p.events.push_back(MakeEvent(k % 2 == 0 ? "view" : "buy", kT0 - (10 - k) * kMinute,
                                   {{"n", Value::Int(k)}, {"s", Value::String("x")}},
                                   k == 0 ? "" : "id" + std::to_string(k)));
    }
    replayed.push_back(std::move(p));
  }
  ReplayResult rr = f.server->engine().Replay(replayed, /*quiet=*/true);
  REQUIRE(rr.errors.empty());
  REQUIRE(rr.profiles == kProfiles);

  std::vector<v1::ExportBatch> batches;
  grpc::Status s = Export(f, &batches);
  INFO(s.error_message());
  REQUIRE(s.ok());
  CHECK(batches.size() >= 6);  // two shards, at most a few hundred profiles a batch
  std::map<std::string, ProfileData> exported;
  for (const v1::ExportBatch& b : batches) {
    CHECK(b.profiles_size() > 0);
    CHECK(b.profiles_size() <= 500);
    for (const v1::Profile& p : b.profiles()) {
      absl::StatusOr<ProfileData> data = ProfileFromProto(p);
      REQUIRE(data.ok());
      INFO(p.key());
      CHECK(exported.count(p.key()) == 0);
      exported[p.key()] = *std::move(data);
    }
  }
  REQUIRE(exported.size() == kProfiles);
  for (const ProfileData& want : replayed) {
    INFO(want.key);
    REQUIRE(exported.count(want.key) == 1);
    CHECK(exported[want.key] == want);
  }
}

TEST_CASE("Export of an empty server ends at once", "[server][query]") {
  ServerFixture f;
  std::vector<v1::ExportBatch> batches;
  REQUIRE(Export(f, &batches).ok());
  CHECK(batches.empty());
}

TEST_CASE("An Export reader that goes away early leaves the server serving", "[server][query]") {
  ServerFixture f;
  std::vector<ProfileData> profiles;
  for (int i = 0; i < 3000; ++i) {
    ProfileData p;
    p.key = "k" + std::to_string(i);
    p.attributes = {{"blob", Value::String(std::string(200, 'x'))}};
    profiles.push_back(std::move(p));
  }
  REQUIRE(f.server->engine().Replay(profiles, true).errors.empty());
  for (int round = 0; round < 5; ++round) {
    grpc::ClientContext ctx;
    auto reader = f.query->Export(&ctx, v1::ExportRequest());
    v1::ExportBatch b;
    REQUIRE(reader->Read(&b));
    CHECK(b.profiles_size() > 0);
    ctx.TryCancel();
    while (reader->Read(&b)) {
    }
    CHECK(reader->Finish().error_code() == grpc::StatusCode::CANCELLED);
  }
  std::vector<v1::ExportBatch> batches;
  REQUIRE(Export(f, &batches).ok());
  size_t n = 0;
  for (const v1::ExportBatch& b : batches) n += b.profiles_size();
  CHECK(n == 3000);
}

TEST_CASE("Streams cancelled before their first read, and a shutdown during an export",
          "[server][query]") {
  ServerFixture f;
  std::vector<ProfileData> profiles;
  for (int i = 0; i < 20000; ++i) {
    ProfileData p;
    p.key = "k" + std::to_string(i);
    p.attributes = {{"blob", Value::String(std::string(100, 'x'))}};
    profiles.push_back(std::move(p));
  }
  REQUIRE(f.server->engine().Replay(profiles, true).errors.empty());
  PutSegment(f, "all", "true");
  for (int round = 0; round < 10; ++round) {
    grpc::ClientContext export_ctx;
    auto exporter = f.query->Export(&export_ctx, v1::ExportRequest());
    grpc::ClientContext members_ctx;
    v1::ListMembersRequest request;
    request.set_segment("all");
    auto members = f.query->ListMembers(&members_ctx, request);
    export_ctx.TryCancel();
    members_ctx.TryCancel();
    CHECK(exporter->Finish().error_code() == grpc::StatusCode::CANCELLED);
    CHECK(members->Finish().error_code() == grpc::StatusCode::CANCELLED);
  }

  grpc::ClientContext ctx;
  auto reader = f.query->Export(&ctx, v1::ExportRequest());
  v1::ExportBatch b;
  REQUIRE(reader->Read(&b));
  size_t n = b.profiles_size();
  std::thread shutdown([&] { f.server->Shutdown(absl::Seconds(5)); });
  while (reader->Read(&b)) n += b.profiles_size();
  const grpc::Status s = reader->Finish();
  shutdown.join();
  // Either the export got to its end first, or the drain ended it.
  if (s.ok()) {
    CHECK(n == 20000);
  } else {
    CHECK(s.error_code() == grpc::StatusCode::UNAVAILABLE);
    CHECK(s.error_message() == "server is shutting down");
    CHECK(n < 20000);
  }
}

TEST_CASE("Export keeps to the message size limit with large profiles", "[server][query]") {
  ServerOptions options = TestOptions();
  options.max_message_bytes = 1 << 20;
  ServerFixture f(options);
  std::vector<ProfileData> profiles;
  for (int i = 0; i < 300; ++i) {
    ProfileData p;
    p.key = "k" + std::to_string(i);
    p.attributes = {{"blob", Value::String(std::string(20'000, 'a' + i % 26))}};
    profiles.push_back(std::move(p));
  }
  REQUIRE(f.server->engine().Replay(profiles, true).errors.empty());
  std::vector<v1::ExportBatch> batches;
  grpc::Status s = Export(f, &batches);
  INFO(s.error_message());
  REQUIRE(s.ok());
  std::set<std::string> keys;
  for (const v1::ExportBatch& b : batches) {
    CHECK(b.ByteSizeLong() < (1u << 20));
    for (const v1::Profile& p : b.profiles()) keys.insert(p.key());
  }
  CHECK(keys.size() == 300);
}

// ---- Draining ----

TEST_CASE("Every Query call is UNAVAILABLE while the server drains", "[server][query]") {
  ServerFixture f;
  Apply(f, {Set("a", {})});
  PutSegment(f, "s", "true");
  DrainingServer<QueryService> d(f);
  auto stub = v1::Query::NewStub(d.channel);
  std::vector<grpc::Status> statuses;
  {
    grpc::ClientContext ctx;
    v1::GetProfileRequest request;
    request.set_key("a");
    v1::Profile response;
    statuses.push_back(stub->GetProfile(&ctx, request, &response));
  }
  {
    grpc::ClientContext ctx;
    v1::ListMembersRequest request;
    request.set_segment("s");
    auto reader = stub->ListMembers(&ctx, request);
    v1::MemberBatch b;
    CHECK_FALSE(reader->Read(&b));
    statuses.push_back(reader->Finish());
  }
  {
    grpc::ClientContext ctx;
    v1::CountRequest request;
    request.set_rule("true");
    v1::CountResponse response;
    statuses.push_back(stub->Count(&ctx, request, &response));
  }
  {
    grpc::ClientContext ctx;
    v1::FunnelRequest request;
    request.add_steps("view");
    v1::FunnelResponse response;
    statuses.push_back(stub->Funnel(&ctx, request, &response));
  }
  {
    grpc::ClientContext ctx;
    v1::ExplainRequest request;
    request.set_key("a");
    request.set_segment("s");
    v1::ExplainResponse response;
    statuses.push_back(stub->Explain(&ctx, request, &response));
  }
  {
    grpc::ClientContext ctx;
    auto reader = stub->Export(&ctx, v1::ExportRequest());
    v1::ExportBatch b;
    CHECK_FALSE(reader->Read(&b));
    statuses.push_back(reader->Finish());
  }
  REQUIRE(statuses.size() == 6);
  for (const grpc::Status& s : statuses) {
    CHECK(s.error_code() == grpc::StatusCode::UNAVAILABLE);
    CHECK(s.error_message() == "server is shutting down");
  }
}

}  // namespace
}  // namespace segd::server::testing
