#include "core/value.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace segd {

std::string_view ValueKindName(ValueKind kind) {
  switch (kind) {
    case ValueKind::kString:
      return "string";
    case ValueKind::kInt:
      return "int";
    case ValueKind::kFloat:
      return "float";
    case ValueKind::kBool:
      return "bool";
    case ValueKind::kTime:
      return "time";
    case ValueKind::kList:
      return "list";
  }
  return "?";
}

std::string ValueToString(const Value& v) {
  switch (v.kind()) {
    case ValueKind::kString:
      return absl::StrCat("\"", v.string_value(), "\"");
    case ValueKind::kInt:
      return absl::StrCat(v.int_value());
    case ValueKind::kFloat:
      return absl::StrCat(v.float_value());
    case ValueKind::kBool:
      return v.bool_value() ? "true" : "false";
    case ValueKind::kTime:
      return absl::StrCat("t:", v.time_value());
    case ValueKind::kList:
      return absl::StrCat("[",
                          absl::StrJoin(v.list_value(), ", ",
                                        [](std::string* out, const std::string& s) {
                                          absl::StrAppend(out, "\"", s, "\"");
                                        }),
                          "]");
  }
  return "?";
}

}  // namespace segd
