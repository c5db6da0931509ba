#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/cluster_client.h"
#include "client/segctl/args.h"

namespace segd::segctl {

// segctl's exit codes (also in `segctl help` and the README).
enum ExitCode : int {
  kExitOk = 0,
  kExitFailed = 1,       // a server refused or failed the operation, or the input was bad
  kExitUsage = 2,        // the command line was wrong: unknown command or flag, bad value
  kExitUnreachable = 3,  // a shard could not be reached (UNAVAILABLE, DEADLINE_EXCEEDED)
};

class Context;

// One subcommand: `segctl <path...> [flags] <args>`.
struct Command {
  std::vector<std::string> path;  // e.g. {"segment", "put"}
  std::string synopsis;           // its arguments, e.g. "ID [RULE]"
  std::string summary;            // one line, for `segctl help`
  std::string details;            // what --help adds: behaviour, output, examples
  std::vector<FlagSpec> flags;    // its own; the global flags are added by main
  size_t min_args = 0;
  size_t max_args = 0;       // kAnyNumber: no limit
  bool uses_cluster = true;  // main connects a ClusterClient to --servers before run
  int (*run)(Context& context) = nullptr;

  static constexpr size_t kAnyNumber = SIZE_MAX;
  std::string Name() const;  // "segment put"
};

// The command tables, one per file.
std::vector<Command> SegmentCommands();
std::vector<Command> QueryCommands();
std::vector<Command> ChangeCommands();
std::vector<Command> DataCommands();
std::vector<Command> RecoverCommands();
std::vector<Command> AdminCommands();
std::vector<Command> DemoCommands();

// Flags every command takes.
const std::vector<FlagSpec>& GlobalFlags();

// What a command runs with: its parsed arguments, the global options, and the cluster.
class Context {
 public:
  Context(const Command& command, Args args, std::vector<std::string> servers);
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  const Command& command() const { return command_; }
  const Args& args() const { return args_; }
  const std::vector<std::string>& positional() const { return args_.positional(); }
  const std::vector<std::string>& servers() const { return servers_; }

  // --json: machine-readable output (protobuf's JSON mapping).
  bool json() const { return args_.Has("json"); }
  // Whether to draw progress lines on stderr: --progress=on|off|auto (auto: stderr is a
  // terminal).
  bool progress() const { return progress_; }
  const client::ClusterOptions& options() const { return options_; }

  // The cluster of --servers. REQUIRES: command().uses_cluster and Init succeeded.
  client::ClusterClient& cluster() { return *cluster_; }
  // A client of one server (a cluster of one), with the same options.
  absl::StatusOr<std::unique_ptr<client::ClusterClient>> ClientOf(const std::string& server) const;
  // Flag `name` as a positive integer; `fallback` when it is absent. INVALID_ARGUMENT,
  // naming the flag, when it is not a positive integer.
  absl::StatusOr<uint64_t> PositiveFlag(std::string_view name, uint64_t fallback) const;
  // The index in servers() of a shard named by its address or its index.
  absl::StatusOr<int> ShardIndex(std::string_view shard) const;

  // Reads global flags (--timeout, --progress) and connects the cluster client.
  // INVALID_ARGUMENT for a bad --servers list or flag value: a usage error.
  absl::Status Init();

  // Prints "segctl: <status>" on stderr and returns its exit code.
  int Fail(const absl::Status& status) const;
  // Prints a usage error about this command and returns kExitUsage.
  int Usage(std::string_view message) const;

 private:
  const Command& command_;
  Args args_;
  std::vector<std::string> servers_;
  bool progress_ = false;
  client::ClusterOptions options_;
  std::unique_ptr<client::ClusterClient> cluster_;
};

// The exit code for a failed operation's status.
int ExitCodeOf(const absl::Status& status);

// Set by SIGINT/SIGTERM once InstallStopHandler ran: long-running commands (subscribe,
// demo-traffic) poll it and stop cleanly.
void InstallStopHandler();
bool StopRequested();

}  // namespace segd::segctl
