#pragma once

#include <google/protobuf/message.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "segd/v1/segd.pb.h"

// What segctl prints and reads: JSON through protobuf's JSON mapping, aligned tables,
// and the human spelling of times, counts, sizes and values.
namespace segd::segctl {

// One line of JSON for `message`: field names as in the .proto (`member_count`), every
// field present, int64 as strings (protobuf's JSON mapping).
std::string ToJson(const google::protobuf::Message& message);
// The same, but fields at their default value are left out (profiles in export files).
std::string ToCompactJson(const google::protobuf::Message& message);
// Writes ToJson(message) and a newline to `out`.
void PrintJson(const google::protobuf::Message& message, std::FILE* out = stdout);
// Parses one JSON object into `message` (either spelling of field names). Unknown fields
// are errors, so that a misspelt field does not pass silently.
absl::Status FromJson(std::string_view json, google::protobuf::Message* message);

// A table printed with aligned columns: the first row is the header; columns listed in
// `right` are right-aligned (numbers).
class Table {
 public:
  explicit Table(std::vector<std::string> header, std::vector<size_t> right = {});
  void Add(std::vector<std::string> row);
  void Print(std::FILE* out = stdout) const;

 private:
  std::vector<std::vector<std::string>> rows_;
  std::vector<size_t> right_;
};

// 2023-11-14T22:13:20.000Z (UTC, milliseconds).
std::string FormatTime(int64_t ms);
// 1,234,567.
std::string FormatCount(uint64_t n);
// 12.3 MiB.
std::string FormatBytes(uint64_t bytes);
// A percentage with one decimal, "-" when `total` is 0.
std::string FormatPercent(uint64_t part, uint64_t total);
// A Value as a human reads it: strings quoted, times as FormatTime, lists in brackets.
std::string FormatValue(const v1::Value& value);
// The kind of a Value: string, int, float, bool, time, list (or "none").
std::string ValueKind(const v1::Value& value);

// A duration in the rule language's syntax (an integer and a unit: ms s m h d w, e.g.
// 30s, 7d), as milliseconds. INVALID_ARGUMENT otherwise.
absl::StatusOr<int64_t> ParseDurationMs(std::string_view text);

// The whole of a file, or of stdin for "-". NOT_FOUND / PERMISSION_DENIED / ... naming
// the file.
absl::StatusOr<std::string> ReadText(const std::string& path);

}  // namespace segd::segctl
