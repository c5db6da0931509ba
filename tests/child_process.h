#pragma once

// Child processes of the tests that run the real binaries — segd shards and segctl
// runs — with their output in files, and a temporary directory. A child dies with the test: it is killed
// on destruction (Catch2's failed REQUIREs unwind), and by PR_SET_PDEATHSIG if the test
// process itself dies.
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace segd::testing {

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

inline void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  REQUIRE(out.good());
}

// A fresh directory under /tmp, removed with everything in it on destruction unless
// SEGD_KEEP_LOG is set.
class TempDir {
 public:
  TempDir() {
    std::string pattern = "/tmp/segd_test.XXXXXX";
    REQUIRE(mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~TempDir() {
    if (getenv("SEGD_KEEP_LOG") == nullptr) {
      std::error_code ignored;
      std::filesystem::remove_all(path_, ignored);
    }
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A child process: stdin from a file (or /dev/null), stdout and stderr to files.
class ChildProcess {
 public:
  ChildProcess(const std::string& binary, const std::vector<std::string>& args,
               const std::string& out_path, const std::string& err_path,
               const std::string& in_path = "/dev/null")
      : out_path_(out_path), err_path_(err_path) {
    std::vector<std::string> argv = {binary};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<char*> raw;
    for (std::string& a : argv) raw.push_back(a.data());
    raw.push_back(nullptr);
    const pid_t parent = getpid();
    // Between fork and exec the child only makes async-signal-safe calls.
    pid_ = fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(126);  // the test died before prctl
      const int in = open(in_path.c_str(), O_RDONLY);
      const int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      const int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (in < 0 || out < 0 || err < 0) _exit(126);
      dup2(in, 0);
      dup2(out, 1);
      dup2(err, 2);
      execv(raw[0], raw.data());
      _exit(127);
    }
  }
  ~ChildProcess() { Kill(SIGKILL); }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // The child's pid; -1 once reaped.
  pid_t pid() const { return pid_; }

  // Sends `sig` without waiting (Wait reaps the child).
  void Signal(int sig) {
    if (pid_ > 0) kill(pid_, sig);
  }

  // Sends `sig` and reaps the child (unless it is already reaped).
  void Kill(int sig) {
    if (pid_ <= 0) return;
    kill(pid_, sig);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  // Waits up to `timeout` for the exit: its code, 128 + the signal that ended it, or -1
  // on timeout (the child is then killed).
  int Wait(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (pid_ > 0) {
      int status = 0;
      const pid_t done = waitpid(pid_, &status, WNOHANG);
      if (done == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      if (std::chrono::steady_clock::now() > deadline) {
        Kill(SIGKILL);
        return -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return -1;
  }

  // Whether the child has not exited (reaps it if it has).
  bool running() {
    if (pid_ > 0 && waitpid(pid_, nullptr, WNOHANG) == pid_) pid_ = -1;
    return pid_ > 0;
  }
  std::string Stdout() const { return ReadFile(out_path_); }
  std::string Stderr() const { return ReadFile(err_path_); }

 private:
  pid_t pid_ = -1;
  std::string out_path_;
  std::string err_path_;
};

// What a finished run printed, and how it exited.
struct Run {
  int exit_code = -1;
  std::string out;
  std::string err;
};

inline std::ostream& operator<<(std::ostream& os, const Run& run) {
  return os << "exit " << run.exit_code << "\n--- stdout:\n"
            << run.out << "--- stderr:\n"
            << run.err;
}

// Runs `binary` with `args` and `input` on its stdin to its exit; waits up to 60 s.
inline Run RunProcess(const std::string& binary, const TempDir& dir,
                      const std::vector<std::string>& args, const std::string& input = "") {
  static int runs = 0;
  const std::string base = dir.File(std::filesystem::path(binary).filename().string() + "." +
                                    std::to_string(++runs));
  WriteFile(base + ".in", input);
  ChildProcess child(binary, args, base + ".out", base + ".err", base + ".in");
  Run run;
  run.exit_code = child.Wait(std::chrono::seconds(60));
  run.out = child.Stdout();
  run.err = child.Stderr();
  return run;
}

#ifdef SEGCTL_BINARY  // defined by the tests that run segctl
inline Run RunSegctl(const TempDir& dir, const std::vector<std::string>& args,
                     const std::string& input = "") {
  return RunProcess(SEGCTL_BINARY, dir, args, input);
}
#endif

// A real segd shard (SEGD_BINARY) on loopback, its log in `dir`.
class SegdProcess {
 public:
  // `port` 0: any free port (Port() tells which).
  SegdProcess(const TempDir& dir, const std::string& name, int port,
              const std::vector<std::string>& flags) {
    static int starts = 0;
    log_ = dir.File(name + "." + std::to_string(++starts) + ".log");
    std::vector<std::string> args = {"--listen=127.0.0.1:" + std::to_string(port)};
    args.insert(args.end(), flags.begin(), flags.end());
    process_ = std::make_unique<ChildProcess>(SEGD_BINARY, args, log_, log_);
    port_ = WaitForStart();
  }

  int port() const { return port_; }
  pid_t pid() const { return process_->pid(); }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string Log() const { return ReadFile(log_); }
  // kill -9: no drain, nothing saved.
  void KillHard() { process_->Kill(SIGKILL); }
  // Sends `sig` and waits up to `timeout` for the exit: its code, 128 + the signal that
  // ended it, or -1 on timeout (the process is then killed).
  int Stop(int sig, std::chrono::milliseconds timeout) {
    process_->Signal(sig);
    return process_->Wait(timeout);
  }

 private:
  // The port from the start-up line, waiting up to 30 s.
  int WaitForStart() {
    const std::regex started(R"(segd started: .* port=(\d+) )");
    for (int i = 0; i < 3000; ++i) {
      std::smatch m;
      const std::string log = ReadFile(log_);
      if (std::regex_search(log, m, started)) return std::stoi(m[1]);
      if (!process_->running()) FAIL("segd exited at start: " << ReadFile(log_));
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    FAIL("segd did not start: " << ReadFile(log_));
    return 0;
  }

  std::string log_;
  std::unique_ptr<ChildProcess> process_;
  int port_ = 0;
};

}  // namespace segd::testing
