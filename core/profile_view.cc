#include "core/profile_view.h"

#include "core/profile_codec.h"

namespace segd {

Val ProfileView::EventProp(size_t i, uint32_t name_id) const {
  const EventRef& e = events_[i];
  const uint8_t* props = blob_ + (props_shift_ + e.props_offset);
  return codec::FindProp(props, props + e.props_size, name_id, *interner_);
}

}  // namespace segd
