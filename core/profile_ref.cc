#include "core/profile_ref.h"

#include <string>
#include <vector>

namespace segd {
namespace {

NamedValues ToNamedValues(std::span<const NamedValueRef> entries) {
  NamedValues out;
  out.reserve(entries.size());
  for (const auto& [name, value] : entries) out.emplace_back(std::string(name), ToValue(value));
  return out;
}

std::vector<Event> ToEvents(std::span<const EventRef> events) {
  std::vector<Event> out;
  out.reserve(events.size());
  for (const EventRef& e : events) {
    out.push_back(
        Event{std::string(e.type), e.time, std::string(e.id), ToNamedValues(e.properties)});
  }
  return out;
}

}  // namespace

Value ToValue(const ValueRef& v) {
  switch (v.kind()) {
    case ValueKind::kString:
      return Value::String(std::string(v.string_value()));
    case ValueKind::kInt:
      return Value::Int(v.int_value());
    case ValueKind::kFloat:
      return Value::Float(v.float_value());
    case ValueKind::kBool:
      return Value::Bool(v.bool_value());
    case ValueKind::kTime:
      return Value::Time(v.time_value());
    case ValueKind::kList:
      return Value::List(std::vector<std::string>(v.list_value().begin(), v.list_value().end()));
  }
  return Value();
}

ProfileData ToProfileData(const ProfileRef& p) {
  ProfileData out;
  out.key = std::string(p.key);
  out.attributes = ToNamedValues(p.attributes);
  out.events = ToEvents(p.events);
  return out;
}

ProfileUpdate ToProfileUpdate(const UpdateRef& u) {
  ProfileUpdate out;
  out.key = std::string(u.key);
  out.set = ToNamedValues(u.set);
  out.unset.assign(u.unset.begin(), u.unset.end());
  out.increment = ToNamedValues(u.increment);
  out.events = ToEvents(u.events);
  out.del = u.del;
  return out;
}

}  // namespace segd
