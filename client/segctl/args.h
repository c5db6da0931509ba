#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace segd::segctl {

// A flag a command takes: `--name=VALUE` or `--name VALUE` when `value` names its value,
// else a switch (`--name`). Names are spelled with dashes; underscores are accepted too.
struct FlagSpec {
  std::string name;   // without the leading dashes
  std::string value;  // e.g. "FILE"; empty: a switch
  std::string help;
};

// A command line split into flags and positional arguments, checked against the flags a
// command takes. `--` ends the flags: what follows is positional, even if it starts with
// a dash.
class Args {
 public:
  // INVALID_ARGUMENT naming the offending argument: an unknown flag, a switch given a
  // value, a flag missing its value.
  static absl::StatusOr<Args> Parse(const std::vector<std::string>& argv,
                                    const std::vector<FlagSpec>& specs);

  bool Has(std::string_view name) const { return flags_.count(std::string(name)) > 0; }
  // The value of the last occurrence of the flag, if given.
  std::optional<std::string> Get(std::string_view name) const;
  std::string GetOr(std::string_view name, std::string fallback) const;
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::map<std::string, std::string> flags_;  // name (dashes) -> value ("" for switches)
  std::vector<std::string> positional_;
};

// Flag names as written in specs and help: underscores become dashes.
std::string CanonicalFlagName(std::string_view name);

}  // namespace segd::segctl
