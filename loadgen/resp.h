#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

// A minimal Redis client: RESP2 (https://redis.io/docs/reference/protocol-spec/) over one
// blocking TCP connection, enough to pipeline commands and count their replies.
namespace segd::load::resp {

// Appends `args` as one command (an array of bulk strings).
void AppendCommand(std::initializer_list<std::string_view> args, std::string* out);
// Appends `s` as a bulk string ($len\r\n s \r\n): for commands assembled piece by piece
// after an array header "*n\r\n".
void AppendBulk(std::string_view s, std::string* out);

// One reply. Arrays are parsed through but only their element count is kept.
struct Reply {
  char type = 0;      // '+' status, '-' error, ':' integer, '$' bulk, '*' array
  std::string text;   // status, error, bulk contents, the integer's digits, the array size
  bool null = false;  // $-1 or *-1
};

enum class ParseResult { kOk, kIncomplete, kMalformed };

// Parses one reply from the front of `bytes`; on kOk sets *consumed to its length.
ParseResult ParseReply(std::string_view bytes, Reply* reply, size_t* consumed);

// Thread safety: one thread at a time per connection.
class Connection {
 public:
  // `address` is host:port.
  static absl::StatusOr<std::unique_ptr<Connection>> Connect(const std::string& address,
                                                             absl::Duration timeout);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  absl::Status Send(std::string_view bytes);
  // Reads `n` replies; counts the error replies into *errors and keeps the first one's
  // text in *first_error (when empty).
  absl::Status ReadReplies(size_t n, uint64_t* errors, std::string* first_error);
  // Sends one command and returns its reply.
  absl::StatusOr<Reply> Call(std::initializer_list<std::string_view> args);

 private:
  Connection(int fd, std::string address) : fd_(fd), address_(std::move(address)) {}
  absl::Status ReadOne(Reply* reply);

  const int fd_;
  const std::string address_;
  std::string in_;  // bytes read and not yet parsed, from in_start_
  size_t in_start_ = 0;
};

}  // namespace segd::load::resp
