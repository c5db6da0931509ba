#include "client/segctl/args.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace segd::segctl {

std::string CanonicalFlagName(std::string_view name) {
  std::string out(name);
  std::replace(out.begin(), out.end(), '_', '-');
  return out;
}

absl::StatusOr<Args> Args::Parse(const std::vector<std::string>& argv,
                                 const std::vector<FlagSpec>& specs) {
  Args args;
  bool flags_done = false;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& arg = argv[i];
    if (flags_done || arg.size() < 2 || arg[0] != '-' || arg == "-") {
      args.positional_.push_back(arg);
      continue;
    }
    if (arg == "--") {
      flags_done = true;
      continue;
    }
    if (arg[1] != '-') {
      if (arg == "-h") {
        args.flags_["help"] = "";
        continue;
      }
      return absl::InvalidArgumentError(
          absl::StrCat("unknown option ", arg, " (flags are spelled --name)"));
    }
    const size_t eq = arg.find('=');
    const std::string name =
        CanonicalFlagName(arg.substr(2, eq == std::string::npos ? arg.npos : eq - 2));
    const auto spec =
        std::find_if(specs.begin(), specs.end(), [&](const FlagSpec& s) { return s.name == name; });
    if (spec == specs.end())
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
    if (spec->value.empty()) {
      if (eq != std::string::npos) {
        return absl::InvalidArgumentError(absl::StrCat("--", name, " takes no value"));
      }
      args.flags_[name] = "";
      continue;
    }
    if (eq != std::string::npos) {
      args.flags_[name] = arg.substr(eq + 1);
    } else if (i + 1 < argv.size()) {
      args.flags_[name] = argv[++i];
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("--", name, " needs a value (", spec->value, ")"));
    }
  }
  return args;
}

std::optional<std::string> Args::Get(std::string_view name) const {
  const auto it = flags_.find(std::string(name));
  if (it == flags_.end()) return std::nullopt;
  return it->second;
}

std::string Args::GetOr(std::string_view name, std::string fallback) const {
  std::optional<std::string> value = Get(name);
  return value.has_value() ? *std::move(value) : std::move(fallback);
}

}  // namespace segd::segctl
