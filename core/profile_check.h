#pragma once

// The checks of SPEC §1–2 that an update or a replayed profile passes before the store
// changes anything, with messages that say what is wrong and where
// (`set["age"]: float is NaN`). ProfileStore runs them; they read nothing stored (what
// does, such as an increment of a string attribute, is the store's).

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "core/engine_options.h"
#include "core/profile_ref.h"
#include "core/profile_update.h"

namespace segd {

// SPEC §1: a key is 1-256 bytes of valid UTF-8. INVALID_ARGUMENT with `key: ...`.
absl::Status ValidateProfileKey(std::string_view key);

// An update's key, names, values and events at time `now`.
absl::Status CheckUpdate(const ProfileUpdate& u, int64_t now, const EngineOptions& options);
absl::Status CheckUpdate(const UpdateRef& u, int64_t now, const EngineOptions& options);
// A replayed profile's key, attributes and events, as an update's.
absl::Status CheckProfile(const ProfileData& p, int64_t now, const EngineOptions& options);
absl::Status CheckProfile(const ProfileRef& p, int64_t now, const EngineOptions& options);

// INVALID_ARGUMENT with `message`.
absl::Status Invalid(std::string message);
// `where["name"]`, how messages name an entry of a map.
std::string Quoted(std::string_view where, std::string_view name);

}  // namespace segd
