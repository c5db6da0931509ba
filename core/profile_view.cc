#include "core/profile_view.h"

#include "core/profile_codec.h"

namespace segd {

Val ProfileView::EventProp(size_t i, uint32_t name_id) const {
  const EventRef& e = events_[i];
  return codec::FindProp(e.props, e.props + e.props_size, name_id, *interner_);
}

}  // namespace segd
