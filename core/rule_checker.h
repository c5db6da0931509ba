#pragma once

#include <vector>

#include "core/rule.h"

namespace segd {

// The static checks of SPEC §3 that run after a rule parsed:
// - a rule, each `where` predicate and a funnel step's predicate must be able to yield
//   a bool (an expression that can only be a number, a string or a list is an error);
// - aggregates, sequence() and in_segment() are not allowed inside `where`;
// - now() may appear only as one whole side of a comparison, as `now()`,
//   `now() + E`, `now() - E` or `E + now()` with no now() in E or the other side.
// On each kCompare with now() they set now_side, now_sign and now_offset_child.
// Syntax, limits, literal ranges, regexes and segment ids are the parser's checks.
//
// Both return every diagnostic found, sorted by position (empty when the input is
// valid); the first is the one ParseRule / ParseFunnelStep report.
std::vector<Diagnostic> CheckRule(Expr& rule);
std::vector<Diagnostic> CheckFunnelStep(Selector& step);

}  // namespace segd
