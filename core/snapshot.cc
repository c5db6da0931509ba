#include "core/snapshot.h"

namespace segd {

size_t Snapshot::size() const {
  size_t n = 0;
  for (const Group& g : groups) n += g.ends.size();
  return n;
}

size_t Snapshot::Read(Position* pos, size_t max, std::vector<Change>* out) const {
  size_t n = 0;
  while (n < max && pos->group < groups.size()) {
    const Group& g = groups[pos->group];
    if (pos->member == g.ends.size()) {
      ++pos->group;
      pos->member = 0;
      continue;
    }
    const uint32_t begin = pos->member == 0 ? 0 : g.ends[pos->member - 1];
    out->push_back(Change{g.keys.substr(begin, g.ends[pos->member] - begin), g.segment,
                          ChangeKind::kEnter, g.time, Cause::kSnapshot});
    ++pos->member;
    ++n;
  }
  return n;
}

}  // namespace segd
