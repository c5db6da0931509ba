#include "loadgen/report.h"

#include <catch2/catch.hpp>
#include <cstdio>
#include <limits>
#include <set>
#include <string>

namespace segd::load {
namespace {

TEST_CASE("Report JSON holds every schema key, null until set", "[loadgen][report]") {
  Report report;
  report.SetConfig("profiles", "2000");
  report.SetConfig("rate", JsonString("max"));
  report.Set("ingest_updates_per_s", 123456.5);
  report.Set("rss_bytes", 4123456789.0);
  report.AddServer(R"({"address": "a:1"})");
  report.AddError("ingest: \"quoted\"\nline");
  report.AddWarning("latency: not sustained");
  const std::string json = report.ToJson();
  for (const Report::Field& f : Report::Schema()) {
    INFO(f.key);
    std::string needle = "\"";
    needle.append(f.key).append("\": ");
    REQUIRE(json.find(needle) != std::string::npos);
  }
  REQUIRE(json.find("\"ingest_updates_per_s\": 123456.5,") != std::string::npos);
  REQUIRE(json.find("\"rss_bytes\": 4123456789,") != std::string::npos);
  REQUIRE(json.find("\"latency_p99_ms\": null,") != std::string::npos);
  REQUIRE(json.find("\"rate\": \"max\"") != std::string::npos);
  REQUIRE(json.find(R"({"address": "a:1"})") != std::string::npos);
  REQUIRE(json.find(R"("errors": [
    "ingest: \"quoted\"\nline"
  ],)") != std::string::npos);
  REQUIRE(json.find(R"("warnings": [
    "latency: not sustained"
  ]
})") != std::string::npos);
  REQUIRE(report.Get("ingest_updates_per_s") == 123456.5);
  REQUIRE_FALSE(report.Get("latency_p99_ms").has_value());
}

TEST_CASE("Report keys are unique and name their phase", "[loadgen][report]") {
  std::set<std::string_view> keys;
  for (const Report::Field& f : Report::Schema()) {
    REQUIRE(keys.insert(f.key).second);
    REQUIRE_FALSE(f.phase.empty());
    REQUIRE_FALSE(f.label.empty());
  }
  // The fields the benchmark's consumers rely on.
  for (const char* key :
       {"profiles", "replay_profiles_per_s", "ingest_updates_per_s", "latency_p50_ms",
        "latency_p99_ms", "latency_p999_ms", "rss_bytes", "bytes_per_profile", "backfill_s",
        "funnel_s", "funnel_events_per_s", "fanout_ingest_ratio", "ingest_ratio_to_redis"}) {
    REQUIRE(keys.count(key) == 1);
  }
}

TEST_CASE("Numbers read well in JSON and in the table", "[loadgen][report]") {
  REQUIRE(JsonNumber(0) == "0");
  REQUIRE(JsonNumber(-3) == "-3");
  REQUIRE(JsonNumber(0.125) == "0.125");
  REQUIRE(JsonNumber(1.0 / 3) == "0.3333333333");
  REQUIRE(JsonNumber(std::numeric_limits<double>::infinity()) == "null");
  REQUIRE(HumanNumber(1234567.4) == "1,234,567");
  REQUIRE(HumanNumber(-1500) == "-1,500");
  REQUIRE(HumanNumber(999) == "999");
  REQUIRE(HumanNumber(3.14159) == "3.142");
  REQUIRE(JsonString("a\"b\\c\x01") == "\"a\\\"b\\\\c\\u0001\"");
}

TEST_CASE("The table lists what was measured, by phase", "[loadgen][report]") {
  Report report;
  report.Set("backfill_s", 0.25);
  report.Set("ingest_updates_per_s", 300000);
  report.Set("ingest_ack_p50_ms", 55.5);
  std::FILE* f = std::tmpfile();
  REQUIRE(f != nullptr);
  report.PrintTable(f);
  std::rewind(f);
  std::string text;
  char buf[256];
  while (std::fgets(buf, sizeof buf, f) != nullptr) text += buf;
  std::fclose(f);
  REQUIRE(text.find("ingest    ingest (acked)") != std::string::npos);
  REQUIRE(text.find("300,000  updates/s") != std::string::npos);
  REQUIRE(text.find("55.5  ms") != std::string::npos);
  REQUIRE(text.find("backfill") != std::string::npos);
  REQUIRE(text.find("update-to-change") == std::string::npos);  // nothing measured there
  // Ingest comes before backfill, as the phases run.
  REQUIRE(text.find("ingest (acked)") < text.find("backfill"));
}

}  // namespace
}  // namespace segd::load
