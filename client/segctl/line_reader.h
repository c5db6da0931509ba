#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace segd::segctl {

// Reads a file, or stdin ("-"), one line at a time: how segctl reads JSON lines.
//
// Thread safety: not thread-safe.
class LineReader {
 public:
  // NOT_FOUND etc., naming the file, if it cannot be opened.
  static absl::StatusOr<std::unique_ptr<LineReader>> Open(const std::string& path);
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  // The next line, without its line end, valid until the next call; false at the end of
  // the input or on a read error (see status()).
  bool Next(std::string_view* line);

  // The number (from 1) of the line Next returned last.
  uint64_t line_number() const { return line_number_; }
  // The share of the input read, in [0, 1]; negative when its size is unknown (a pipe).
  double fraction() const;
  // OK, or the read error that ended the input, naming the file.
  const absl::Status& status() const { return status_; }
  // The path, or "stdin".
  const std::string& name() const { return name_; }

 private:
  LineReader(std::FILE* file, std::string name, uint64_t size);

  std::FILE* file_;
  const std::string name_;
  const uint64_t size_;  // 0: unknown
  char* buffer_ = nullptr;
  size_t capacity_ = 0;
  uint64_t bytes_read_ = 0;
  uint64_t line_number_ = 0;
  absl::Status status_;
};

}  // namespace segd::segctl
