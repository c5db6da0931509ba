#pragma once

#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace segd::load {

// The figures of a segload run, by the keys of its JSON output. Every key segload can
// report is declared up front (Report::Schema), so the JSON always has the same fields
// (null where a phase did not run) and the table the same order and wording.
//
// Thread safety: none.
class Report {
 public:
  struct Field {
    std::string_view key;    // JSON name
    std::string_view phase;  // the phase that measures it
    std::string_view label;  // for the table
    std::string_view unit;
  };
  static const std::vector<Field>& Schema();

  // REQUIRES: `key` is in Schema().
  void Set(std::string_view key, double value);
  std::optional<double> Get(std::string_view key) const;

  // Configuration echoed into the JSON's "config" object, in order (values are JSON).
  void SetConfig(std::string key, std::string json_value);
  // Per-server lines for the JSON's "servers" array (each a JSON object).
  void AddServer(std::string json_object);
  // A problem worth reading (a phase failed, updates were rejected): printed after the
  // table and listed in the JSON's "errors".
  void AddError(std::string message);
  const std::vector<std::string>& errors() const { return errors_; }
  // A caveat on the figures (a target rate not sustained): printed after the table and
  // listed in the JSON's "warnings".
  void AddWarning(std::string message);

  std::string ToJson() const;
  void PrintTable(std::FILE* out) const;

 private:
  std::map<std::string, double, std::less<>> values_;
  std::vector<std::pair<std::string, std::string>> config_;
  std::vector<std::string> servers_;
  std::vector<std::string> errors_;
  std::vector<std::string> warnings_;
};

// JSON string literal of `s` (quoted, escaped).
std::string JsonString(std::string_view s);
// `v` in JSON: an integer when it is one (and exactly representable), else %.10g.
std::string JsonNumber(double v);
// `v` for people: thousands separators from 1,000 up, else 4 significant digits.
std::string HumanNumber(double v);

}  // namespace segd::load
