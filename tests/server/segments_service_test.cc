#include "server/segments_service.h"

#include <grpcpp/grpcpp.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <catch2/catch.hpp>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "core/profile_update.h"
#include "core/value.h"
#include "server/service_env.h"
#include "tests/server/server_fixture.h"

namespace segd::server::testing {
namespace {

// Profiles p0..p(n-1) with age = 10 * i, straight into the engine.
void AddAges(ServerFixture& f, int n) {
  std::vector<ProfileUpdate> updates;
  for (int i = 0; i < n; ++i) {
    ProfileUpdate u;
    u.key = "p" + std::to_string(i);
    u.set = {{"age", Value::Int(10 * i)}};
    updates.push_back(std::move(u));
  }
  BatchResult r = f.server->engine().Apply(updates);
  REQUIRE(r.errors.empty());
  REQUIRE(r.applied == static_cast<uint32_t>(n));
}

v1::Segment MakeSegment(const std::string& id, const std::string& rule,
                        const std::string& description = "") {
  v1::Segment s;
  s.set_id(id);
  s.set_rule(rule);
  s.set_description(description);
  return s;
}

grpc::Status Put(ServerFixture& f, const v1::Segment& segment, bool dry_run,
                 v1::PutSegmentResponse* response) {
  grpc::ClientContext ctx;
  v1::PutSegmentRequest request;
  *request.mutable_segment() = segment;
  request.set_dry_run(dry_run);
  return f.segments->PutSegment(&ctx, request, response);
}

v1::PutSegmentResponse MustPut(ServerFixture& f, const std::string& id, const std::string& rule) {
  v1::PutSegmentResponse response;
  grpc::Status s = Put(f, MakeSegment(id, rule), false, &response);
  INFO(s.error_message());
  REQUIRE(s.ok());
  return response;
}

grpc::Status Get(ServerFixture& f, const std::string& id, v1::Segment* out) {
  grpc::ClientContext ctx;
  v1::GetSegmentRequest request;
  request.set_id(id);
  return f.segments->GetSegment(&ctx, request, out);
}

grpc::Status Delete(ServerFixture& f, const std::string& id, v1::DeleteSegmentResponse* out) {
  grpc::ClientContext ctx;
  v1::DeleteSegmentRequest request;
  request.set_id(id);
  return f.segments->DeleteSegment(&ctx, request, out);
}

v1::ValidateRuleResponse Validate(ServerFixture& f, const std::string& rule) {
  grpc::ClientContext ctx;
  v1::ValidateRuleRequest request;
  request.set_rule(rule);
  v1::ValidateRuleResponse response;
  grpc::Status s = f.segments->ValidateRule(&ctx, request, &response);
  REQUIRE(s.ok());
  return response;
}

TEST_CASE("PutSegment creates a segment and counts its members", "[server][segments]") {
  ServerFixture f;
  AddAges(f, 4);  // ages 0, 10, 20, 30
  v1::PutSegmentResponse r;
  grpc::Status s = Put(f, MakeSegment("adults", "age >= 18", "grown-ups"), false, &r);
  REQUIRE(s.ok());
  CHECK(r.segment().id() == "adults");
  CHECK(r.segment().rule() == "age >= 18");
  CHECK(r.segment().description() == "grown-ups");
  CHECK(r.segment().member_count() == 2);
  CHECK(r.segment().updated_at() == kT0);
  CHECK(r.entered() == 2);
  CHECK(r.exited() == 0);

  v1::Segment got;
  REQUIRE(Get(f, "adults", &got).ok());
  CHECK(got.id() == "adults");
  CHECK(got.rule() == "age >= 18");
  CHECK(got.description() == "grown-ups");
  CHECK(got.member_count() == 2);
  CHECK(got.updated_at() == kT0);
}

TEST_CASE("PutSegment replaces a rule and reports only the differences", "[server][segments]") {
  ServerFixture f;
  AddAges(f, 4);                 // ages 0, 10, 20, 30
  MustPut(f, "s", "age >= 15");  // p2, p3

  v1::PutSegmentResponse r = MustPut(f, "s", "age >= 25");  // p3
  CHECK(r.entered() == 0);
  CHECK(r.exited() == 1);
  CHECK(r.segment().member_count() == 1);
  CHECK(r.segment().rule() == "age >= 25");

  r = MustPut(f, "s", "age < 25");  // p0, p1, p2
  CHECK(r.entered() == 3);
  CHECK(r.exited() == 1);
  CHECK(r.segment().member_count() == 3);

  // A replace with the same rule changes no membership.
  r = MustPut(f, "s", "age < 25");
  CHECK(r.entered() == 0);
  CHECK(r.exited() == 0);
  CHECK(r.segment().member_count() == 3);
}

TEST_CASE("PutSegment counts only the put segment's own changes, not its dependents'",
          "[server][segments]") {
  ServerFixture f;
  AddAges(f, 4);
  MustPut(f, "base", "age >= 15");                            // p2, p3
  MustPut(f, "dep", "in_segment(\"base\")");                  // p2, p3
  v1::PutSegmentResponse r = MustPut(f, "base", "age >= 5");  // p1, p2, p3
  CHECK(r.entered() == 1);
  CHECK(r.exited() == 0);
  v1::Segment dep;
  REQUIRE(Get(f, "dep", &dep).ok());
  CHECK(dep.member_count() == 3);
}

TEST_CASE("A dry run checks and counts but changes nothing", "[server][segments]") {
  ServerFixture f;
  AddAges(f, 4);                 // ages 0, 10, 20, 30
  MustPut(f, "s", "age >= 25");  // p3

  v1::PutSegmentResponse r;
  REQUIRE(Put(f, MakeSegment("s", "age >= 5", "new"), true, &r).ok());
  CHECK(r.entered() == 2);
  CHECK(r.exited() == 0);
  CHECK(r.segment().member_count() == 3);
  CHECK(r.segment().rule() == "age >= 5");

  v1::Segment got;
  REQUIRE(Get(f, "s", &got).ok());
  CHECK(got.rule() == "age >= 25");
  CHECK(got.description() == "");
  CHECK(got.member_count() == 1);

  // A dry run of a new segment creates nothing.
  REQUIRE(Put(f, MakeSegment("fresh", "age < 15"), true, &r).ok());
  CHECK(r.entered() == 2);
  CHECK(r.segment().member_count() == 2);
  CHECK(Get(f, "fresh", &got).error_code() == grpc::StatusCode::NOT_FOUND);

  // And a bad rule is rejected by a dry run as by a put.
  grpc::Status s = Put(f, MakeSegment("s", "age >"), true, &r);
  CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(s.error_message() == "1:6: expected an expression, found end of rule");
}

TEST_CASE("PutSegment rejects a bad id", "[server][segments]") {
  ServerFixture f;
  v1::PutSegmentResponse r;
  grpc::Status s = Put(f, MakeSegment("bad id!", "true"), false, &r);
  CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(s.error_message() ==
        "segment id: must be 1-128 characters of [A-Za-z0-9_.-], got 'bad id!'");
  s = Put(f, MakeSegment("", "true"), false, &r);
  CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  s = Put(f, MakeSegment(std::string(129, 'a'), "true"), false, &r);
  CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  MustPut(f, std::string(128, 'a'), "true");
}

TEST_CASE("PutSegment rejects a bad rule with its line and column", "[server][segments]") {
  ServerFixture f;
  struct Case {
    std::string rule;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"", "1:1: expected an expression, found end of rule"},
      {"a = 1\n    and and b", "2:9: expected an expression, found 'and'"},
      {"count(login", "1:12: expected ')' after selector, found end of rule"},
      {"Count(x) > 1", "1:1: unknown function 'Count'"},
      {"in_segment(\"nope\")", "1:1: unknown segment 'nope'"},
      {"in_segment(\"loop\")", "1:1: segment 'loop' cannot reference itself"},
  };
  for (const Case& c : cases) {
    INFO(c.rule);
    v1::PutSegmentResponse r;
    grpc::Status s = Put(f, MakeSegment("loop", c.rule), false, &r);
    CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(s.error_message() == c.message);
  }
  v1::Segment got;
  CHECK(Get(f, "loop", &got).error_code() == grpc::StatusCode::NOT_FOUND);
}

TEST_CASE("A rejected replace keeps the old definition", "[server][segments]") {
  ServerFixture f;
  AddAges(f, 3);
  MustPut(f, "s", "age >= 10");
  v1::PutSegmentResponse r;
  CHECK(Put(f, MakeSegment("s", "age >="), false, &r).error_code() ==
        grpc::StatusCode::INVALID_ARGUMENT);
  v1::Segment got;
  REQUIRE(Get(f, "s", &got).ok());
  CHECK(got.rule() == "age >= 10");
  CHECK(got.member_count() == 2);
}

TEST_CASE("DeleteSegment reports its exited members, then the segment is gone",
          "[server][segments]") {
  ServerFixture f;
  AddAges(f, 5);
  MustPut(f, "s", "age >= 20");  // p2, p3, p4
  v1::DeleteSegmentResponse r;
  REQUIRE(Delete(f, "s", &r).ok());
  CHECK(r.exited() == 3);
  v1::Segment got;
  grpc::Status s = Get(f, "s", &got);
  CHECK(s.error_code() == grpc::StatusCode::NOT_FOUND);
  CHECK(s.error_message() == "segment 's' not found");
  s = Delete(f, "s", &r);
  CHECK(s.error_code() == grpc::StatusCode::NOT_FOUND);
  CHECK(s.error_message() == "segment 's' not found");
}

TEST_CASE("DeleteSegment of a referenced segment fails and changes nothing", "[server][segments]") {
  ServerFixture f;
  AddAges(f, 3);
  MustPut(f, "a", "age >= 10");
  MustPut(f, "b", "in_segment(\"a\")");
  MustPut(f, "c", "in_segment(\"a\") and age > 15");
  v1::DeleteSegmentResponse r;
  grpc::Status s = Delete(f, "a", &r);
  CHECK(s.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
  CHECK(s.error_message() == "segment 'a' is referenced by in_segment in: b, c");
  v1::Segment got;
  REQUIRE(Get(f, "a", &got).ok());
  CHECK(got.member_count() == 2);

  // Once its users are gone it can go.
  REQUIRE(Delete(f, "b", &r).ok());
  REQUIRE(Delete(f, "c", &r).ok());
  CHECK(r.exited() == 1);
  REQUIRE(Delete(f, "a", &r).ok());
  CHECK(r.exited() == 2);
}

TEST_CASE("GetSegment and DeleteSegment reject a malformed id", "[server][segments]") {
  ServerFixture f;
  v1::Segment got;
  grpc::Status s = Get(f, "no spaces", &got);
  CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(s.error_message() ==
        "segment id: must be 1-128 characters of [A-Za-z0-9_.-], got 'no spaces'");
  v1::DeleteSegmentResponse r;
  CHECK(Delete(f, "", &r).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(Get(f, "well-formed.but_absent", &got).error_code() == grpc::StatusCode::NOT_FOUND);
}

TEST_CASE("ListSegments lists every segment sorted by id with its member count",
          "[server][segments]") {
  ServerFixture f;
  {
    grpc::ClientContext ctx;
    v1::ListSegmentsResponse empty;
    REQUIRE(f.segments->ListSegments(&ctx, v1::ListSegmentsRequest(), &empty).ok());
    CHECK(empty.segments_size() == 0);
  }
  AddAges(f, 4);
  MustPut(f, "zeta", "age >= 0");
  MustPut(f, "alpha", "age >= 20");
  MustPut(f, "Mid", "in_segment(\"alpha\")");
  MustPut(f, "mid", "age = 10");
  grpc::ClientContext ctx;
  v1::ListSegmentsResponse r;
  REQUIRE(f.segments->ListSegments(&ctx, v1::ListSegmentsRequest(), &r).ok());
  REQUIRE(r.segments_size() == 4);
  CHECK(r.segments(0).id() == "Mid");
  CHECK(r.segments(0).member_count() == 2);
  CHECK(r.segments(1).id() == "alpha");
  CHECK(r.segments(1).rule() == "age >= 20");
  CHECK(r.segments(1).member_count() == 2);
  CHECK(r.segments(2).id() == "mid");
  CHECK(r.segments(2).member_count() == 1);
  CHECK(r.segments(3).id() == "zeta");
  CHECK(r.segments(3).member_count() == 4);
  CHECK(r.segments(3).updated_at() == kT0);
}

TEST_CASE("ValidateRule accepts a good rule", "[server][segments]") {
  ServerFixture f;
  v1::ValidateRuleResponse r =
      Validate(f, "age >= 18 and count(purchase within 30d) > 2 and signup_at > now() - 7d");
  CHECK(r.ok());
  CHECK(r.diagnostics_size() == 0);
}

TEST_CASE("ValidateRule reports a bad rule as diagnostics, not as an error", "[server][segments]") {
  ServerFixture f;
  v1::ValidateRuleResponse r = Validate(f, "a = 1\n    and and b");
  CHECK_FALSE(r.ok());
  REQUIRE(r.diagnostics_size() >= 1);
  CHECK(r.diagnostics(0).line() == 2);
  CHECK(r.diagnostics(0).column() == 9);
  CHECK(r.diagnostics(0).message() == "expected an expression, found 'and'");

  r = Validate(f, "x == 1");
  CHECK_FALSE(r.ok());
  REQUIRE(r.diagnostics_size() >= 1);
  CHECK(r.diagnostics(0).line() == 1);
  CHECK(r.diagnostics(0).column() == 4);
  CHECK(r.diagnostics(0).message() == "'==' is not an operator: compare with '='");

  // Columns count code points, not bytes.
  r = Validate(f, "name = \"é\" or é");
  CHECK_FALSE(r.ok());
  REQUIRE(r.diagnostics_size() >= 1);
  CHECK(r.diagnostics(0).line() == 1);
  CHECK(r.diagnostics(0).column() == 15);
  CHECK(r.diagnostics(0).message() == "unexpected character 'é'");

  // The same first diagnostic as PutSegment's error.
  v1::PutSegmentResponse put;
  grpc::Status s = Put(f, MakeSegment("x", "x == 1"), false, &put);
  CHECK(s.error_message() == "1:4: '==' is not an operator: compare with '='");
}

TEST_CASE("Each change of definition is logged on one line", "[server][segments]") {
  ServerFixture f;
  AddAges(f, 3);
  std::ostringstream out;
  {
    // Removes the sink however the block is left.
    struct Capture {
      explicit Capture(std::ostringstream& out)
          : sink(std::make_shared<spdlog::sinks::ostream_sink_mt>(out)) {
        sink->set_pattern("%v");
        spdlog::default_logger()->sinks().push_back(sink);
      }
      ~Capture() { spdlog::default_logger()->sinks().pop_back(); }
      std::shared_ptr<spdlog::sinks::ostream_sink_mt> sink;
    } capture(out);
    MustPut(f, "s", "age >= 10");
    MustPut(f, "s", "age >= 20");
    v1::PutSegmentResponse dry;
    REQUIRE(Put(f, MakeSegment("s", "age >= 0"), true, &dry).ok());
    v1::DeleteSegmentResponse deleted;
    REQUIRE(Delete(f, "s", &deleted).ok());
  }

  std::vector<std::string> lines;
  std::istringstream in(out.str());
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  REQUIRE(lines.size() == 3);  // the dry run is not a change
  CHECK_THAT(lines[0],
             Catch::StartsWith("segment put: id=s entered=2 exited=0 members=2 elapsed_ms="));
  CHECK_THAT(lines[1],
             Catch::StartsWith("segment replace: id=s entered=0 exited=1 members=1 elapsed_ms="));
  CHECK_THAT(lines[2],
             Catch::StartsWith("segment delete: id=s entered=0 exited=1 members=0 elapsed_ms="));
}

TEST_CASE("Every Segments call is UNAVAILABLE while the server drains", "[server][segments]") {
  ServerFixture f;
  DrainingServer<SegmentsService> d(f);
  auto stub = v1::Segments::NewStub(d.channel);
  std::vector<grpc::Status> statuses;
  {
    grpc::ClientContext ctx;
    v1::PutSegmentRequest request;
    *request.mutable_segment() = MakeSegment("s", "true");
    v1::PutSegmentResponse response;
    statuses.push_back(stub->PutSegment(&ctx, request, &response));
  }
  {
    grpc::ClientContext ctx;
    v1::DeleteSegmentRequest request;
    request.set_id("s");
    v1::DeleteSegmentResponse response;
    statuses.push_back(stub->DeleteSegment(&ctx, request, &response));
  }
  {
    grpc::ClientContext ctx;
    v1::GetSegmentRequest request;
    request.set_id("s");
    v1::Segment response;
    statuses.push_back(stub->GetSegment(&ctx, request, &response));
  }
  {
    grpc::ClientContext ctx;
    v1::ListSegmentsResponse response;
    statuses.push_back(stub->ListSegments(&ctx, v1::ListSegmentsRequest(), &response));
  }
  {
    grpc::ClientContext ctx;
    v1::ValidateRuleRequest request;
    request.set_rule("true");
    v1::ValidateRuleResponse response;
    statuses.push_back(stub->ValidateRule(&ctx, request, &response));
  }
  for (const grpc::Status& s : statuses) {
    CHECK(s.error_code() == grpc::StatusCode::UNAVAILABLE);
    CHECK(s.error_message() == "server is shutting down");
  }
  // Nothing was created behind the draining server's back.
  v1::Segment got;
  CHECK(Get(f, "s", &got).error_code() == grpc::StatusCode::NOT_FOUND);
}

}  // namespace
}  // namespace segd::server::testing
