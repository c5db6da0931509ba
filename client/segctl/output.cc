#include "client/segctl/output.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <limits>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"

namespace segd::segctl {
namespace {

std::string Json(const google::protobuf::Message& message, bool all_fields) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = all_fields;
  std::string out;
  // Printing a valid message cannot fail; a failure would be a bug in protobuf.
  const auto status = google::protobuf::util::MessageToJsonString(message, &out, options);
  if (!status.ok()) out = absl::StrCat("{\"error\": \"", absl::CEscape(status.ToString()), "\"}");
  return out;
}

// Display width of UTF-8 text: code points (good enough for keys and rules).
size_t Width(const std::string& s) {
  return static_cast<size_t>(std::count_if(
      s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

}  // namespace

std::string ToJson(const google::protobuf::Message& message) { return Json(message, true); }

std::string ToCompactJson(const google::protobuf::Message& message) { return Json(message, false); }

void PrintJson(const google::protobuf::Message& message, std::FILE* out) {
  const std::string json = ToJson(message);
  std::fwrite(json.data(), 1, json.size(), out);
  std::fputc('\n', out);
}

absl::Status FromJson(std::string_view json, google::protobuf::Message* message) {
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), message, options);
  if (status.ok()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("not a JSON ", message->GetDescriptor()->name(), ": ",
                   std::string(status.message().data(), status.message().size())));
}

Table::Table(std::vector<std::string> header, std::vector<size_t> right)
    : right_(std::move(right)) {
  rows_.push_back(std::move(header));
}

void Table::Add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }

void Table::Print(std::FILE* out) const {
  std::vector<size_t> widths;
  for (const auto& row : rows_) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (size_t c = 0; c < row.size(); ++c) widths[c] = std::max(widths[c], Width(row[c]));
  }
  for (const auto& row : rows_) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) {
      const size_t pad = widths[c] - Width(row[c]);
      const bool right = std::find(right_.begin(), right_.end(), c) != right_.end();
      const bool last = c + 1 == row.size();
      if (right) line.append(pad, ' ');
      line += row[c];
      if (!right && !last) line.append(pad, ' ');
      if (!last) line += "  ";
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    std::fprintf(out, "%s\n", line.c_str());
  }
}

std::string FormatTime(int64_t ms) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::FromUnixMillis(ms), absl::UTCTimeZone());
}

std::string FormatCount(uint64_t n) {
  std::string digits = absl::StrCat(n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::string FormatBytes(uint64_t bytes) {
  static const char* const kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  size_t unit = 0;
  while (value >= 1024 && unit + 1 < std::size(kUnits)) {
    value /= 1024;
    ++unit;
  }
  if (unit == 0) return absl::StrCat(bytes, " B");
  return absl::StrFormat("%.1f %s", value, kUnits[unit]);
}

std::string FormatPercent(uint64_t part, uint64_t total) {
  if (total == 0) return "-";
  return absl::StrFormat("%.1f%%", 100.0 * static_cast<double>(part) / static_cast<double>(total));
}

std::string ValueKind(const v1::Value& value) {
  switch (value.kind_case()) {
    case v1::Value::kStringValue:
      return "string";
    case v1::Value::kIntValue:
      return "int";
    case v1::Value::kFloatValue:
      return "float";
    case v1::Value::kBoolValue:
      return "bool";
    case v1::Value::kTimeValue:
      return "time";
    case v1::Value::kListValue:
      return "list";
    case v1::Value::KIND_NOT_SET:
      break;
  }
  return "none";
}

std::string FormatValue(const v1::Value& value) {
  switch (value.kind_case()) {
    case v1::Value::kStringValue:
      return absl::StrCat("\"", absl::Utf8SafeCEscape(value.string_value()), "\"");
    case v1::Value::kIntValue:
      return absl::StrCat(value.int_value());
    case v1::Value::kFloatValue:
      return absl::StrCat(value.float_value());
    case v1::Value::kBoolValue:
      return value.bool_value() ? "true" : "false";
    case v1::Value::kTimeValue:
      return FormatTime(value.time_value());
    case v1::Value::kListValue: {
      std::vector<std::string> items;
      for (const std::string& s : value.list_value().values()) {
        items.push_back(absl::StrCat("\"", absl::Utf8SafeCEscape(s), "\""));
      }
      return absl::StrCat("[", absl::StrJoin(items, ", "), "]");
    }
    case v1::Value::KIND_NOT_SET:
      break;
  }
  return "(none)";
}

absl::StatusOr<int64_t> ParseDurationMs(std::string_view text) {
  const auto bad = [&] {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", std::string(text),
                     "\" is not a duration: expected an integer and a unit (ms s m h d w), as 30s "
                     "or 7d"));
  };
  size_t digits = 0;
  while (digits < text.size() && absl::ascii_isdigit(static_cast<unsigned char>(text[digits]))) {
    ++digits;
  }
  if (digits == 0) return bad();
  int64_t n = 0;
  if (!absl::SimpleAtoi(absl::string_view(text.data(), digits), &n)) return bad();
  const std::string_view unit = text.substr(digits);
  int64_t scale = 0;
  if (unit == "ms") {
    scale = 1;
  } else if (unit == "s") {
    scale = 1000;
  } else if (unit == "m") {
    scale = 60'000;
  } else if (unit == "h") {
    scale = 3'600'000;
  } else if (unit == "d") {
    scale = 86'400'000;
  } else if (unit == "w") {
    scale = 7 * 86'400'000LL;
  } else {
    return bad();
  }
  if (n > std::numeric_limits<int64_t>::max() / scale) return bad();
  return n * scale;
}

absl::StatusOr<std::string> ReadText(const std::string& path) {
  if (path == "-") {
    return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int error = errno;
    return absl::Status(
        error == ENOENT ? absl::StatusCode::kNotFound : absl::StatusCode::kFailedPrecondition,
        absl::StrCat(path, ": ", std::strerror(error)));
  }
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace segd::segctl
