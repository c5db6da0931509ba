// The real segd binary: started as a process, driven over loopback, stopped with
// SIGTERM. Checks the start-up line, health, a round trip, and the drain: an open
// change stream is finished, the process exits 0 within its deadline.
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>

#include "grpcpp/health_check_service_interface.h"
#include "segd/v1/segd.grpc.pb.h"

extern char** environ;

namespace segd::server {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A segd process whose log goes to a file; killed on destruction if still running.
class SegdProcess {
 public:
  explicit SegdProcess(std::vector<std::string> args) {
    log_ = "/tmp/segd_binary_test_" + std::to_string(getpid()) + ".log";
    std::vector<std::string> argv = {SEGD_BINARY};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<char*> raw;
    for (std::string& a : argv) raw.push_back(a.data());
    raw.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    REQUIRE(posix_spawn(&pid_, SEGD_BINARY, &actions, nullptr, raw.data(), environ) == 0);
    posix_spawn_file_actions_destroy(&actions);
  }
  ~SegdProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (getenv("SEGD_KEEP_LOG") == nullptr) unlink(log_.c_str());
  }

  // The port from the start-up line, waiting for it up to 10 s.
  int Port() {
    const std::regex started(R"(segd started: .* port=(\d+) )");
    for (int i = 0; i < 1000; ++i) {
      std::smatch m;
      const std::string log = ReadFile(log_);
      if (std::regex_search(log, m, started)) return std::stoi(m[1]);
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    FAIL("segd did not start: " << ReadFile(log_));
    return 0;
  }

  // Sends `sig` and waits up to `timeout` for the exit; returns the exit status or -1.
  int Stop(int sig, std::chrono::seconds timeout) {
    kill(pid_, sig);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return -1;
  }

  std::string Log() const { return ReadFile(log_); }

 private:
  pid_t pid_ = -1;
  std::string log_;
};

TEST_CASE("segd serves over loopback and drains on SIGTERM", "[server][binary]") {
  SegdProcess segd({"--listen=127.0.0.1:0", "--clock=manual", "--start-time=1700000000000",
                    "--shards=2", "--drain_seconds=5"});
  const int port = segd.Port();
  CHECK_THAT(segd.Log(),
             Catch::Matchers::Contains("shards=2") && Catch::Matchers::Contains("clock=manual"));
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

TEST_CASE("segd explains its flags and rejects bad ones", "[server][binary]") {
  SegdProcess help({"--help"});
  help.Stop(0, std::chrono::seconds(5));
  for (const char* flag : {"--listen", "--shards", "--clock", "--start_time", "--retention",
                           "--max_events", "--max_future", "--change_log_capacity",
                           "--max_segments", "--max_message_bytes", "--log_level"}) {
    CHECK_THAT(help.Log(), Catch::Matchers::Contains(flag));
  }
  SegdProcess bad({"--clock=sundial"});
  CHECK(bad.Stop(0, std::chrono::seconds(5)) == 2);
  CHECK_THAT(bad.Log(), Catch::Matchers::Contains("--clock: must be 'system' or 'manual'"));
  SegdProcess retention({"--retention=90 days"});
  CHECK(retention.Stop(0, std::chrono::seconds(5)) == 2);
  CHECK_THAT(retention.Log(), Catch::Matchers::Contains("--retention"));
}

}  // namespace
}  // namespace segd::server
