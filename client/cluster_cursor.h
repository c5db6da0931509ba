#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace segd::client {

// The position of a merged subscription (Subscription): for each shard, named by its
// address, the cursor of its change stream after the last batch delivered from it — or
// no cursor, when that shard was being re-snapshot, so that a subscription resumed
// from here re-snapshots it too.
//
// Encoded, it is an opaque printable string (URL-safe base64) that a caller stores and
// passes back as SubscribeRequest.cursor.
struct ClusterCursor {
  struct Shard {
    std::string address;
    std::string cursor;  // the shard's own opaque cursor; empty: re-snapshot
  };
  std::vector<Shard> shards;

  std::string Encode() const;
  // INVALID_ARGUMENT, saying what is wrong, unless `text` came from Encode.
  static absl::StatusOr<ClusterCursor> Decode(std::string_view text);
};

}  // namespace segd::client
