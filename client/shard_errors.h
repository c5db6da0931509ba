#pragma once

#include <grpcpp/support/status.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace segd::client {

// gRPC's status as an absl::Status: the codes are the same numbers.
absl::Status FromGrpc(const grpc::Status& status);

// `status` with where it happened in front of its message:
// "<operation> on <address>: <message>". OK stays OK.
absl::Status AtShard(std::string_view operation, std::string_view address,
                     const absl::Status& status);

// The failures of one operation sent to several shards, reported as one status that
// names each failed shard with its code and message, e.g.
//   UNAVAILABLE: PutSegment failed on 1 of 3 shards (it succeeded on the others):
//   127.0.0.1:7071: UNAVAILABLE: failed to connect to all addresses
// When every shard failed the same way (same code and message) the status says so once:
//   INVALID_ARGUMENT: PutSegment on all 3 shards: 1:7: expected ')'
// The code is that of the first failure recorded.
//
// Thread safety: not thread-safe.
class ShardErrors {
 public:
  // `shards`: how many shards the operation went to.
  ShardErrors(std::string_view operation, size_t shards);

  // Records that the operation failed on the shard at `address` (ignores OK).
  void Add(std::string_view address, const absl::Status& status);

  bool empty() const { return failures_.empty(); }
  // OK when nothing was recorded.
  absl::Status ToStatus() const;

 private:
  struct Failure {
    std::string address;
    absl::Status status;
  };

  std::string operation_;
  size_t shards_;
  std::vector<Failure> failures_;
};

}  // namespace segd::client
