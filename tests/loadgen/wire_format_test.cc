#include "loadgen/wire_format.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "loadgen/workload.h"
#include "segd/v1/segd.pb.h"
#include "server/convert.h"

namespace segd::load::wire {
namespace {

constexpr int64_t kNow = 1'700'000'000'000;

// Both encodings must decode to the same profile; the conversion back sorts maps by name,
// so the comparison does not depend on map order.
void RequireSameProfile(const std::string& ours, const ProfileData& profile) {
  v1::Profile parsed;
  REQUIRE(parsed.ParseFromString(ours));
  // A canonical encoding is exactly as long as protobuf's own of the same message.
  REQUIRE(parsed.ByteSizeLong() == ours.size());
  REQUIRE(ProfileSize(profile) == ours.size());
  v1::Profile reference;
  server::ToProto(profile, &reference);
  absl::StatusOr<ProfileData> a = server::ProfileFromProto(parsed);
  absl::StatusOr<ProfileData> b = server::ProfileFromProto(reference);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  REQUIRE(*a == *b);
}

TEST_CASE("AppendProfile encodes the standard profiles as protobuf does", "[loadgen][wire]") {
  WorkloadOptions options;
  options.profiles = 1000;
  const Workload workload(options);
  for (uint64_t n = 0; n < 300; ++n) {
    const ProfileData profile = workload.MakeProfile(n, kNow);
    std::string bytes;
    AppendProfile(profile, &bytes);
    RequireSameProfile(bytes, profile);
  }
}

TEST_CASE("AppendProfile encodes every kind and edge of value", "[loadgen][wire]") {
  ProfileData p;
  p.key = "k\xc3\xa9y";
  p.attributes = {
      {"zero", Value::Int(0)},
      {"negative", Value::Int(-5)},
      {"min", Value::Int(std::numeric_limits<int64_t>::min())},
      {"max", Value::Int(std::numeric_limits<int64_t>::max())},
      {"float", Value::Float(-0.25)},
      {"float_zero", Value::Float(0.0)},
      {"yes", Value::Bool(true)},
      {"no", Value::Bool(false)},
      {"time", Value::Time(kNow)},
      {"time_negative", Value::Time(-1)},
      {"empty_string", Value::String("")},
      {"long_string", Value::String(std::string(300, 'x'))},
      {"empty_list", Value::List({})},
      {"list", Value::List({"a", "", "ccc"})},
  };
  Event e1;
  e1.type = "purchase";
  e1.time = kNow - 5;
  e1.id = "o-1";
  e1.properties = {{"amount", Value::Float(12.5)}, {"n", Value::Int(0)}};
  Event e2;
  e2.type = "login";  // time 0 (the server's now) and no id: both omitted on the wire
  p.events = {e1, e2};
  std::string bytes;
  AppendProfile(p, &bytes);
  RequireSameProfile(bytes, p);

  v1::Profile parsed;
  REQUIRE(parsed.ParseFromString(bytes));
  REQUIRE(parsed.attributes().at("zero").kind_case() == v1::Value::kIntValue);
  REQUIRE(parsed.attributes().at("no").kind_case() == v1::Value::kBoolValue);
  REQUIRE(parsed.attributes().at("float_zero").kind_case() == v1::Value::kFloatValue);
  REQUIRE(parsed.attributes().at("empty_string").kind_case() == v1::Value::kStringValue);
  REQUIRE(parsed.attributes().at("empty_list").kind_case() == v1::Value::kListValue);
  REQUIRE(parsed.events(1).time() == 0);
  REQUIRE(parsed.events(0).id() == "o-1");
}

TEST_CASE("A ReplayRequest framed by hand parses with quiet and every profile", "[loadgen][wire]") {
  WorkloadOptions options;
  const Workload workload(options);
  std::string bytes;
  AppendVarintField(kReplayRequestQuiet, 1, &bytes);
  for (uint64_t n = 0; n < 3; ++n) AppendReplayProfile(workload.MakeProfile(n, kNow), &bytes);
  v1::ReplayRequest request;
  REQUIRE(request.ParseFromString(bytes));
  REQUIRE(request.quiet());
  REQUIRE(request.profiles_size() == 3);
  REQUIRE(request.profiles(2).key() == "u2");
  REQUIRE(request.profiles(2).events_size() == Workload::kHistoryEvents);
}

TEST_CASE("AppendKeyedUpdate puts a key in front of a serialized update", "[loadgen][wire]") {
  WorkloadOptions options;
  Workload workload(options);
  std::string batch_bytes;
  AppendVarintField(kUpdateBatchSeq, 300, &batch_bytes);
  std::vector<ProfileUpdate> updates;
  for (int i = 0; i < 50; ++i) {
    ProfileUpdate u = workload.NextUpdate(0);
    const std::string key = u.key;
    u.key.clear();
    v1::ProfileUpdate body;
    server::ToProto(u, &body);
    AppendKeyedUpdate(key, body.SerializeAsString(), &batch_bytes);
    u.key = key;
    updates.push_back(std::move(u));
  }
  v1::UpdateBatch batch;
  REQUIRE(batch.ParseFromString(batch_bytes));
  REQUIRE(batch.seq() == 300);
  REQUIRE(batch.updates_size() == 50);
  for (int i = 0; i < 50; ++i) {
    absl::StatusOr<ProfileUpdate> got = server::UpdateFromProto(batch.updates(i));
    v1::ProfileUpdate reference_proto;
    server::ToProto(updates[static_cast<size_t>(i)], &reference_proto);
    absl::StatusOr<ProfileUpdate> want = server::UpdateFromProto(reference_proto);
    REQUIRE(got.ok());
    REQUIRE(want.ok());
    REQUIRE(got->key == want->key);
    REQUIRE(got->set == want->set);
    REQUIRE(got->increment == want->increment);
    REQUIRE(got->events == want->events);
  }
}

TEST_CASE("ScanChangeBatch yields every change's key and cause, in order", "[loadgen][wire]") {
  v1::ChangeBatch batch;
  const std::vector<std::pair<std::string, v1::Cause>> want = {
      {"u1", v1::CAUSE_UPDATE},   {"u22", v1::CAUSE_TIME},      {"", v1::CAUSE_UPDATE},
      {"u333", v1::CAUSE_REPLAY}, {"x", v1::CAUSE_UNSPECIFIED}, {"u4", v1::CAUSE_SNAPSHOT}};
  for (const auto& [key, cause] : want) {
    v1::Change* c = batch.add_changes();
    c->set_key(key);
    c->set_segment("vip");
    c->set_kind(v1::CHANGE_KIND_EXIT);
    c->set_time(kNow);
    c->set_cause(cause);
  }
  batch.set_cursor(std::string("\x01\x02\x03", 3));
  batch.set_snapshot_done(true);
  const std::string bytes = batch.SerializeAsString();
  std::vector<std::pair<std::string, uint64_t>> got;
  REQUIRE(ScanChangeBatch(bytes, [&](std::string_view key, uint64_t cause) {
    got.emplace_back(std::string(key), cause);
  }));
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    REQUIRE(got[i].first == want[i].first);
    REQUIRE(got[i].second == static_cast<uint64_t>(want[i].second));
  }
  REQUIRE(got[0].second == kCauseUpdate);

  // A heartbeat: no changes.
  v1::ChangeBatch heartbeat;
  heartbeat.set_cursor("c");
  int calls = 0;
  REQUIRE(
      ScanChangeBatch(heartbeat.SerializeAsString(), [&](std::string_view, uint64_t) { ++calls; }));
  REQUIRE(calls == 0);

  // Truncated input fails.
  REQUIRE_FALSE(ScanChangeBatch(std::string_view(bytes).substr(0, bytes.size() / 2),
                                [](std::string_view, uint64_t) {}));
}

TEST_CASE("Reader rejects malformed input and stays failed", "[loadgen][wire]") {
  uint64_t v;
  const std::string eleven(11, '\xff');
  Reader overlong(eleven);
  REQUIRE_FALSE(overlong.ReadVarint(&v));
  REQUIRE(overlong.failed());
  REQUIRE_FALSE(overlong.ReadVarint(&v));

  std::string bytes;
  AppendTag(1, WireType::kLengthDelimited, &bytes);
  AppendVarint(10, &bytes);
  bytes += "abc";  // 10 announced, 3 present
  Reader short_field(bytes);
  uint32_t field;
  WireType type;
  REQUIRE(short_field.ReadTag(&field, &type));
  REQUIRE(field == 1);
  REQUIRE(type == WireType::kLengthDelimited);
  std::string_view out;
  REQUIRE_FALSE(short_field.ReadLengthDelimited(&out));

  REQUIRE(VarintSize(0) == 1);
  REQUIRE(VarintSize(127) == 1);
  REQUIRE(VarintSize(128) == 2);
  REQUIRE(VarintSize(UINT64_MAX) == 10);
  std::string max;
  AppendVarint(UINT64_MAX, &max);
  REQUIRE(max.size() == 10);
  Reader r(max);
  REQUIRE(r.ReadVarint(&v));
  REQUIRE(v == UINT64_MAX);
  REQUIRE(r.done());
}

}  // namespace
}  // namespace segd::load::wire
