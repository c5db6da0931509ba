#include "loadgen/resp.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <thread>

namespace segd::load::resp {
namespace {

TEST_CASE("AppendCommand writes an array of bulk strings", "[loadgen][resp]") {
  std::string out;
  AppendCommand({"SET", "k", ""}, &out);
  REQUIRE(out == "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n");
  out.clear();
  AppendBulk(std::string("a\r\nb", 4), &out);
  REQUIRE(out == std::string("$4\r\na\r\nb\r\n"));
}

TEST_CASE("ParseReply reads every reply type", "[loadgen][resp]") {
  Reply r;
  size_t used = 0;
  REQUIRE(ParseReply("+OK\r\nrest", &r, &used) == ParseResult::kOk);
  REQUIRE(r.type == '+');
  REQUIRE(r.text == "OK");
  REQUIRE(used == 5);
  REQUIRE(ParseReply("-ERR wrong type\r\n", &r, &used) == ParseResult::kOk);
  REQUIRE(r.type == '-');
  REQUIRE(r.text == "ERR wrong type");
  REQUIRE(ParseReply(":-42\r\n", &r, &used) == ParseResult::kOk);
  REQUIRE(r.type == ':');
  REQUIRE(r.text == "-42");
  REQUIRE(ParseReply("$5\r\na\r\nbc\r\n", &r, &used) == ParseResult::kOk);
  REQUIRE(r.text == "a\r\nbc");
  REQUIRE(used == 11);
  REQUIRE(ParseReply("$-1\r\n", &r, &used) == ParseResult::kOk);
  REQUIRE(r.null);
  const std::string array = "*3\r\n:1\r\n$2\r\nab\r\n*1\r\n+x\r\n";
  REQUIRE(ParseReply(array, &r, &used) == ParseResult::kOk);
  REQUIRE(r.type == '*');
  REQUIRE(r.text == "3");
  REQUIRE(used == array.size());
}

TEST_CASE("ParseReply tells incomplete from malformed", "[loadgen][resp]") {
  Reply r;
  size_t used = 0;
  for (const char* partial : {"", "+OK", "+OK\r", "$5\r\nab", "$5\r\nabcde\r", "*2\r\n:1\r\n"}) {
    INFO(partial);
    REQUIRE(ParseReply(partial, &r, &used) == ParseResult::kIncomplete);
  }
  for (const char* bad : {"?x\r\n", "$x\r\n", "$-2\r\n", "$3\r\nabcd\r\n", "*z\r\n"}) {
    INFO(bad);
    REQUIRE(ParseReply(bad, &r, &used) == ParseResult::kMalformed);
  }
}

// A one-connection server on a loopback port: reads `expect` bytes, then answers with
// `reply` in small pieces, so that the client must read replies across several reads.
class FakeRedis {
 public:
  FakeRedis(size_t expect, std::string reply) {
    listener_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(listen(listener_, 1) == 0);
    socklen_t len = sizeof addr;
    getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this, expect, reply = std::move(reply)] {
      const int fd = accept(listener_, nullptr, nullptr);
      std::string got(expect, '\0');
      size_t have = 0;
      while (have < expect) {
        const ssize_t n = read(fd, got.data() + have, expect - have);
        if (n <= 0) break;
        have += static_cast<size_t>(n);
      }
      received_ = got.substr(0, have);
      for (size_t i = 0; i < reply.size(); i += 7) {
        (void)!write(fd, reply.data() + i, std::min<size_t>(7, reply.size() - i));
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      close(fd);
    });
  }
  ~FakeRedis() {
    thread_.join();
    close(listener_);
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  const std::string& received() const { return received_; }  // after the destructor's join

 private:
  int listener_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::string received_;
};

TEST_CASE("Connection pipelines commands and counts error replies", "[loadgen][resp]") {
  std::string commands;
  AppendCommand({"HSET", "u1", "plan", "pro"}, &commands);
  AppendCommand({"LPUSH", "u1:events", "e"}, &commands);
  AppendCommand({"LTRIM", "u1:events", "0", "1023"}, &commands);
  std::string received;
  {
    FakeRedis server(commands.size(), ":1\r\n:3\r\n-ERR no\r\n+OK\r\n");
    absl::StatusOr<std::unique_ptr<Connection>> c =
        Connection::Connect(server.address(), absl::Seconds(5));
    REQUIRE(c.ok());
    REQUIRE((*c)->Send(commands).ok());
    uint64_t errors = 0;
    std::string first;
    REQUIRE((*c)->ReadReplies(3, &errors, &first).ok());
    REQUIRE(errors == 1);
    REQUIRE(first == "ERR no");
    // The connection closes after the fourth reply: a fifth read fails.
    REQUIRE((*c)->ReadReplies(1, &errors, &first).ok());
    REQUIRE_FALSE((*c)->ReadReplies(1, &errors, &first).ok());
  }
}

TEST_CASE("Connection::Connect reports an unreachable address", "[loadgen][resp]") {
  // A port just released: nothing listens there.
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  absl::StatusOr<std::unique_ptr<Connection>> c =
      Connection::Connect("127.0.0.1:" + std::to_string(ntohs(addr.sin_port)), absl::Seconds(2));
  REQUIRE_FALSE(c.ok());
  REQUIRE(c.status().code() == absl::StatusCode::kUnavailable);
  REQUIRE_FALSE(Connection::Connect("no-port", absl::Seconds(1)).ok());
}

}  // namespace
}  // namespace segd::load::resp
