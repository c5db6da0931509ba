#pragma once

#include <string_view>
#include <vector>

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

// The selectors through which events added after every other event of a history (at the
// end of its order: time, then arrival) can change `rule`'s result: every aggregate's
// selector and, of each sequence, its last step only — an appended event can be the last
// event of a sequence's match and nothing else. An appended event that matches none of
// them (type and where predicate) leaves the rule's result unchanged, now and until
// another event is added, unless a where predicate that reads now() may match it later.
// Pointers into `rule`, in the order written.
std::vector<const Selector*> AppendedEventSelectors(const Expr& rule);

}  // namespace segd
