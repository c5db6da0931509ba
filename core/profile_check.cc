#include "core/profile_check.h"

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/text.h"

namespace segd {
namespace {

constexpr size_t kMaxKeyBytes = 256;
constexpr size_t kMaxNameBytes = 128;

bool IsValidName(std::string_view name) {
  return !name.empty() && name.size() <= kMaxNameBytes && IsValidUtf8(name);
}

// `where()` names the value in messages, e.g. `set["age"]`; called only on error.
// V is Value or ValueRef, as for the callers below.
template <typename V, typename Where>
absl::Status CheckValue(const V& v, bool in_event, const Where& where) {
  switch (v.kind()) {
    case ValueKind::kString:
      if (!IsValidUtf8(v.string_value())) {
        return Invalid(absl::StrCat(where(), ": string is not valid UTF-8"));
      }
      break;
    case ValueKind::kFloat:
      if (std::isnan(v.float_value())) return Invalid(absl::StrCat(where(), ": float is NaN"));
      if (std::isinf(v.float_value())) {
        return Invalid(
            absl::StrCat(where(), v.float_value() > 0 ? ": float is Inf" : ": float is -Inf"));
      }
      break;
    case ValueKind::kList:
      if (in_event) {
        return Invalid(absl::StrCat(where(), ": lists are not allowed in event properties"));
      }
      for (size_t i = 0; i < v.list_value().size(); ++i) {
        if (!IsValidUtf8(v.list_value()[i])) {
          return Invalid(absl::StrCat(where(), ": list item ", i, " is not valid UTF-8"));
        }
      }
      break;
    default:
      break;
  }
  return absl::OkStatus();
}

// A map of names to values (`set`, `attributes`, an event's `properties`); `what()`
// is its name in messages.
template <typename Entries, typename What>
absl::Status CheckNamedValues(const Entries& values, bool in_event, const What& what) {
  for (size_t i = 0; i < values.size(); ++i) {
    const auto& [name, value] = values[i];
    if (!IsValidName(name)) {
      return Invalid(absl::StrCat(what(), "[", i, "]: name must be 1-128 bytes of UTF-8"));
    }
    if (absl::Status s = CheckValue(value, in_event, [&] { return Quoted(what(), name); });
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

template <typename E>  // Event or EventRef
absl::Status CheckEvent(const E& e, size_t i, int64_t now, const EngineOptions& options) {
  auto where = [&](std::string_view field) {
    return absl::StrCat("events[", i, "].", AsAbsl(field));
  };
  if (!IsValidName(e.type)) {
    return Invalid(absl::StrCat(where("type"), ": must be 1-128 bytes of UTF-8"));
  }
  if (e.time < 0) {
    return Invalid(absl::StrCat(where("time"), ": must not be negative, got ", e.time));
  }
  if (e.time > now && e.time - now > options.max_future_ms) {
    return Invalid(absl::StrCat(where("time"), ": ", e.time - now,
                                " ms ahead of now, more than max-future ", options.max_future_ms));
  }
  if (!IsValidUtf8(e.id)) return Invalid(absl::StrCat(where("id"), ": must be valid UTF-8"));
  return CheckNamedValues(e.properties, true, [&] { return where("properties"); });
}

// The checks above for input that passes them, all at once: every string ASCII (so
// valid UTF-8), the key and every name of an allowed size, every float finite, every
// event's time in range, no list in an event's properties. One pass ORs the strings'
// bytes together and ANDs the conditions, where the checks above take a call and
// branches a string (a replayed profile has some 150). When it fails, they run one by
// one to say what is wrong and where (or that nothing is: a string need not be ASCII).
class QuickCheck {
 public:
  QuickCheck(int64_t now, const EngineOptions& options) : now_(now), options_(options) {}

  bool passed() const { return ok_ && (bytes_ & kAsciiHigh) == 0; }

  void Key(std::string_view key) {
    ok_ &= key.size() - 1 < kMaxKeyBytes;  // 0 wraps around
    Text(key);
  }
  void Name(std::string_view name) {
    ok_ &= name.size() - 1 < kMaxNameBytes;
    Text(name);
  }
  template <typename Entries>
  void NamedValues(const Entries& entries, bool in_event) {
    for (const auto& [name, value] : entries) {
      Name(name);
      Value(value, in_event);
    }
  }
  template <typename Entries>
  void Increments(const Entries& entries) {
    for (const auto& [name, value] : entries) {
      Name(name);
      ok_ &= value.kind() == ValueKind::kInt || value.kind() == ValueKind::kFloat;
      Value(value, false);
    }
  }
  template <typename E>
  void Event(const E& e) {
    Name(e.type);
    ok_ &= e.time >= 0 && (e.time <= now_ || e.time - now_ <= options_.max_future_ms);
    Text(e.id);
    NamedValues(e.properties, true);
  }

 private:
  void Text(std::string_view s) { bytes_ |= OrOfBytes(s); }
  template <typename V>
  void Value(const V& v, bool in_event) {
    switch (v.kind()) {
      case ValueKind::kString:
        Text(v.string_value());
        break;
      case ValueKind::kFloat:
        ok_ &= std::isfinite(v.float_value());
        break;
      case ValueKind::kList:
        ok_ &= !in_event;
        for (std::string_view item : v.list_value()) Text(item);
        break;
      default:
        break;
    }
  }

  const int64_t now_;
  const EngineOptions& options_;
  bool ok_ = true;
  uint64_t bytes_ = 0;
};

// The checks of an update (ProfileUpdate or UpdateRef) that do not depend on the stored
// profile.
template <typename Update>
absl::Status CheckUpdateOf(const Update& u, int64_t now, const EngineOptions& options) {
  QuickCheck quick(now, options);
  quick.Key(u.key);
  for (std::string_view name : u.unset) quick.Name(name);
  quick.NamedValues(u.set, false);
  quick.Increments(u.increment);
  for (const auto& e : u.events) quick.Event(e);
  if (quick.passed()) return absl::OkStatus();

  if (absl::Status s = ValidateProfileKey(u.key); !s.ok()) return s;
  for (size_t i = 0; i < u.unset.size(); ++i) {
    if (!IsValidName(u.unset[i])) {
      return Invalid(absl::StrCat("unset[", i, "]: must be 1-128 bytes of UTF-8"));
    }
  }
  if (absl::Status s = CheckNamedValues(u.set, false, [] { return "set"; }); !s.ok()) return s;
  for (size_t i = 0; i < u.increment.size(); ++i) {
    const auto& [name, value] = u.increment[i];
    if (!IsValidName(name)) {
      return Invalid(absl::StrCat("increment[", i, "]: name must be 1-128 bytes of UTF-8"));
    }
    if (value.kind() != ValueKind::kInt && value.kind() != ValueKind::kFloat) {
      return Invalid(absl::StrCat(Quoted("increment", name), ": must be an int or float, got ",
                                  AsAbsl(ValueKindName(value.kind()))));
    }
    if (absl::Status s = CheckValue(value, false, [&] { return Quoted("increment", name); });
        !s.ok()) {
      return s;
    }
  }
  for (size_t i = 0; i < u.events.size(); ++i) {
    if (absl::Status s = CheckEvent(u.events[i], i, now, options); !s.ok()) return s;
  }
  return absl::OkStatus();
}

// The checks of a replayed profile (ProfileData or ProfileRef): those of an update.
template <typename Profile>
absl::Status CheckProfileOf(const Profile& p, int64_t now, const EngineOptions& options) {
  QuickCheck quick(now, options);
  quick.Key(p.key);
  quick.NamedValues(p.attributes, false);
  for (const auto& e : p.events) quick.Event(e);
  if (quick.passed()) return absl::OkStatus();

  if (absl::Status s = ValidateProfileKey(p.key); !s.ok()) return s;
  if (absl::Status s = CheckNamedValues(p.attributes, false, [] { return "attributes"; });
      !s.ok()) {
    return s;
  }
  for (size_t i = 0; i < p.events.size(); ++i) {
    if (absl::Status s = CheckEvent(p.events[i], i, now, options); !s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace

// Abseil here has its own string_view, which StrCat takes but std::string_view is not.

absl::Status Invalid(std::string message) { return absl::InvalidArgumentError(std::move(message)); }

std::string Quoted(std::string_view where, std::string_view name) {
  return absl::StrCat(AsAbsl(where), "[\"", AsAbsl(name), "\"]");
}

absl::Status ValidateProfileKey(std::string_view key) {
  if (key.empty() || key.size() > kMaxKeyBytes) {
    return Invalid(absl::StrCat("key: must be 1-256 bytes, got ", key.size()));
  }
  if (!IsValidUtf8(key)) return Invalid("key: must be valid UTF-8");
  return absl::OkStatus();
}

absl::Status CheckUpdate(const ProfileUpdate& u, int64_t now, const EngineOptions& options) {
  return CheckUpdateOf(u, now, options);
}

absl::Status CheckUpdate(const UpdateRef& u, int64_t now, const EngineOptions& options) {
  return CheckUpdateOf(u, now, options);
}

absl::Status CheckProfile(const ProfileData& p, int64_t now, const EngineOptions& options) {
  return CheckProfileOf(p, now, options);
}

absl::Status CheckProfile(const ProfileRef& p, int64_t now, const EngineOptions& options) {
  return CheckProfileOf(p, now, options);
}

}  // namespace segd
