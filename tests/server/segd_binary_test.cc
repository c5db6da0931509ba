// The real segd binary: started as a process, driven over loopback, stopped with
// SIGTERM. Checks the start-up line, health, a round trip, and the drain: an open
// change stream is finished, the process exits 0 within its deadline.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "grpcpp/health_check_service_interface.h"
#include "segd/v1/segd.grpc.pb.h"
#include "tests/child_process.h"

namespace segd::server {
namespace {

using testing::Run;
using testing::RunProcess;
using testing::SegdProcess;
using testing::TempDir;

// The names of the threads of process `pid` (as `top -H` and `perf` show them).
std::vector<std::string> ThreadNames(pid_t pid) {
  std::vector<std::string> names;
  for (const auto& task :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task")) {
    std::string name = testing::ReadFile(task.path().string() + "/comm");
    if (!name.empty() && name.back() == '\n') name.pop_back();
    names.push_back(std::move(name));
  }
  return names;
}

TEST_CASE("segd serves over loopback and drains on SIGTERM", "[server][binary]") {
  TempDir dir;
  SegdProcess segd(dir, "segd", /*port=*/0,
                   {"--clock=manual", "--start-time=1700000000000", "--shards=2",
                    "--drain_seconds=5"});
  const int port = segd.port();
  CHECK_THAT(segd.Log(),
             Catch::Matchers::Contains("shards=2") && Catch::Matchers::Contains("clock=manual"));
  // Its threads are named for `top -H` and `perf`: one per shard, and the change pump.
  const std::vector<std::string> names = ThreadNames(segd.pid());
  const std::set<std::string> threads(names.begin(), names.end());
  CHECK(threads.count("segd-shard-0") == 1);
  CHECK(threads.count("segd-shard-1") == 1);
  CHECK(threads.count("segd-shard-2") == 0);
  CHECK(threads.count("segd-pump") == 1);
  auto channel =
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials());
  REQUIRE(channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10)));

  auto segments = v1::Segments::NewStub(channel);
  auto ingest = v1::Ingest::NewStub(channel);
  auto changes = v1::Changes::NewStub(channel);
  {
    grpc::ClientContext ctx;
    v1::PutSegmentRequest req;
    req.mutable_segment()->set_id("dk");
    req.mutable_segment()->set_rule("country = \"DK\"");
    v1::PutSegmentResponse resp;
    REQUIRE(segments->PutSegment(&ctx, req, &resp).ok());
  }
  // An open change stream, to be finished by the drain.
  grpc::ClientContext sub_ctx;
  sub_ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  v1::SubscribeRequest sub;
  auto reader = changes->Subscribe(&sub_ctx, sub);
  v1::ChangeBatch got;
  // The first batch fixes where a live subscription starts: what is applied after it
  // arrives is delivered.
  REQUIRE(reader->Read(&got));
  {
    grpc::ClientContext ctx;
    v1::UpdateBatch batch;
    batch.set_seq(7);
    auto* u = batch.add_updates();
    u->set_key("u1");
    (*u->mutable_set())["country"].set_string_value("DK");
    v1::Ack ack;
    REQUIRE(ingest->Apply(&ctx, batch, &ack).ok());
    CHECK(ack.seq() == 7);
    CHECK(ack.applied() == 1);
  }
  bool entered = false;
  while (!entered && reader->Read(&got)) {
    for (const v1::Change& c : got.changes()) entered |= c.key() == "u1" && c.segment() == "dk";
  }
  CHECK(entered);

  const auto start = std::chrono::steady_clock::now();
  CHECK(segd.Stop(SIGTERM, std::chrono::seconds(8)) == 0);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(6));
  while (reader->Read(&got)) {
  }
  const grpc::Status end = reader->Finish();
  CHECK(end.error_code() == grpc::StatusCode::UNAVAILABLE);
  CHECK_THAT(segd.Log(),
             Catch::Matchers::Contains("draining") && Catch::Matchers::Contains("stopped"));
}

TEST_CASE("segd runs a shard a core unless --shards says otherwise", "[server][binary]") {
  TempDir dir;
  SegdProcess segd(dir, "segd", /*port=*/0, {"--clock=manual"});
  const int expected = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  CHECK_THAT(segd.Log(), Catch::Matchers::Contains("shards=" + std::to_string(expected) + " "));
  const std::vector<std::string> names = ThreadNames(segd.pid());
  CHECK(std::count_if(names.begin(), names.end(), [](const std::string& name) {
          return name.starts_with("segd-shard-");
        }) == expected);
  CHECK(segd.Stop(SIGTERM, std::chrono::seconds(8)) == 0);
}

TEST_CASE("segd will not share a port another segd listens on", "[server][binary]") {
  // gRPC would bind with SO_REUSEPORT, and the two processes would split connections.
  TempDir dir;
  SegdProcess first(dir, "first", /*port=*/0, {"--clock=manual"});
  const Run second = RunProcess(SEGD_BINARY, dir, {"--listen=" + first.address()});
  CHECK(second.exit_code == 2);
  CHECK_THAT(second.out + second.err,
             Catch::Matchers::Contains("cannot listen on " + first.address()));
  CHECK(first.Stop(SIGTERM, std::chrono::seconds(8)) == 0);
}

TEST_CASE("segd explains its flags and rejects bad ones", "[server][binary]") {
  TempDir dir;
  // What a run wrote, stdout and stderr together.
  auto output = [](const Run& run) { return run.out + run.err; };
  const Run help = RunProcess(SEGD_BINARY, dir, {"--help"});
  for (const char* flag : {"--listen", "--shards", "--clock", "--start_time", "--retention",
                           "--max_events", "--max_future", "--change_log_capacity",
                           "--max_segments", "--max_message_bytes", "--log_level"}) {
    CHECK_THAT(output(help), Catch::Matchers::Contains(flag));
  }
  const Run bad = RunProcess(SEGD_BINARY, dir, {"--clock=sundial"});
  CHECK(bad.exit_code == 2);
  CHECK_THAT(output(bad), Catch::Matchers::Contains("--clock: must be 'system' or 'manual'"));
  const Run retention = RunProcess(SEGD_BINARY, dir, {"--retention=90 days"});
  CHECK(retention.exit_code == 2);
  CHECK_THAT(output(retention), Catch::Matchers::Contains("--retention"));
}

}  // namespace
}  // namespace segd::server
