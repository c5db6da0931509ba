#include "core/change.h"

namespace segd {

std::string_view ChangeKindName(ChangeKind kind) {
  return kind == ChangeKind::kEnter ? "ENTER" : "EXIT";
}

std::string_view CauseName(Cause cause) {
  switch (cause) {
    case Cause::kUpdate:
      return "UPDATE";
    case Cause::kTime:
      return "TIME";
    case Cause::kSegmentPut:
      return "SEGMENT_PUT";
    case Cause::kSegmentDelete:
      return "SEGMENT_DELETE";
    case Cause::kReplay:
      return "REPLAY";
    case Cause::kProfileDelete:
      return "PROFILE_DELETE";
    case Cause::kSnapshot:
      return "SNAPSHOT";
  }
  return "?";
}

}  // namespace segd
