#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace segd::server {

// Parses the command line of a segd executable with absl flags: flag names may be
// spelled with dashes or underscores (SPEC and the README use dashes, --start-time; absl
// names flags with underscores), `--help` lists the flags defined in the source file
// whose path ends with `flags_file` (absl would look for one named like the program),
// under `usage`. Exits on a bad flag or after --help, as absl does.
void ParseCommandLine(int argc, char** argv, std::string_view flags_file, std::string_view usage);

// Returns argv with the name part of every --flag[=value] rewritten to underscores
// (values untouched). The strings live in `storage`, which must outlive the result.
std::vector<char*> NormalizeFlagNames(int argc, char** argv, std::vector<std::string>* storage);

}  // namespace segd::server
