#pragma once

#include <string>
#include <vector>

namespace segd::server {

// SPEC and the README spell flags with dashes (--start-time); absl names them with
// underscores. Returns argv with the name part of every --flag[=value] rewritten to
// underscores (values untouched), so both spellings work. The strings live in
// `storage`, which must outlive the result.
std::vector<char*> NormalizeFlagNames(int argc, char** argv, std::vector<std::string>* storage);

}  // namespace segd::server
