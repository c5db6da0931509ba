#include "client/segctl/command.h"

#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/segctl/output.h"

namespace segd::segctl {
namespace {

std::atomic<bool> stop_requested{false};

extern "C" void OnStopSignal(int) { stop_requested.store(true); }

}  // namespace

std::string Command::Name() const { return absl::StrJoin(path, " "); }

const std::vector<FlagSpec>& GlobalFlags() {
  static const std::vector<FlagSpec> flags = {
      {"servers", "HOST:PORT,...",
       "the cluster's shards, in any order (default: $SEGD_SERVERS, else 127.0.0.1:7070)"},
      {"json", "", "machine-readable output: protobuf's JSON mapping of the API messages"},
      {"timeout", "DURATION", "deadline of each call to a shard (default 30s)"},
      {"progress", "on|off|auto", "progress lines on stderr (auto: when stderr is a terminal)"},
      {"help", "", "show help for the command"},
  };
  return flags;
}

Context::Context(const Command& command, Args args, std::vector<std::string> servers)
    : command_(command), args_(std::move(args)), servers_(std::move(servers)) {}

absl::Status Context::Init() {
  const std::string progress = args_.GetOr("progress", "auto");
  if (progress == "on") {
    progress_ = true;
  } else if (progress == "off") {
    progress_ = false;
  } else if (progress == "auto") {
    progress_ = isatty(STDERR_FILENO) == 1;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--progress: expected on, off or auto, not \"", progress, "\""));
  }
  if (std::optional<std::string> timeout = args_.Get("timeout")) {
    absl::StatusOr<int64_t> ms = ParseDurationMs(*timeout);
    if (!ms.ok() || *ms <= 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--timeout: expected a positive duration such as 30s or 2m, not \"", *timeout, "\""));
    }
    options_.rpc_timeout = absl::Milliseconds(*ms);
  }
  if (!command_.uses_cluster) return absl::OkStatus();
  absl::StatusOr<std::unique_ptr<client::ClusterClient>> cluster =
      client::ClusterClient::Create(servers_, options_);
  if (!cluster.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--servers: ", cluster.status().message()));
  }
  cluster_ = *std::move(cluster);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<client::ClusterClient>> Context::ClientOf(
    const std::string& server) const {
  return client::ClusterClient::Create({server}, options_);
}

absl::StatusOr<uint64_t> Context::PositiveFlag(std::string_view name, uint64_t fallback) const {
  const std::optional<std::string> value = args_.Get(name);
  if (!value.has_value()) return fallback;
  uint64_t n = 0;
  if (!absl::SimpleAtoi(*value, &n) || n == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--", std::string(name), ": expected a positive number, not \"", *value, "\""));
  }
  return n;
}

absl::StatusOr<int> Context::ShardIndex(std::string_view shard) const {
  for (size_t s = 0; s < servers_.size(); ++s) {
    if (servers_[s] == shard) return static_cast<int>(s);
  }
  int index = 0;
  if (absl::SimpleAtoi(absl::string_view(shard.data(), shard.size()), &index) && index >= 0 &&
      index < static_cast<int>(servers_.size())) {
    return index;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "shard \"", absl::string_view(shard.data(), shard.size()), "\" is not one of --servers (",
      absl::StrJoin(servers_, ","), ") nor an index in 0..", servers_.size() - 1));
}

int ExitCodeOf(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return kExitOk;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
      return kExitUnreachable;
    default:
      return kExitFailed;
  }
}

int Context::Fail(const absl::Status& status) const {
  std::fprintf(stderr, "segctl: %s\n", status.ToString().c_str());
  return ExitCodeOf(status);
}

int Context::Usage(std::string_view message) const {
  std::fprintf(stderr, "segctl %s: %.*s\n(see 'segctl %s --help')\n", command_.Name().c_str(),
               static_cast<int>(message.size()), message.data(), command_.Name().c_str());
  return kExitUsage;
}

void InstallStopHandler() {
  struct sigaction action = {};
  action.sa_handler = OnStopSignal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

bool StopRequested() { return stop_requested.load(); }

}  // namespace segd::segctl
