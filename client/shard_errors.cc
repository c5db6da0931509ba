#include "client/shard_errors.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace segd::client {
namespace {

absl::string_view AsAbsl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

}  // namespace

absl::Status FromGrpc(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

absl::Status AtShard(std::string_view operation, std::string_view address,
                     const absl::Status& status) {
  if (status.ok()) return status;
  return absl::Status(status.code(), absl::StrCat(AsAbsl(operation), " on ", AsAbsl(address), ": ",
                                                  status.message()));
}

ShardErrors::ShardErrors(std::string_view operation, size_t shards)
    : operation_(operation), shards_(shards) {}

void ShardErrors::Add(std::string_view address, const absl::Status& status) {
  if (!status.ok()) failures_.push_back(Failure{std::string(address), status});
}

absl::Status ShardErrors::ToStatus() const {
  if (failures_.empty()) return absl::OkStatus();
  const absl::Status& first = failures_.front().status;
  const bool same = std::all_of(failures_.begin(), failures_.end(), [&](const Failure& f) {
    return f.status.code() == first.code() && f.status.message() == first.message();
  });
  if (failures_.size() == 1 && shards_ == 1) {
    return AtShard(operation_, failures_.front().address, first);
  }
  if (same && failures_.size() == shards_) {
    return absl::Status(
        first.code(), absl::StrCat(operation_, " on all ", shards_, " shards: ", first.message()));
  }
  std::string message =
      absl::StrCat(operation_, " failed on ", failures_.size(), " of ", shards_, " shards");
  if (failures_.size() < shards_) absl::StrAppend(&message, " (it succeeded on the others)");
  const char* separator = ": ";
  for (const Failure& f : failures_) {
    absl::StrAppend(&message, separator, f.address, ": ", absl::StatusCodeToString(f.status.code()),
                    ": ", f.status.message());
    separator = "; ";
  }
  return absl::Status(first.code(), message);
}

}  // namespace segd::client
