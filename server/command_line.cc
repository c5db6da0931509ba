#include "server/command_line.h"

#include <algorithm>
#include <cstddef>
#include <utility>

#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "core/text.h"

namespace segd::server {

void ParseCommandLine(int argc, char** argv, std::string_view flags_file, std::string_view usage) {
  absl::FlagsUsageConfig config;
  config.contains_help_flags = [file = std::string(flags_file)](absl::string_view path) {
    return absl::EndsWith(path, file);
  };
  absl::SetFlagsUsageConfig(config);
  absl::SetProgramUsageMessage(AsAbsl(usage));
  std::vector<std::string> storage;
  std::vector<char*> args = NormalizeFlagNames(argc, argv, &storage);
  absl::ParseCommandLine(static_cast<int>(args.size()), args.data());
}

std::vector<char*> NormalizeFlagNames(int argc, char** argv, std::vector<std::string>* storage) {
  storage->clear();
  storage->reserve(static_cast<size_t>(argc));  // no reallocation: the pointers stay valid
  std::vector<char*> out;
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    if (i > 0 && arg.size() > 2 && arg.compare(0, 2, "--") == 0) {
      const size_t end = std::min(arg.find('='), arg.size());
      std::replace(arg.begin() + 2, arg.begin() + static_cast<std::ptrdiff_t>(end), '-', '_');
    }
    storage->push_back(std::move(arg));
    out.push_back(storage->back().data());
  }
  return out;
}

}  // namespace segd::server
