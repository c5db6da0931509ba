#include "server/convert.h"

#include <google/protobuf/text_format.h>
#include <google/protobuf/util/message_differencer.h>

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/engine.h"

namespace segd::server {
namespace {

using google::protobuf::util::MessageDifferencer;

template <typename M>
M ParseText(const std::string& text) {
  M m;
  REQUIRE(google::protobuf::TextFormat::ParseFromString(text, &m));
  return m;
}

// Compares protos field by field (maps ignore order) and shows both on failure.
#define CHECK_PROTO_EQ(a, b)                                               \
  do {                                                                     \
    INFO("got:\n" << (a).DebugString() << "want:\n" << (b).DebugString()); \
    CHECK(MessageDifferencer::Equals((a), (b)));                           \
  } while (0)

Event MakeEvent(std::string type, int64_t time, std::string id, NamedValues properties) {
  return Event{std::move(type), time, std::move(id), std::move(properties)};
}

TEST_CASE("Every Value kind converts both ways unchanged", "[server][convert]") {
  const std::vector<Value> values = {
      Value::String(""),     Value::String("Köbenhavn"),
      Value::Int(0),         Value::Int(-42),
      Value::Int(INT64_MAX), Value::Int(INT64_MIN),
      Value::Float(1.5),     Value::Float(-0.25),
      Value::Bool(true),     Value::Bool(false),
      Value::Time(0),        Value::Time(1'700'000'000'000),
      Value::List({}),       Value::List({"a", "", "b"}),
  };
  for (const Value& v : values) {
    INFO(ValueToString(v));
    v1::Value proto;
    ToProto(v, &proto);
    absl::StatusOr<Value> back = ValueFromProto(proto, "v");
    REQUIRE(back.ok());
    CHECK(*back == v);
    CHECK(back->kind() == v.kind());
  }
}

TEST_CASE("Value kinds map to the matching oneof field", "[server][convert]") {
  v1::Value p;
  ToProto(Value::Time(7), &p);
  CHECK(p.kind_case() == v1::Value::kTimeValue);
  CHECK(p.time_value() == 7);
  ToProto(Value::Int(7), &p);
  CHECK(p.kind_case() == v1::Value::kIntValue);
  ToProto(Value::List({"x", "y"}), &p);
  CHECK_PROTO_EQ(p, ParseText<v1::Value>(R"pb(list_value { values: "x" values: "y" })pb"));
  // Converting into a message that held a list replaces it entirely.
  ToProto(Value::List({"z"}), &p);
  CHECK_PROTO_EQ(p, ParseText<v1::Value>(R"pb(list_value { values: "z" })pb"));
  ToProto(Value::String("s"), &p);
  CHECK_PROTO_EQ(p, ParseText<v1::Value>(R"pb(string_value: "s")pb"));

  absl::StatusOr<Value> f = ValueFromProto(ParseText<v1::Value>("float_value: 2.5"), "v");
  REQUIRE(f.ok());
  CHECK(*f == Value::Float(2.5));
  absl::StatusOr<Value> b = ValueFromProto(ParseText<v1::Value>("bool_value: false"), "v");
  REQUIRE(b.ok());
  CHECK(*b == Value::Bool(false));
}

TEST_CASE("A Value with no kind is an error at the caller's location", "[server][convert]") {
  absl::StatusOr<Value> v = ValueFromProto(v1::Value(), "set[\"age\"]");
  CHECK(v.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(v.status().message() == "set[\"age\"]: value has no kind");
}

TEST_CASE("Proto maps become NamedValues sorted by name", "[server][convert]") {
  auto u = ParseText<v1::ProfileUpdate>(R"pb(
    set {
      key: "zeta"
      value { int_value: 1 }
    }
    set {
      key: "alpha"
      value { string_value: "a" }
    }
    set {
      key: "mid"
      value { bool_value: true }
    }
  )pb");
  absl::StatusOr<NamedValues> nv = NamedValuesFromProto(u.set(), "set");
  REQUIRE(nv.ok());
  CHECK(*nv == NamedValues{{"alpha", Value::String("a")},
                           {"mid", Value::Bool(true)},
                           {"zeta", Value::Int(1)}});

  absl::StatusOr<NamedValues> empty = NamedValuesFromProto(v1::ProfileUpdate().set(), "set");
  REQUIRE(empty.ok());
  CHECK(empty->empty());
}

TEST_CASE("A ProfileUpdate converts every field", "[server][convert]") {
  auto u = ParseText<v1::ProfileUpdate>(R"pb(
    key: "user-1"
    set {
      key: "plan"
      value { string_value: "pro" }
    }
    set {
      key: "tags"
      value { list_value { values: "a" values: "b" } }
    }
    set {
      key: "signup_at"
      value { time_value: 1700000000000 }
    }
    unset: "old"
    unset: "older"
    increment {
      key: "visits"
      value { int_value: 1 }
    }
    increment {
      key: "spent"
      value { float_value: 9.5 }
    }
    events {
      type: "purchase"
      time: 1700000000001
      id: "o-1"
      properties {
        key: "amount"
        value { float_value: 12.5 }
      }
      properties {
        key: "country"
        value { string_value: "DK" }
      }
    }
    events { type: "login" }
  )pb");
  absl::StatusOr<ProfileUpdate> got = UpdateFromProto(u);
  REQUIRE(got.ok());
  CHECK(got->key == "user-1");
  CHECK_FALSE(got->del);
  CHECK(got->set == NamedValues{{"plan", Value::String("pro")},
                                {"signup_at", Value::Time(1'700'000'000'000)},
                                {"tags", Value::List({"a", "b"})}});
  CHECK(got->unset == std::vector<std::string>{"old", "older"});
  CHECK(got->increment == NamedValues{{"spent", Value::Float(9.5)}, {"visits", Value::Int(1)}});
  REQUIRE(got->events.size() == 2);
  CHECK(got->events[0] ==
        MakeEvent("purchase", 1'700'000'000'001, "o-1",
                  {{"amount", Value::Float(12.5)}, {"country", Value::String("DK")}}));
  CHECK(got->events[1] == MakeEvent("login", 0, "", {}));
}

TEST_CASE("An empty ProfileUpdate converts to an update with no operations", "[server][convert]") {
  absl::StatusOr<ProfileUpdate> got = UpdateFromProto(ParseText<v1::ProfileUpdate>("key: \"k\""));
  REQUIRE(got.ok());
  CHECK(got->key == "k");
  CHECK(got->set.empty());
  CHECK(got->unset.empty());
  CHECK(got->increment.empty());
  CHECK(got->events.empty());
  CHECK_FALSE(got->del);
}

TEST_CASE("A delete ignores the rest of the update", "[server][convert]") {
  auto u = ParseText<v1::ProfileUpdate>(R"pb(
    key: "gone"
    delete: true
    set {
      key: "bad"
      value {}
    }
    events { type: "x" }
  )pb");
  absl::StatusOr<ProfileUpdate> got = UpdateFromProto(u);
  REQUIRE(got.ok());
  CHECK(got->del);
  CHECK(got->key == "gone");
  CHECK(got->set.empty());
  CHECK(got->events.empty());
}

TEST_CASE("ProfileUpdate errors name the bad value's location", "[server][convert]") {
  struct Case {
    const char* text;
    const char* message;
  };
  const Case cases[] = {
      {R"pb(key: "k"
            set {
              key: "age"
              value {}
            })pb",
       "set[\"age\"]: value has no kind"},
      {R"pb(key: "k"
            increment {
              key: "visits"
              value {}
            })pb",
       "increment[\"visits\"]: value has no kind"},
      {R"pb(key: "k"
            events { type: "a" }
            events {
              type: "b"
              properties {
                key: "amount"
                value {}
              }
            })pb",
       "events[1].properties[\"amount\"]: value has no kind"},
      // The first bad value in name order is the one reported.
      {R"pb(key: "k"
            set {
              key: "b"
              value {}
            }
            set {
              key: "a"
              value {}
            })pb",
       "set[\"a\"]: value has no kind"},
  };
  for (const Case& c : cases) {
    INFO(c.text);
    absl::StatusOr<ProfileUpdate> got = UpdateFromProto(ParseText<v1::ProfileUpdate>(c.text));
    CHECK(got.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(got.status().message() == c.message);
  }
}

TEST_CASE("A Profile converts both ways; segments are output only", "[server][convert]") {
  ProfileData data;
  data.key = "user-7";
  data.attributes = {{"age", Value::Int(31)},
                     {"email", Value::String("a@b.c")},
                     {"tags", Value::List({"vip"})},
                     {"trial_end", Value::Time(1'700'100'000'000)}};
  data.events = {MakeEvent("login", 1'700'000'000'000, "", {}),
                 MakeEvent("purchase", 1'700'000'000'500, "o-9",
                           {{"amount", Value::Int(3)}, {"ok", Value::Bool(true)}}),
                 MakeEvent("login", 1'700'000'000'500, "", {})};
  data.segments = {"adults", "buyers"};

  v1::Profile proto;
  ToProto(data, &proto);
  CHECK_PROTO_EQ(proto, ParseText<v1::Profile>(R"pb(
                   key: "user-7"
                   attributes {
                     key: "age"
                     value { int_value: 31 }
                   }
                   attributes {
                     key: "email"
                     value { string_value: "a@b.c" }
                   }
                   attributes {
                     key: "tags"
                     value { list_value { values: "vip" } }
                   }
                   attributes {
                     key: "trial_end"
                     value { time_value: 1700100000000 }
                   }
                   events { type: "login" time: 1700000000000 }
                   events {
                     type: "purchase"
                     time: 1700000000500
                     id: "o-9"
                     properties {
                       key: "amount"
                       value { int_value: 3 }
                     }
                     properties {
                       key: "ok"
                       value { bool_value: true }
                     }
                   }
                   events { type: "login" time: 1700000000500 }
                   segments: "adults"
                   segments: "buyers"
                 )pb"));

  absl::StatusOr<ProfileData> back = ProfileFromProto(proto);
  REQUIRE(back.ok());
  ProfileData want = data;
  want.segments.clear();
  CHECK(*back == want);
}

TEST_CASE("Profile errors name the bad value's location", "[server][convert]") {
  absl::StatusOr<ProfileData> a = ProfileFromProto(ParseText<v1::Profile>(R"pb(key: "k"
                                                                               attributes {
                                                                                 key: "x"
                                                                                 value {}
                                                                               })pb"));
  CHECK(a.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(a.status().message() == "attributes[\"x\"]: value has no kind");

  absl::StatusOr<ProfileData> e = ProfileFromProto(ParseText<v1::Profile>(R"pb(
    key: "k"
    events {
      type: "a"
      properties {
        key: "p"
        value {}
      }
    }
  )pb"));
  CHECK(e.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(e.status().message() == "events[0].properties[\"p\"]: value has no kind");
}

TEST_CASE("An Event converts both ways", "[server][convert]") {
  const Event event =
      MakeEvent("page view", 5, "id-1", {{"path", Value::String("/")}, {"ms", Value::Int(12)}});
  v1::Event proto;
  ToProto(event, &proto);
  CHECK(proto.type() == "page view");
  CHECK(proto.time() == 5);
  CHECK(proto.id() == "id-1");
  CHECK(proto.properties().size() == 2);
  absl::StatusOr<Event> back = EventFromProto(proto, "events[0]");
  REQUIRE(back.ok());
  // Properties come back sorted by name.
  CHECK(*back ==
        MakeEvent("page view", 5, "id-1", {{"ms", Value::Int(12)}, {"path", Value::String("/")}}));
}

TEST_CASE("Lists in event properties are left for the engine to reject", "[server][convert]") {
  auto u = ParseText<v1::ProfileUpdate>(R"pb(
    key: "k"
    events {
      type: "a"
      properties {
        key: "l"
        value { list_value { values: "x" } }
      }
    }
  )pb");
  absl::StatusOr<ProfileUpdate> got = UpdateFromProto(u);
  REQUIRE(got.ok());
  REQUIRE(got->events.size() == 1);
  CHECK(got->events[0].properties == NamedValues{{"l", Value::List({"x"})}});
}

TEST_CASE("A batch keeps its good updates and reports its bad ones by index", "[server][convert]") {
  auto batch = ParseText<v1::UpdateBatch>(R"pb(
    seq: 9
    updates { key: "a" }
    updates {
      key: "b"
      set {
        key: "x"
        value {}
      }
    }
    updates { key: "c" }
    updates {
      key: "d"
      events {
        type: "t"
        properties {
          key: "p"
          value {}
        }
      }
    }
  )pb");
  ConvertedBatch<ProfileUpdate> converted = UpdatesFromProto(batch.updates());
  REQUIRE(converted.items.size() == 2);
  CHECK(converted.items[0].key == "a");
  CHECK(converted.items[1].key == "c");
  CHECK(converted.indexes == std::vector<uint32_t>{0, 2});
  REQUIRE(converted.errors.size() == 2);
  CHECK(converted.errors[0].index == 1);
  CHECK(converted.errors[0].key == "b");
  CHECK(converted.errors[0].message == "set[\"x\"]: value has no kind");
  CHECK(converted.errors[1].index == 3);
  CHECK(converted.errors[1].key == "d");
  CHECK(converted.errors[1].message == "events[0].properties[\"p\"]: value has no kind");

  // The engine rejected its second item ("c", request index 2).
  BatchResult result;
  result.applied = 1;
  result.errors = converted.Merge({UpdateError{1, "c", "key: bad"}});
  v1::Ack ack;
  ToProto(batch.seq(), result, &ack);
  CHECK_PROTO_EQ(
      ack, ParseText<v1::Ack>(R"pb(
        seq: 9
        applied: 1
        errors { index: 1 key: "b" message: "set[\"x\"]: value has no kind" }
        errors { index: 2 key: "c" message: "key: bad" }
        errors { index: 3 key: "d" message: "events[0].properties[\"p\"]: value has no kind" }
      )pb"));
}

TEST_CASE("A converted batch applied by the engine acks with request indexes",
          "[server][convert]") {
  ManualClock clock(1'700'000'000'000);
  Engine engine(EngineOptions{}, 2, clock);
  auto batch = ParseText<v1::UpdateBatch>(R"pb(
    seq: 3
    updates {
      key: "a"
      set {
        key: "n"
        value { int_value: 1 }
      }
    }
    updates {
      key: "b"
      set {
        key: "n"
        value {}
      }
    }
    updates { key: "" }
    updates {
      key: "c"
      set {
        key: "f"
        value { float_value: nan }
      }
    }
    updates { key: "d" }
  )pb");
  ConvertedBatch<ProfileUpdate> converted = UpdatesFromProto(batch.updates());
  BatchResult result = engine.Apply(converted.items);
  result.errors = converted.Merge(std::move(result.errors));
  v1::Ack ack;
  ToProto(batch.seq(), result, &ack);
  CHECK(ack.seq() == 3);
  CHECK(ack.applied() == 2);
  REQUIRE(ack.errors_size() == 3);
  CHECK(ack.errors(0).index() == 1);
  CHECK(ack.errors(0).message() == "set[\"n\"]: value has no kind");
  CHECK(ack.errors(1).index() == 2);
  CHECK(ack.errors(1).key() == "");
  CHECK(ack.errors(1).message() == "key: must be 1-256 bytes, got 0");
  CHECK(ack.errors(2).index() == 3);
  CHECK(ack.errors(2).key() == "c");
  CHECK(ack.errors(2).message() == "set[\"f\"]: float is NaN");

  absl::StatusOr<ProfileData> a = engine.GetProfile("a");
  REQUIRE(a.ok());
  v1::Profile profile;
  ToProto(*a, &profile);
  CHECK_PROTO_EQ(profile, ParseText<v1::Profile>(R"pb(
                   key: "a"
                   attributes {
                     key: "n"
                     value { int_value: 1 }
                   }
                 )pb"));
}

TEST_CASE("Replay profiles are indexed within the whole stream", "[server][convert]") {
  auto request = ParseText<v1::ReplayRequest>(R"pb(
    profiles { key: "p" segments: "ignored" }
    profiles {
      key: "q"
      attributes {
        key: "a"
        value {}
      }
    }
  )pb");
  ConvertedBatch<ProfileData> converted = ProfilesFromProto(request.profiles(), 10);
  REQUIRE(converted.items.size() == 1);
  CHECK(converted.items[0].key == "p");
  CHECK(converted.items[0].segments.empty());
  CHECK(converted.indexes == std::vector<uint32_t>{10});
  REQUIRE(converted.errors.size() == 1);
  CHECK(converted.errors[0].index == 11);
  CHECK(converted.errors[0].key == "q");
  CHECK(converted.errors[0].message == "attributes[\"a\"]: value has no kind");

  ReplayResult result{1, 0, converted.Merge({})};
  v1::ReplaySummary summary;
  ToProto(result, &summary);
  CHECK_PROTO_EQ(summary, ParseText<v1::ReplaySummary>(R"pb(
                   profiles: 1
                   errors { index: 11 key: "q" message: "attributes[\"a\"]: value has no kind" }
                 )pb"));

  ReplayResult counted{7, 42, {}};
  ToProto(counted, &summary);
  CHECK_PROTO_EQ(summary, ParseText<v1::ReplaySummary>("profiles: 7 events: 42"));
}

TEST_CASE("MergeUpdateErrors maps engine indexes and sorts by request index", "[server][convert]") {
  const std::vector<uint32_t> indexes = {0, 3, 4, 7};
  const std::vector<UpdateError> converted = {{1, "b", "m1"}, {5, "f", "m5"}};
  std::vector<UpdateError> merged =
      MergeUpdateErrors(indexes, converted, {{3, "h", "e7"}, {0, "a", "e0"}, {2, "e", "e4"}});
  std::vector<uint32_t> got;
  for (const UpdateError& e : merged) got.push_back(e.index);
  CHECK(got == std::vector<uint32_t>{0, 1, 4, 5, 7});
  CHECK(merged[0].message == "e0");
  CHECK(merged[2].key == "e");
  CHECK(merged[4].message == "e7");
  CHECK(MergeUpdateErrors({}, {}, {}).empty());
}

TEST_CASE("Change kinds and causes map to the proto enums", "[server][convert]") {
  CHECK(ToProto(ChangeKind::kEnter) == v1::CHANGE_KIND_ENTER);
  CHECK(ToProto(ChangeKind::kExit) == v1::CHANGE_KIND_EXIT);
  const std::pair<Cause, v1::Cause> causes[] = {
      {Cause::kUpdate, v1::CAUSE_UPDATE},
      {Cause::kTime, v1::CAUSE_TIME},
      {Cause::kSegmentPut, v1::CAUSE_SEGMENT_PUT},
      {Cause::kSegmentDelete, v1::CAUSE_SEGMENT_DELETE},
      {Cause::kReplay, v1::CAUSE_REPLAY},
      {Cause::kProfileDelete, v1::CAUSE_PROFILE_DELETE},
      {Cause::kSnapshot, v1::CAUSE_SNAPSHOT},
  };
  for (const auto& [core, proto] : causes) {
    INFO(CauseName(core));
    CHECK(ToProto(core) == proto);
  }
}

TEST_CASE("Segments convert both ways", "[server][convert]") {
  SegmentSpec spec = SegmentSpecFromProto(ParseText<v1::Segment>(
      R"pb(
        id: "adults" rule: "age >= 18" description: "grown-ups" member_count: 5 updated_at: 9
      )pb"));
  CHECK(spec.id == "adults");
  CHECK(spec.rule == "age >= 18");
  CHECK(spec.description == "grown-ups");

  v1::Segment segment;
  ToProto(SegmentInfo{"adults", "age >= 18", "grown-ups", 12, 1'700'000'000'000}, &segment);
  CHECK_PROTO_EQ(segment, ParseText<v1::Segment>(R"pb(
                   id: "adults"
                   rule: "age >= 18"
                   description: "grown-ups"
                   member_count: 12
                   updated_at: 1700000000000
                 )pb"));

  v1::PutSegmentResponse put;
  ToProto(PutSegmentResult{SegmentInfo{"s", "true", "", 3, 4}, 3, 1}, &put);
  CHECK_PROTO_EQ(put, ParseText<v1::PutSegmentResponse>(R"pb(
                   segment { id: "s" rule: "true" member_count: 3 updated_at: 4 }
                   entered: 3
                   exited: 1
                 )pb"));
}

TEST_CASE("Query results convert to their responses", "[server][convert]") {
  v1::CountResponse count;
  ToProto(CountResult{3, 10}, &count);
  CHECK_PROTO_EQ(count, ParseText<v1::CountResponse>("matched: 3 total: 10"));

  v1::FunnelResponse funnel;
  ToProto(FunnelResult{{9, 4, 0}, 20, 999}, &funnel);
  CHECK_PROTO_EQ(funnel, ParseText<v1::FunnelResponse>("counts: [9, 4, 0] total: 20"));

  v1::ExplainResponse explain;
  ToProto(ExplainResult{true, {{"age >= 18", "true", 0}, {"age", "31", 1}, {"18", "18", 1}}},
          &explain);
  CHECK_PROTO_EQ(explain, ParseText<v1::ExplainResponse>(R"pb(
                   matched: true
                   terms { text: "age >= 18" value: "true" }
                   terms { text: "age" value: "31" depth: 1 }
                   terms { text: "18" value: "18" depth: 1 }
                 )pb"));

  v1::Stats stats;
  ToProto(EngineStats{1, 2, 3, 4, 5, 6, 7, 8}, &stats);
  CHECK_PROTO_EQ(stats, ParseText<v1::Stats>(R"pb(
                   profiles: 1
                   events: 2
                   segments: 3
                   updates_applied: 4
                   changes_emitted: 5
                   memory_bytes: 6
                   now: 7
                   incarnation: 8
                 )pb"));
}

TEST_CASE("Rule diagnostics convert with their positions", "[server][convert]") {
  v1::Diagnostic d;
  ToProto(Diagnostic{Position{2, 14}, "expected ')' after selector"}, &d);
  CHECK_PROTO_EQ(d, ParseText<v1::Diagnostic>(R"pb(line: 2
                                                   column: 14
                                                   message: "expected ')' after selector")pb"));

  v1::ValidateRuleResponse ok;
  ToProto(ValidateRule("age >= 18"), &ok);
  CHECK_PROTO_EQ(ok, ParseText<v1::ValidateRuleResponse>("ok: true"));

  const std::vector<Diagnostic> diagnostics = ValidateRule("age >=");
  REQUIRE_FALSE(diagnostics.empty());
  v1::ValidateRuleResponse bad;
  ToProto(diagnostics, &bad);
  CHECK_FALSE(bad.ok());
  REQUIRE(bad.diagnostics_size() == static_cast<int>(diagnostics.size()));
  CHECK(bad.diagnostics(0).line() == diagnostics[0].pos.line);
  CHECK(bad.diagnostics(0).column() == diagnostics[0].pos.column);
  CHECK(bad.diagnostics(0).message() == diagnostics[0].message);
}

TEST_CASE("Cursors round-trip through bytes", "[server][convert]") {
  const Cursor cursor{0xfeedface12345678u, {0, 1, uint64_t{1} << 40, 7}};
  const std::string bytes = CursorToBytes(cursor);
  v1::ChangeBatch batch;
  batch.set_cursor(bytes);
  absl::StatusOr<Cursor> back = CursorFromBytes(batch.cursor());
  REQUIRE(back.ok());
  CHECK(*back == cursor);

  for (const std::string& bad : {std::string(), std::string("garbage!"), bytes.substr(1)}) {
    absl::StatusOr<Cursor> c = CursorFromBytes(bad);
    CHECK(c.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(c.status().message() == "cursor: not a segd cursor");
  }
}

TEST_CASE("ToGrpcStatus maps every code and keeps the message", "[server][convert]") {
  CHECK(ToGrpcStatus(absl::OkStatus()).ok());
  CHECK(ToGrpcStatus(absl::OkStatus()).error_message().empty());
  const std::pair<absl::Status, grpc::StatusCode> cases[] = {
      {absl::CancelledError("m"), grpc::StatusCode::CANCELLED},
      {absl::UnknownError("m"), grpc::StatusCode::UNKNOWN},
      {absl::InvalidArgumentError("1:5: expected a value"), grpc::StatusCode::INVALID_ARGUMENT},
      {absl::DeadlineExceededError("m"), grpc::StatusCode::DEADLINE_EXCEEDED},
      {absl::NotFoundError("segment 'x' not found"), grpc::StatusCode::NOT_FOUND},
      {absl::AlreadyExistsError("m"), grpc::StatusCode::ALREADY_EXISTS},
      {absl::PermissionDeniedError("m"), grpc::StatusCode::PERMISSION_DENIED},
      {absl::ResourceExhaustedError("too many segments"), grpc::StatusCode::RESOURCE_EXHAUSTED},
      {absl::FailedPreconditionError("referenced"), grpc::StatusCode::FAILED_PRECONDITION},
      {absl::AbortedError("m"), grpc::StatusCode::ABORTED},
      {absl::OutOfRangeError("stale cursor"), grpc::StatusCode::OUT_OF_RANGE},
      {absl::UnimplementedError("m"), grpc::StatusCode::UNIMPLEMENTED},
      {absl::InternalError("m"), grpc::StatusCode::INTERNAL},
      {absl::UnavailableError("shutting down"), grpc::StatusCode::UNAVAILABLE},
      {absl::DataLossError("m"), grpc::StatusCode::DATA_LOSS},
      {absl::UnauthenticatedError("m"), grpc::StatusCode::UNAUTHENTICATED},
  };
  for (const auto& [status, code] : cases) {
    INFO(status.ToString());
    const grpc::Status g = ToGrpcStatus(status);
    CHECK(g.error_code() == code);
    CHECK(g.error_message() == std::string(status.message()));
  }
  // A code Abseil might add later is UNKNOWN, not a crash.
  const grpc::Status odd = ToGrpcStatus(absl::Status(static_cast<absl::StatusCode>(99), "odd"));
  CHECK(odd.error_code() == grpc::StatusCode::UNKNOWN);
  CHECK(odd.error_message() == "odd");
}

}  // namespace
}  // namespace segd::server
