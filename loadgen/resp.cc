#include "loadgen/resp.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace segd::load::resp {
namespace {

constexpr size_t kReadChunk = 64 * 1024;
// Arrays nest at most this deep here (our commands get no arrays at all).
constexpr int kMaxDepth = 8;

void AppendNumber(int64_t n, std::string* out) {
  char buf[24];
  const auto end = std::to_chars(buf, buf + sizeof buf, n).ptr;
  out->append(buf, end);
}

// The line at the front of `bytes` (without \r\n), and its length with \r\n.
bool Line(std::string_view bytes, std::string_view* line, size_t* with_crlf) {
  const size_t end = bytes.find("\r\n");
  if (end == std::string_view::npos) return false;
  *line = bytes.substr(0, end);
  *with_crlf = end + 2;
  return true;
}

bool ParseInt(std::string_view s, int64_t* n) {
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *n);
  return ec == std::errc() && end == s.data() + s.size();
}

ParseResult Parse(std::string_view bytes, Reply* reply, size_t* consumed, int depth) {
  if (bytes.empty()) return ParseResult::kIncomplete;
  if (depth > kMaxDepth) return ParseResult::kMalformed;
  const char type = bytes[0];
  std::string_view line;
  size_t line_size;
  if (!Line(bytes.substr(1), &line, &line_size)) return ParseResult::kIncomplete;
  size_t used = 1 + line_size;
  if (reply != nullptr) {
    reply->type = type;
    reply->null = false;
  }
  switch (type) {
    case '+':
    case '-':
    case ':':
      if (reply != nullptr) reply->text.assign(line);
      break;
    case '$': {
      int64_t n;
      if (!ParseInt(line, &n) || n < -1) return ParseResult::kMalformed;
      if (n == -1) {
        if (reply != nullptr) reply->null = true;
        break;
      }
      if (bytes.size() < used + static_cast<size_t>(n) + 2) return ParseResult::kIncomplete;
      if (bytes.substr(used + static_cast<size_t>(n), 2) != "\r\n") return ParseResult::kMalformed;
      if (reply != nullptr) reply->text.assign(bytes.substr(used, static_cast<size_t>(n)));
      used += static_cast<size_t>(n) + 2;
      break;
    }
    case '*': {
      int64_t n;
      if (!ParseInt(line, &n) || n < -1) return ParseResult::kMalformed;
      if (reply != nullptr) {
        reply->text.assign(line);
        reply->null = n == -1;
      }
      for (int64_t i = 0; i < n; ++i) {
        size_t element;
        const ParseResult r = Parse(bytes.substr(used), nullptr, &element, depth + 1);
        if (r != ParseResult::kOk) return r;
        used += element;
      }
      break;
    }
    default:
      return ParseResult::kMalformed;
  }
  *consumed = used;
  return ParseResult::kOk;
}

}  // namespace

void AppendBulk(std::string_view s, std::string* out) {
  out->push_back('$');
  AppendNumber(static_cast<int64_t>(s.size()), out);
  out->append("\r\n");
  out->append(s);
  out->append("\r\n");
}

void AppendCommand(std::initializer_list<std::string_view> args, std::string* out) {
  out->push_back('*');
  AppendNumber(static_cast<int64_t>(args.size()), out);
  out->append("\r\n");
  for (std::string_view arg : args) AppendBulk(arg, out);
}

ParseResult ParseReply(std::string_view bytes, Reply* reply, size_t* consumed) {
  return Parse(bytes, reply, consumed, 0);
}

absl::StatusOr<std::unique_ptr<Connection>> Connection::Connect(const std::string& address,
                                                                absl::Duration timeout) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size()) {
    return absl::InvalidArgumentError(absl::StrCat(address, ": expected host:port"));
  }
  std::string host = address.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  const std::string port = address.substr(colon + 1);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (const int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    return absl::UnavailableError(absl::StrCat(address, ": ", gai_strerror(rc)));
  }
  std::string last_error = "no address";
  int fd = -1;
  for (addrinfo* a = found; a != nullptr && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
    if (fd < 0) {
      last_error = std::strerror(errno);
      continue;
    }
    // A non-blocking connect bounded by `timeout`, then back to blocking I/O.
    int rc = connect(fd, a->ai_addr, a->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      rc = poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout)));
      int err = rc == 1 ? 0 : ETIMEDOUT;
      socklen_t len = sizeof err;
      if (rc == 1) getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      rc = err == 0 ? 0 : -1;
      errno = err;
    }
    if (rc != 0) {
      last_error = std::strerror(errno);
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(found);
  if (fd < 0) return absl::UnavailableError(absl::StrCat(address, ": ", last_error));
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL, 0) & ~O_NONBLOCK);  // blocking from here on
  return std::unique_ptr<Connection>(new Connection(fd, address));
}

Connection::~Connection() { close(fd_); }

absl::Status Connection::Send(std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::UnavailableError(absl::StrCat(address_, ": send: ", std::strerror(errno)));
    }
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::Status Connection::ReadOne(Reply* reply) {
  while (true) {
    size_t consumed = 0;
    const ParseResult r = ParseReply(std::string_view(in_).substr(in_start_), reply, &consumed);
    if (r == ParseResult::kOk) {
      in_start_ += consumed;
      return absl::OkStatus();
    }
    if (r == ParseResult::kMalformed) {
      return absl::DataLossError(absl::StrCat(address_, ": malformed reply"));
    }
    // Incomplete: compact, then read more.
    if (in_start_ > 0) {
      in_.erase(0, in_start_);
      in_start_ = 0;
    }
    const size_t old = in_.size();
    in_.resize(old + kReadChunk);
    ssize_t n;
    do {
      n = recv(fd_, in_.data() + old, kReadChunk, 0);
    } while (n < 0 && errno == EINTR);
    in_.resize(old + static_cast<size_t>(std::max<ssize_t>(n, 0)));
    if (n == 0) return absl::UnavailableError(absl::StrCat(address_, ": connection closed"));
    if (n < 0) {
      return absl::UnavailableError(absl::StrCat(address_, ": recv: ", std::strerror(errno)));
    }
  }
}

absl::Status Connection::ReadReplies(size_t n, uint64_t* errors, std::string* first_error) {
  Reply reply;
  for (size_t i = 0; i < n; ++i) {
    if (absl::Status s = ReadOne(&reply); !s.ok()) return s;
    if (reply.type == '-') {
      ++*errors;
      if (first_error->empty()) *first_error = reply.text;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Reply> Connection::Call(std::initializer_list<std::string_view> args) {
  std::string command;
  AppendCommand(args, &command);
  if (absl::Status s = Send(command); !s.ok()) return s;
  Reply reply;
  if (absl::Status s = ReadOne(&reply); !s.ok()) return s;
  return reply;
}

}  // namespace segd::load::resp
