#pragma once

#include <string_view>

#include "core/rule.h"

namespace segd {

// How adding events can change a rule's result. Adding an event only ever grows the
// set of events each selector matches, at every moment (windows and retention only
// decide how long it counts), so a rule built monotonically from selectors moves one
// way only:
//   kUp:   adding events of the type can turn the rule from false to true, never back;
//   kDown: from true to false, never back;
//   kNone: the rule does not read such events;
//   kUnknown: either way (sum, avg, `=` on a count, ...).
// The shard uses this to skip re-evaluating a member of a kUp rule (or a non-member of
// a kDown rule) after an update that only added events, dropping none.
enum class Polarity : int8_t { kNone, kUp, kDown, kUnknown };

// The polarity of `rule` for events of type `type`; an empty `type` means "events that
// every selector matches" (what a "*" selector sees).
Polarity EventPolarity(const Expr& rule, std::string_view type);

}  // namespace segd
