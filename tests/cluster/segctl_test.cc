// The segctl binary against a live cluster of three in-process segd servers (manual
// clock): every subcommand's output, and its error paths — usage errors (exit 2), a
// server's refusal with its message (exit 1), a shard that cannot be reached (exit 3).
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "tests/client/test_cluster.h"
#include "tests/child_process.h"

namespace segd::testing {
namespace {

using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;
using client::testing::Ingest;
using client::testing::kT0;
using client::testing::PutSegment;
using client::testing::SetInt;
using client::testing::TestCluster;

constexpr int64_t kHour = 3'600'000;

// segctl against one cluster: every run gets --servers.
class Segctl {
 public:
  explicit Segctl(const std::vector<std::string>& servers)
      : servers_("--servers=" + absl::StrJoin(servers, ",")) {}

  Run operator()(std::vector<std::string> args, const std::string& input = "") const {
    args.push_back(servers_);
    return RunSegctl(dir_, args, input);
  }
  const TempDir& dir() const { return dir_; }

 private:
  TempDir dir_;
  std::string servers_;
};

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines = absl::StrSplit(text, '\n', absl::SkipEmpty());
  return lines;
}

template <typename Message>
Message ParseJson(const std::string& json) {
  Message message;
  const auto status = google::protobuf::util::JsonStringToMessage(json, &message);
  INFO(json);
  REQUIRE(status.ok());
  return message;
}

std::set<std::string> AsSet(const std::vector<std::string>& v) { return {v.begin(), v.end()}; }

v1::ProfileUpdate Event(std::string key, std::string type, int64_t time) {
  v1::ProfileUpdate u;
  u.set_key(std::move(key));
  v1::Event* e = u.add_events();
  e->set_type(std::move(type));
  e->set_time(time);
  return u;
}

TEST_CASE("segctl explains itself and rejects bad command lines", "[segctl][usage]") {
  TempDir dir;
  Run help = RunSegctl(dir, {"help"});
  CHECK(help.exit_code == 0);
  for (const char* command :
       {"segment put", "segment get", "segment list", "segment delete", "segment validate",
        "profile get", "members",     "count",        "funnel",         "explain",
        "subscribe",   "ingest",      "replay",       "export",         "recover",
        "route",       "stats",       "time set",     "demo-traffic",   "exit codes"}) {
    CHECK_THAT(help.out, Contains(command));
  }
  CHECK(RunSegctl(dir, {"--help"}).exit_code == 0);

  Run none = RunSegctl(dir, {});
  CHECK(none.exit_code == 2);
  CHECK_THAT(none.err, Contains("usage: segctl"));

  Run put_help = RunSegctl(dir, {"segment", "put", "--help"});
  CHECK(put_help.exit_code == 0);
  CHECK_THAT(put_help.out, Contains("usage: segctl segment put") && Contains("--dry-run") &&
                               Contains("--servers"));
  Run help_put = RunSegctl(dir, {"help", "segment", "put"});
  CHECK(help_put.out == put_help.out);

  Run unknown = RunSegctl(dir, {"frobnicate"});
  CHECK(unknown.exit_code == 2);
  CHECK_THAT(unknown.err, Contains("no command \"frobnicate\""));

  Run group = RunSegctl(dir, {"segment"});
  CHECK(group.exit_code == 2);
  CHECK_THAT(group.err, Contains("segment validate"));

  Run missing = RunSegctl(dir, {"segment", "get"});
  CHECK(missing.exit_code == 2);
  CHECK_THAT(missing.err, Contains("missing arguments") && Contains("segctl segment get ID"));

  Run extra = RunSegctl(dir, {"stats", "now"});
  CHECK(extra.exit_code == 2);
  CHECK_THAT(extra.err, Contains("unexpected argument \"now\""));

  Run flag = RunSegctl(dir, {"stats", "--bogus"});
  CHECK(flag.exit_code == 2);
  CHECK_THAT(flag.err, Contains("unknown flag --bogus") && Contains("segctl stats --help"));

  Run servers = RunSegctl(dir, {"stats", "--servers=localhost"});
  CHECK(servers.exit_code == 2);
  CHECK_THAT(servers.err, Contains("--servers: server \"localhost\": no :port"));

  Run twice = RunSegctl(dir, {"stats", "--servers=a:1,a:1"});
  CHECK(twice.exit_code == 2);
  CHECK_THAT(twice.err, Contains("listed twice"));

  Run within = RunSegctl(dir, {"funnel", "view", "--within", "7 days", "--servers=a:1"});
  CHECK(within.exit_code == 2);
  CHECK_THAT(within.err, Contains("--within: \"7 days\" is not a duration"));

  Run value = RunSegctl(dir, {"subscribe", "--snapshot=yes", "--servers=a:1"});
  CHECK(value.exit_code == 2);
  CHECK_THAT(value.err, Contains("--snapshot takes no value"));
}

TEST_CASE("segctl segment put, get, list, delete and validate", "[segctl][segment]") {
  TestCluster cluster;
  Segctl segctl(cluster.addresses);
  std::vector<v1::ProfileUpdate> updates;
  for (int i = 0; i < 30; ++i) updates.push_back(SetInt("p" + std::to_string(i), "age", i));
  Ingest(*cluster.client, updates);

  Run put = segctl({"segment", "put", "adults", "age >= 18", "--description", "grown-ups"});
  INFO(put);
  CHECK(put.exit_code == 0);
  CHECK(put.out == "put adults on 3 shards: 12 entered, 0 exited, 12 members\n");

  // A dry run of a replacement counts what it would change, and changes nothing.
  Run dry = segctl({"segment", "put", "adults", "age >= 20 and age < 29", "--dry-run"});
  CHECK(dry.exit_code == 0);
  CHECK(dry.out == "dry run of adults: 0 would enter, 3 would exit (nothing was changed)\n");
  Run dry_json = segctl({"segment", "put", "adults", "age >= 10", "--dry-run", "--json"});
  CHECK(dry_json.exit_code == 0);
  CHECK(ParseJson<v1::PutSegmentResponse>(dry_json.out).entered() == 8);

  // From a file, comments and several lines included.
  WriteFile(segctl.dir().File("teens.rule"), "# teenagers\nage >= 13\n  and age < 18\n");
  Run from_file = segctl({"segment", "put", "teens", "--file", segctl.dir().File("teens.rule")});
  CHECK(from_file.exit_code == 0);
  CHECK_THAT(from_file.out, Contains("5 entered"));

  Run get = segctl({"segment", "get", "adults"});
  CHECK(get.exit_code == 0);
  CHECK_THAT(get.out, Contains("id           adults\nrule         age >= 18\n"
                               "description  grown-ups\nmembers      12\n"));
  Run get_json = segctl({"segment", "get", "teens", "--json"});
  const v1::Segment teens = ParseJson<v1::Segment>(get_json.out);
  CHECK(teens.rule() == "# teenagers\nage >= 13\n  and age < 18\n");
  CHECK(teens.member_count() == 5);
  CHECK(teens.updated_at() == kT0);

  Run list = segctl({"segment", "list"});
  CHECK(list.exit_code == 0);
  const std::vector<std::string> rows = Lines(list.out);
  REQUIRE(rows.size() == 3);
  CHECK_THAT(rows[0], StartsWith("ID") && Contains("MEMBERS") && Contains("RULE"));
  CHECK_THAT(rows[1], StartsWith("adults") && Contains(" 12 ") && Contains("age >= 18"));
  CHECK_THAT(rows[2], StartsWith("teens") && Contains("# teenagers age >= 13 and age < 18"));
  Run list_json = segctl({"segment", "list", "--json"});
  const std::vector<std::string> json_lines = Lines(list_json.out);
  REQUIRE(json_lines.size() == 2);
  CHECK(ParseJson<v1::Segment>(json_lines[0]).id() == "adults");
  CHECK(ParseJson<v1::Segment>(json_lines[1]).member_count() == 5);

  // A bad rule: the server's message, with its position, and exit 1.
  Run bad = segctl({"segment", "put", "broken", "age >="});
  CHECK(bad.exit_code == 1);
  CHECK_THAT(bad.err, Contains("INVALID_ARGUMENT: PutSegment on all 3 shards: 1:7: "));
  WriteFile(segctl.dir().File("bad.rule"), "age > 1 and\n  count(login within 7 days) > 1\n");
  Run bad_file = segctl({"segment", "put", "broken", "--file", segctl.dir().File("bad.rule")});
  CHECK(bad_file.exit_code == 1);
  CHECK_THAT(bad_file.err, Contains("INVALID_ARGUMENT") && Contains(": 2:"));
  Run bad_id = segctl({"segment", "put", "no spaces", "age > 1"});
  CHECK(bad_id.exit_code == 1);
  CHECK_THAT(bad_id.err, Contains("INVALID_ARGUMENT"));
  Run neither = segctl({"segment", "put", "x"});
  CHECK(neither.exit_code == 2);
  CHECK_THAT(neither.err, Contains("either as an argument or with --file"));

  Run valid = segctl({"segment", "validate", "did(login within 7d)"});
  CHECK(valid.exit_code == 0);
  CHECK(valid.out == "ok\n");
  Run invalid = segctl({"segment", "validate", "--file", segctl.dir().File("bad.rule")});
  CHECK(invalid.exit_code == 1);
  CHECK_THAT(invalid.out, StartsWith(segctl.dir().File("bad.rule") + ":2:"));
  // The offending line, and a caret under the column.
  const std::vector<std::string> diagnostic = Lines(invalid.out);
  REQUIRE(diagnostic.size() == 3);
  CHECK(diagnostic[1] == "    count(login within 7 days) > 1");
  const size_t column = std::stoul(diagnostic[0].substr(diagnostic[0].find(":2:") + 3));
  CHECK(diagnostic[2] == std::string(2 + column - 1, ' ') + "^");
  Run invalid_json = segctl({"segment", "validate", "age >", "--json"});
  CHECK(invalid_json.exit_code == 1);
  const auto response = ParseJson<v1::ValidateRuleResponse>(invalid_json.out);
  CHECK_FALSE(response.ok());
  REQUIRE(response.diagnostics_size() == 1);
  CHECK(response.diagnostics(0).column() == 6);

  Run unknown = segctl({"segment", "get", "nope"});
  CHECK(unknown.exit_code == 1);
  CHECK_THAT(unknown.err, Contains("NOT_FOUND: GetSegment on all 3 shards: segment 'nope'"));

  REQUIRE(segctl({"segment", "put", "adult_teens",
                  "in_segment(\"adults\") and "
                  "in_segment(\"teens\")"})
              .exit_code == 0);
  Run referenced = segctl({"segment", "delete", "adults"});
  CHECK(referenced.exit_code == 1);
  CHECK_THAT(referenced.err, Contains("FAILED_PRECONDITION"));
  Run deleted = segctl({"segment", "delete", "adult_teens"});
  CHECK(deleted.exit_code == 0);
  CHECK(deleted.out == "deleted adult_teens: 0 members exited\n");
  Run deleted_json = segctl({"segment", "delete", "teens", "--json"});
  CHECK(ParseJson<v1::DeleteSegmentResponse>(deleted_json.out).exited() == 5);
  Run gone = segctl({"segment", "delete", "teens"});
  CHECK(gone.exit_code == 1);
  CHECK_THAT(gone.err, Contains("NOT_FOUND"));
}

TEST_CASE("segctl ingest, profile get, members, count, funnel and explain", "[segctl][query]") {
  TestCluster cluster;
  Segctl segctl(cluster.addresses);
  PutSegment(*cluster.client, "pro", "plan = \"pro\"");

  const std::string t = std::to_string(kT0 - kHour);
  const std::string input =
      "{\"key\": \"k1\", \"set\": {\"plan\": {\"string_value\": \"pro\"}, \"age\": "
      "{\"int_value\": \"41\"}}, \"events\": [{\"type\": \"view\", \"time\": \"" +
      t +
      "\"}, "
      "{\"type\": \"cart\", \"time\": \"" +
      t +
      "\", \"properties\": {\"sku\": {\"string_value\": "
      "\"s1\"}}}]}\n"
      "{\"key\": \"k2\", \"set\": {\"plan\": {\"string_value\": \"free\"}}, \"events\": "
      "[{\"type\": \"view\", \"time\": \"" +
      t +
      "\"}]}\n"
      "\n"
      "{\"key\": \"k3\", \"set\": {\"plan\": {}}}\n"
      "{\"key\": \"k4\", \"set\": {\"plan\": {\"string_value\": \"pro\"}}}\n"
      "{\"key\": \"k5\", \"increment\": {\"visits\": {\"int_value\": \"2\"}}}\n"
      "{\"key\": \"k6\", \"events\": [{\"type\": \"view\", \"time\": \"" +
      t +
      "\"}, "
      "{\"type\": \"cart\", \"time\": \"" +
      t + "\"}, {\"type\": \"buy\", \"time\": \"" + t + "\"}]}\n";
  Run ingest = segctl({"ingest", "--batch", "2"}, input);
  INFO(ingest);
  CHECK(ingest.exit_code == 1);  // one update was rejected
  CHECK_THAT(ingest.out, StartsWith("ingested 6 updates from stdin: 5 applied, 1 rejected"));
  CHECK_THAT(ingest.err, Contains("segctl: stdin:4: update of \"k3\" rejected: "));

  WriteFile(segctl.dir().File("bad.jsonl"),
            "{\"key\": \"k7\"}\n{\"key\": \"k8\", \"sett\": {}}\n{\"key\": \"k9\"}\n");
  Run malformed = segctl({"ingest", segctl.dir().File("bad.jsonl")});
  CHECK(malformed.exit_code == 1);
  CHECK_THAT(malformed.err, Contains("bad.jsonl:2: not a JSON ProfileUpdate"));
  CHECK_THAT(malformed.out, Contains("ingested 1 updates"));
  CHECK(cluster.ProfileOn(cluster.ShardOf("k7"), "k7") == grpc::StatusCode::OK);
  CHECK(cluster.ProfileOn(cluster.ShardOf("k9"), "k9") == grpc::StatusCode::NOT_FOUND);
  Run missing_file = segctl({"ingest", segctl.dir().File("nope.jsonl")});
  CHECK(missing_file.exit_code == 1);
  CHECK_THAT(missing_file.err, Contains("nope.jsonl: No such file or directory"));

  Run profile = segctl({"profile", "get", "k1"});
  INFO(profile);
  CHECK(profile.exit_code == 0);
  CHECK_THAT(profile.out,
             Contains("key       k1\nshard     " + cluster.addresses[cluster.ShardOf("k1")] +
                      "\n"
                      "segments  pro\n"));
  CHECK_THAT(profile.out, Contains("age   int     41") && Contains("plan  string  \"pro\"") &&
                              Contains("events (2)") && Contains("sku=\"s1\""));
  Run profile_json = segctl({"profile", "get", "k1", "--json"});
  const v1::Profile k1 = ParseJson<v1::Profile>(profile_json.out);
  CHECK(k1.events_size() == 2);
  CHECK(k1.attributes().at("age").int_value() == 41);
  Run no_profile = segctl({"profile", "get", "nobody"});
  CHECK(no_profile.exit_code == 1);
  CHECK_THAT(no_profile.err, Contains("NOT_FOUND: GetProfile on ") && Contains("nobody"));

  Run members = segctl({"members", "pro"});
  CHECK(members.exit_code == 0);
  CHECK(AsSet(Lines(members.out)) == std::set<std::string>{"k1", "k4"});
  CHECK(Lines(segctl({"members", "pro", "--limit", "1"}).out).size() == 1);
  Run no_segment = segctl({"members", "nope"});
  CHECK(no_segment.exit_code == 1);
  CHECK_THAT(no_segment.err, Contains("NOT_FOUND"));

  Run count = segctl({"count", "plan = \"pro\" or has(visits)"});
  CHECK(count.exit_code == 0);
  CHECK(count.out == "3 of 6 profiles match (50.0%)\n");
  Run count_json = segctl({"count", "--rule", "did(view)", "--json"});
  const auto counted = ParseJson<v1::CountResponse>(count_json.out);
  CHECK(counted.matched() == 3);
  CHECK(counted.total() == 6);
  Run bad_count = segctl({"count", "plan = "});
  CHECK(bad_count.exit_code == 1);
  CHECK_THAT(bad_count.err, Contains("INVALID_ARGUMENT") && Contains("1:8: "));
  CHECK(segctl({"count"}).exit_code == 2);

  Run funnel = segctl({"funnel", "view", "cart", "buy", "--within", "1d"});
  INFO(funnel);
  CHECK(funnel.exit_code == 0);
  const std::vector<std::string> steps = Lines(funnel.out);
  REQUIRE(steps.size() == 5);
  CHECK_THAT(steps[1], Contains("view") && Contains(" 3 ") && Contains("50.0%"));
  CHECK_THAT(steps[2],
             Contains("cart") && Contains(" 2 ") && Contains("33.3%") && Contains("66.7%"));
  CHECK_THAT(steps[3],
             Contains("buy") && Contains(" 1 ") && Contains("16.7%") && Contains("50.0%"));
  CHECK(steps[4] == "6 profiles in all, each sequence within 1d");
  Run funnel_json = segctl({"funnel", "view", "cart where sku = \"s1\"", "--json"});
  const auto funneled = ParseJson<v1::FunnelResponse>(funnel_json.out);
  REQUIRE(funneled.counts_size() == 2);
  CHECK(funneled.counts(1) == 1);
  Run bad_funnel = segctl({"funnel", "view where"});
  CHECK(bad_funnel.exit_code == 1);
  CHECK_THAT(bad_funnel.err, Contains("INVALID_ARGUMENT"));

  Run explain = segctl({"explain", "k1", "--segment", "pro"});
  CHECK(explain.exit_code == 0);
  CHECK_THAT(explain.out, StartsWith("k1 is a member of pro\n") && Contains("plan = \"pro\"") &&
                              Contains("=>  true"));
  Run explain_rule = segctl({"explain", "k2", "--rule", "plan = \"pro\" and did(view)"});
  CHECK(explain_rule.exit_code == 0);
  CHECK_THAT(explain_rule.out, StartsWith("the rule is false for k2\n"));
  Run explain_json = segctl({"explain", "k4", "--segment", "pro", "--json"});
  CHECK(ParseJson<v1::ExplainResponse>(explain_json.out).matched());
  Run explain_unknown = segctl({"explain", "k1", "--segment", "nope"});
  CHECK(explain_unknown.exit_code == 1);
  CHECK_THAT(explain_unknown.err, Contains("NOT_FOUND"));
  Run explain_both = segctl({"explain", "k1", "--segment", "pro", "--rule", "x = 1"});
  CHECK(explain_both.exit_code == 2);
}

TEST_CASE("segctl export, replay, route, stats and time", "[segctl][data]") {
  TestCluster cluster;
  Segctl segctl(cluster.addresses);
  PutSegment(*cluster.client, "old", "age >= 50");
  std::vector<v1::ProfileUpdate> updates;
  for (int i = 0; i < 60; ++i) {
    v1::ProfileUpdate u = SetInt("p" + std::to_string(i), "age", i);
    *u.add_events() = Event("", "view", kT0 - i * kHour).events(0);
    updates.push_back(std::move(u));
  }
  Ingest(*cluster.client, updates);

  const std::string file = segctl.dir().File("all.jsonl");
  Run exported = segctl({"export", file});
  INFO(exported);
  CHECK(exported.exit_code == 0);
  CHECK_THAT(exported.out, StartsWith("exported 60 profiles (60 events) from 3 shards to " + file));
  std::set<std::string> keys;
  for (const std::string& line : Lines(ReadFile(file))) {
    const v1::Profile p = ParseJson<v1::Profile>(line);
    CHECK(p.events_size() == 1);
    keys.insert(p.key());
  }
  CHECK(keys.size() == 60);
  Run to_stdout = segctl({"export", "--only-shard", cluster.addresses[1]});
  CHECK(to_stdout.exit_code == 0);
  for (const std::string& line : Lines(to_stdout.out)) {
    CHECK(cluster.ShardOf(ParseJson<v1::Profile>(line).key()) == 1);
  }
  CHECK(segctl({"export", "--only-shard", "9"}).exit_code == 2);

  Run route = segctl({"route", "p1", "p2"});
  CHECK(route.exit_code == 0);
  const std::vector<std::string> routes = Lines(route.out);
  REQUIRE(routes.size() == 3);
  CHECK_THAT(routes[1], StartsWith("p1") && Contains(cluster.addresses[cluster.ShardOf("p1")]));
  Run route_json = segctl({"route", "p2", "--json"});
  CHECK_THAT(route_json.out,
             Contains("\"address\":\"" + cluster.addresses[cluster.ShardOf("p2")] + "\""));

  Run stats = segctl({"stats"});
  INFO(stats);
  CHECK(stats.exit_code == 0);
  for (const std::string& address : cluster.addresses) CHECK_THAT(stats.out, Contains(address));
  CHECK_THAT(Lines(stats.out).front(),
             Contains(" MEMORY ") && Contains(" CPU ") && Contains(" NOW "));
  CHECK_THAT(Lines(stats.out).back(),
             StartsWith("total") && Contains(" 60 ") && Contains("2023-11-14T22:13:20.000Z"));
  Run stats_json = segctl({"stats", "--json"});
  CHECK_THAT(stats_json.out, Contains("\"total\":{\"profiles\":\"60\""));

  Run later = segctl({"time", "set", "+2h"});
  CHECK(later.exit_code == 0);
  CHECK(later.out == "cluster time is 2023-11-15T00:13:20.000Z (1700007200000)\n");
  Run rfc = segctl({"time", "set", "2023-11-15T01:13:20Z", "--json"});
  CHECK(ParseJson<v1::SetTimeResponse>(rfc.out).now() == kT0 + 3 * kHour);
  Run get = segctl({"time", "get"});
  CHECK_THAT(get.out, Contains(cluster.addresses[2] + "  2023-11-15T01:13:20.000Z"));
  Run backwards = segctl({"time", "set", std::to_string(kT0)});
  CHECK(backwards.exit_code == 1);
  CHECK_THAT(backwards.err, Contains("FAILED_PRECONDITION"));
  CHECK(segctl({"time", "set", "yesterday"}).exit_code == 2);

  // Replayed into another cluster, the profiles come back whole, each on its shard there.
  TestCluster other;
  Segctl segctl_other(other.addresses);
  PutSegment(*other.client, "old", "age >= 50");
  Run replayed = segctl_other({"replay", file, "--message-mb", "1"});
  INFO(replayed);
  CHECK(replayed.exit_code == 0);
  CHECK_THAT(replayed.out, StartsWith("replayed 60 profiles (60 events) from " + file +
                                      " to 3 shards: 0 rejected"));
  CHECK(Lines(segctl_other({"members", "old"}).out).size() == 10);
  for (const char* key : {"p0", "p33", "p59"}) {
    CHECK(other.ProfileOn(other.ShardOf(key), key) == grpc::StatusCode::OK);
  }
  // One shard's share only.
  TestCluster third;
  Segctl segctl_third(third.addresses);
  Run one_shard = segctl_third({"replay", "--only-shard", "2", "--quiet"}, ReadFile(file));
  CHECK(one_shard.exit_code == 0);
  int on_2 = 0;
  for (const std::string& key : keys) on_2 += third.ShardOf(key) == 2;
  CHECK_THAT(one_shard.out, Contains("replayed " + std::to_string(on_2) + " profiles") &&
                                Contains(std::to_string(60 - on_2) + " of other shards skipped"));

  WriteFile(segctl.dir().File("broken.jsonl"),
            ReadFile(file) + "{\"key\": \"x\", \"events\": 3}\n");
  Run broken = segctl_other({"replay", segctl.dir().File("broken.jsonl")});
  CHECK(broken.exit_code == 1);
  CHECK_THAT(broken.err, Contains("broken.jsonl:61: not a JSON Profile"));
  WriteFile(segctl.dir().File("rejected.jsonl"),
            "{\"key\": \"ok\"}\n{\"key\": \"bad\", \"attributes\": {\"a\": {}}}\n");
  Run rejected = segctl_other({"replay", segctl.dir().File("rejected.jsonl")});
  CHECK(rejected.exit_code == 1);
  CHECK_THAT(rejected.err, Contains("rejected.jsonl:2: profile \"bad\" rejected: "));
  CHECK_THAT(rejected.out, Contains("1 rejected"));
}

TEST_CASE("segctl subscribe prints changes as JSON lines and resumes from its cursor",
          "[segctl][subscribe]") {
  TestCluster cluster;
  Segctl segctl(cluster.addresses);
  PutSegment(*cluster.client, "pro", "plan = \"pro\"");
  auto plan = [](const std::string& key, const std::string& value) {
    v1::ProfileUpdate u;
    u.set_key(key);
    (*u.mutable_set())["plan"].set_string_value(value);
    return u;
  };
  Ingest(*cluster.client,
         {plan("a", "pro"), plan("b", "pro"), plan("c", "pro"), plan("d", "free")});

  Run snapshot = segctl({"subscribe", "--snapshot", "--duration", "3s"});
  INFO(snapshot);
  CHECK(snapshot.exit_code == 0);
  std::set<std::string> entered;
  for (const std::string& line : Lines(snapshot.out)) {
    const v1::Change change = ParseJson<v1::Change>(line);
    CHECK(change.kind() == v1::CHANGE_KIND_ENTER);
    CHECK(change.cause() == v1::CAUSE_SNAPSHOT);
    CHECK(change.segment() == "pro");
    entered.insert(change.key());
  }
  CHECK(entered == std::set<std::string>{"a", "b", "c"});
  CHECK_THAT(snapshot.err, Contains("snapshot complete on every shard"));
  const size_t at = snapshot.err.find("resume with --cursor=");
  REQUIRE(at != std::string::npos);
  const std::string cursor = snapshot.err.substr(at + 21, snapshot.err.find('\n', at) - at - 21);

  Ingest(*cluster.client, {plan("a", "free"), plan("d", "pro")}, 2);
  Run resumed = segctl({"subscribe", "--cursor", cursor, "--duration", "2500ms"});
  INFO(resumed);
  CHECK(resumed.exit_code == 0);
  std::set<std::string> seen;
  for (const std::string& line : Lines(resumed.out)) {
    const v1::Change change = ParseJson<v1::Change>(line);
    CHECK(change.cause() == v1::CAUSE_UPDATE);
    seen.insert(change.key() + (change.kind() == v1::CHANGE_KIND_ENTER ? "+" : "-"));
  }
  CHECK(seen == std::set<std::string>{"a-", "d+"});
  CHECK(Lines(resumed.out).size() == 2);

  // --cursor-file keeps the position between runs.
  const std::string cursor_file = segctl.dir().File("pro.cursor");
  Run first = segctl({"subscribe", "--cursor-file", cursor_file, "--duration", "2s"});
  CHECK(first.exit_code == 0);
  CHECK(first.out.empty());
  CHECK_FALSE(ReadFile(cursor_file).empty());
  Ingest(*cluster.client, {plan("e", "pro")}, 3);
  Run second = segctl({"subscribe", "--cursor-file", cursor_file, "--max-changes", "1"});
  INFO(second);
  CHECK(second.exit_code == 0);
  REQUIRE(Lines(second.out).size() == 1);
  CHECK(ParseJson<v1::Change>(second.out).key() == "e");

  // A shard that restarted is sent again from scratch, and the caller told on stderr.
  cluster.Stop(1);
  cluster.Restart(1);
  Run after_restart = segctl({"subscribe", "--cursor", cursor, "--duration", "2500ms"});
  INFO(after_restart);
  CHECK(after_restart.exit_code == 0);
  CHECK_THAT(after_restart.err, Contains("segctl: shard " + cluster.addresses[1] +
                                         " is sent again from scratch (OUT_OF_RANGE"));

  Run bad_cursor = segctl({"subscribe", "--cursor", "garbage", "--duration", "1s"});
  CHECK(bad_cursor.exit_code == 1);
  CHECK_THAT(bad_cursor.err, Contains("INVALID_ARGUMENT"));
  CHECK(segctl({"subscribe", "--snapshot", "--cursor", cursor}).exit_code == 2);
}

TEST_CASE("segctl names a shard it cannot reach and exits 3", "[segctl][failure]") {
  TestCluster cluster;
  PutSegment(*cluster.client, "pro", "plan = \"pro\"");
  cluster.Stop(2);
  Segctl segctl(cluster.addresses);
  const std::string dead = cluster.addresses[2];

  Run put = segctl({"segment", "put", "x", "age > 1", "--timeout", "5s"});
  CHECK(put.exit_code == 3);
  CHECK_THAT(put.err, Contains("UNAVAILABLE: PutSegment failed on 1 of 3 shards") &&
                          Contains(dead + ": UNAVAILABLE"));

  Run stats = segctl({"stats", "--timeout", "5s"});
  CHECK(stats.exit_code == 1);
  CHECK_THAT(stats.out, Contains(dead + "  ") && Contains("total"));
  CHECK_THAT(stats.err, Contains("segctl: " + dead + ": UNAVAILABLE"));

  const std::vector<std::string> keys = cluster.KeysOn(2, 1);
  Run profile = segctl({"profile", "get", keys[0]});
  CHECK(profile.exit_code == 3);
  CHECK_THAT(profile.err, Contains("GetProfile on " + dead));

  Run ingest = segctl({"ingest"}, "{\"key\": \"" + keys[0] + "\"}\n");
  CHECK(ingest.exit_code == 3);
  CHECK_THAT(ingest.err, Contains("stdin lines 1-1: ") && Contains(dead));

  Segctl nobody({dead});
  Run all_down = nobody({"stats"});
  CHECK(all_down.exit_code == 3);
}

TEST_CASE("segctl recover rebuilds a restarted shard and refuses what it cannot do",
          "[segctl][recover]") {
  TestCluster cluster;
  Segctl segctl(cluster.addresses);
  // "a_vip" sorts before the segments it refers to: recover must put those first.
  PutSegment(*cluster.client, "z_old", "age >= 40");
  PutSegment(*cluster.client, "y_viewer", "did(view within 1d)");
  PutSegment(*cluster.client, "a_vip", "in_segment(\"z_old\") and in_segment(\"y_viewer\")");
  std::vector<v1::ProfileUpdate> updates;
  for (int i = 0; i < 90; ++i) {
    v1::ProfileUpdate u = SetInt("p" + std::to_string(i), "age", i);
    *u.add_events() = Event("", "view", kT0 - (i % 3) * 10 * kHour).events(0);
    updates.push_back(std::move(u));
  }
  Ingest(*cluster.client, updates);
  REQUIRE(segctl({"time", "set", "+3h"}).exit_code == 0);
  const std::string backup = segctl.dir().File("backup.jsonl");
  REQUIRE(segctl({"export", backup}).exit_code == 0);
  const std::string segments = segctl.dir().File("segments.jsonl");
  WriteFile(segments, segctl({"segment", "list", "--json"}).out);
  const std::set<std::string> vips = AsSet(Lines(segctl({"members", "a_vip"}).out));
  REQUIRE(vips.size() > 5);

  Run not_empty = segctl({"recover", "--shard", cluster.addresses[1], "--from", backup});
  CHECK(not_empty.exit_code == 1);
  CHECK_THAT(not_empty.err, Contains("FAILED_PRECONDITION: " + cluster.addresses[1] + " holds "));
  CHECK(segctl({"recover", "--shard", "127.0.0.1:1", "--from", backup}).exit_code == 2);
  CHECK(segctl({"recover", "--shard", cluster.addresses[1]}).exit_code == 2);
  CHECK(segctl({"recover", "--shard", "1", "--from", backup, "--from-peer", cluster.addresses[0],
                "--segments", segments})
            .exit_code == 2);

  // The shard restarts empty, at the start time of its clock.
  cluster.Stop(1);
  cluster.Restart(1);
  Run recovered = segctl({"recover", "--shard", cluster.addresses[1], "--from", backup});
  INFO(recovered);
  CHECK(recovered.exit_code == 0);
  CHECK_THAT(recovered.out, Contains("clock: set to 2023-11-15T01:13:20.000Z, as on ") &&
                                Contains("segments: 3 put, from " + cluster.addresses[0]) &&
                                Contains("recovered " + cluster.addresses[1]));
  CHECK(AsSet(Lines(segctl({"members", "a_vip"}).out)) == vips);
  const std::vector<std::string> on_1 = cluster.KeysOn(1, 3, "p");
  for (const std::string& key : on_1) {
    CHECK(cluster.ProfileOn(1, key) == grpc::StatusCode::OK);
  }

  // Again, the segments from a file this time, the profiles from stdin.
  cluster.Stop(1);
  cluster.Restart(1);
  Run from_files =
      segctl({"recover", "--shard", "1", "--segments", segments, "--from", "-"}, ReadFile(backup));
  INFO(from_files);
  CHECK(from_files.exit_code == 0);
  CHECK_THAT(from_files.out, Contains("segments: 3 put, from " + segments));
  CHECK(AsSet(Lines(segctl({"members", "a_vip"}).out)) == vips);

  // A shard that is down cannot be recovered.
  cluster.Stop(1);
  Run down = segctl({"recover", "--shard", "1", "--from", backup, "--timeout", "5s"});
  CHECK(down.exit_code == 3);
  CHECK_THAT(down.err, Contains("restart the shard before recovering it"));
}

}  // namespace
}  // namespace segd::testing
