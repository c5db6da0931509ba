#include "core/rule.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "core/rule_lexer.h"

namespace segd {

Selector CloneSelector(const Selector& s) {
  Selector c;
  c.event_type = s.event_type;
  c.any_type = s.any_type;
  if (s.where) c.where = CloneExpr(*s.where);
  c.within_ms = s.within_ms;
  c.pos = s.pos;
  c.type_id = s.type_id;
  return c;
}

absl::StatusOr<int64_t> ParseDuration(std::string_view text) {
  std::vector<Token> tokens = LexRule(text);
  if (tokens.size() != 2 || tokens[0].kind != TokenKind::kDuration ||
      tokens[1].kind != TokenKind::kEnd) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", AsAbsl(text), "' is not a duration: an int and a unit, e.g. 90d, 12h, 500ms"));
  }
  return static_cast<int64_t>(tokens[0].magnitude);
}

std::unique_ptr<Expr> CloneExpr(const Expr& e) {
  auto c = std::make_unique<Expr>();
  c->kind = e.kind;
  c->pos = e.pos;
  c->text = e.text;
  c->literal = e.literal;
  c->name = e.name;
  c->is_property = e.is_property;
  c->name_id = e.name_id;
  c->op = e.op;
  c->ops = e.ops;
  c->list = e.list;
  c->regex = e.regex;  // immutable once compiled: shared
  c->pattern = e.pattern;
  c->segment = e.segment;
  c->segment_slot = e.segment_slot;
  c->fn = e.fn;
  c->selector = CloneSelector(e.selector);
  c->property = e.property;
  c->property_id = e.property_id;
  c->steps.reserve(e.steps.size());
  for (const Selector& s : e.steps) c->steps.push_back(CloneSelector(s));
  c->within_ms = e.within_ms;
  c->now_side = e.now_side;
  c->now_sign = e.now_sign;
  c->now_offset_child = e.now_offset_child;
  c->counted_side = e.counted_side;
  c->count_cap = e.count_cap;
  c->children.reserve(e.children.size());
  for (const auto& child : e.children) c->children.push_back(CloneExpr(*child));
  return c;
}

namespace {

void Collect(const Expr& e, bool in_where, RuleInfo* info);

void CollectSelector(const Selector& s, RuleInfo* info) {
  info->reads_events = true;
  if (s.any_type) {
    info->any_event_type = true;
  } else {
    info->event_types.insert(s.event_type);
  }
  if (s.where) Collect(*s.where, /*in_where=*/true, info);
}

// Names inside a where predicate are event properties, not attributes.
void Collect(const Expr& e, bool in_where, RuleInfo* info) {
  switch (e.kind) {
    case ExprKind::kName:
    case ExprKind::kHas:
      if (!in_where) info->attributes.insert(e.name);
      break;
    case ExprKind::kNow:
      info->reads_now = true;
      break;
    case ExprKind::kInSegment:
      info->segments.insert(e.segment);
      break;
    case ExprKind::kAggregate:
      CollectSelector(e.selector, info);
      break;
    case ExprKind::kSequence:
      info->reads_events = true;
      for (const Selector& s : e.steps) CollectSelector(s, info);
      break;
    default:
      break;
  }
  for (const auto& c : e.children) Collect(*c, in_where, info);
}

}  // namespace

RuleInfo CollectRuleInfo(const Expr& rule) {
  RuleInfo info;
  Collect(rule, /*in_where=*/false, &info);
  return info;
}

bool ReadsOnlyAttributes(const Expr& e) {
  switch (e.kind) {
    case ExprKind::kAggregate:
    case ExprKind::kSequence:
    case ExprKind::kInSegment:
    case ExprKind::kNow:
      return false;
    case ExprKind::kName:
    case ExprKind::kHas:
      if (e.is_property) return false;
      break;
    default:
      break;
  }
  return std::all_of(e.children.begin(), e.children.end(),
                     [](const auto& c) { return ReadsOnlyAttributes(*c); });
}

}  // namespace segd
