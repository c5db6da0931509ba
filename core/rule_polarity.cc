#include "core/rule_polarity.h"

namespace segd {
namespace {

Polarity Negate(Polarity p) {
  if (p == Polarity::kUp) return Polarity::kDown;
  if (p == Polarity::kDown) return Polarity::kUp;
  return p;
}

Polarity Combine(Polarity a, Polarity b) {
  if (a == Polarity::kNone) return b;
  if (b == Polarity::kNone || a == b) return a;
  return Polarity::kUnknown;
}

bool Selects(const Selector& s, std::string_view type) {
  return type.empty() || s.any_type || s.event_type == type;
}

bool IsNone(const Expr& e, std::string_view type);

// The direction in which a numeric expression moves as events are added, and whether
// it can be missing before (a missing value compares false, so "becoming present"
// counts as moving up for last/max and down for first/min only in comparisons that
// were false while missing).
struct Direction {
  Polarity polarity = Polarity::kNone;
  bool may_be_missing = false;
};

Direction NumberDirection(const Expr& e, std::string_view type) {
  switch (e.kind) {
    case ExprKind::kAggregate: {
      if (!Selects(e.selector, type)) return {};
      switch (e.fn) {
        case AggregateFn::kCount:
        case AggregateFn::kCountDistinct:
          return {Polarity::kUp, false};
        case AggregateFn::kLast:
        case AggregateFn::kMax:
          return {Polarity::kUp, true};
        case AggregateFn::kFirst:
        case AggregateFn::kMin:
          return {Polarity::kDown, true};
        default:
          return {Polarity::kUnknown, true};
      }
    }
    case ExprKind::kAdd:
    case ExprKind::kSub: {
      const Direction a = NumberDirection(*e.children[0], type);
      Direction b = NumberDirection(*e.children[1], type);
      if (e.kind == ExprKind::kSub) b.polarity = Negate(b.polarity);
      // Overflow to missing is not monotone; counts and times stay far from it.
      return {Combine(a.polarity, b.polarity), a.may_be_missing || b.may_be_missing};
    }
    case ExprKind::kArith: {
      Direction d = NumberDirection(*e.children[0], type);
      for (size_t i = 1; i < e.children.size(); ++i) {
        Direction b = NumberDirection(*e.children[i], type);
        const ExprKind op = e.ops[i - 1];
        if (op == ExprKind::kMul || op == ExprKind::kDiv) {
          if (d.polarity != Polarity::kNone || b.polarity != Polarity::kNone) {
            return {Polarity::kUnknown, true};
          }
          continue;
        }
        if (op == ExprKind::kSub) b.polarity = Negate(b.polarity);
        d = {Combine(d.polarity, b.polarity), d.may_be_missing || b.may_be_missing};
      }
      return d;
    }
    case ExprKind::kNeg: {
      const Direction a = NumberDirection(*e.children[0], type);
      return {Negate(a.polarity), a.may_be_missing};
    }
    default:
      return IsNone(e, type) ? Direction{} : Direction{Polarity::kUnknown, true};
  }
}

// `a op b` where a moves in direction `a` and b in direction `b`.
Polarity ComparePolarity(CompareOp op, Direction a, Direction b) {
  if (a.polarity == Polarity::kNone && b.polarity == Polarity::kNone) return Polarity::kNone;
  if (op == CompareOp::kLt || op == CompareOp::kLe) {  // a < b is b > a
    std::swap(a, b);
  } else if (op != CompareOp::kGt && op != CompareOp::kGe) {
    return Polarity::kUnknown;
  }
  // a > b: true more often as a rises or b falls. A side that may start missing must
  // move the way that turns false (missing) into possibly true.
  if (a.may_be_missing && a.polarity != Polarity::kNone && a.polarity != Polarity::kUp) {
    return Polarity::kUnknown;
  }
  if (b.may_be_missing && b.polarity != Polarity::kNone && b.polarity != Polarity::kDown) {
    return Polarity::kUnknown;
  }
  return Combine(a.polarity, Negate(b.polarity));
}

Polarity BoolPolarity(const Expr& e, std::string_view type) {
  switch (e.kind) {
    case ExprKind::kNot:
      return Negate(BoolPolarity(*e.children[0], type));
    case ExprKind::kAnd:
    case ExprKind::kOr: {
      Polarity p = Polarity::kNone;
      for (const auto& c : e.children) p = Combine(p, BoolPolarity(*c, type));
      return p;
    }
    case ExprKind::kAggregate:
      if (e.fn == AggregateFn::kDid) {
        return Selects(e.selector, type) ? Polarity::kUp : Polarity::kNone;
      }
      return IsNone(e, type) ? Polarity::kNone : Polarity::kUnknown;
    case ExprKind::kSequence:
      for (const Selector& s : e.steps) {
        if (Selects(s, type)) return Polarity::kUp;
      }
      return Polarity::kNone;
    case ExprKind::kCompare:
      return ComparePolarity(e.op, NumberDirection(*e.children[0], type),
                             NumberDirection(*e.children[1], type));
    default:
      return IsNone(e, type) ? Polarity::kNone : Polarity::kUnknown;
  }
}

// Whether the expression reads no events of the type at all.
bool IsNone(const Expr& e, std::string_view type) {
  if (e.kind == ExprKind::kAggregate) return !Selects(e.selector, type);
  if (e.kind == ExprKind::kSequence) {
    for (const Selector& s : e.steps) {
      if (Selects(s, type)) return false;
    }
    return true;
  }
  for (const auto& c : e.children) {
    if (!IsNone(*c, type)) return false;
  }
  return true;
}

void CollectAppendedEventSelectors(const Expr& e, std::vector<const Selector*>* out) {
  if (e.kind == ExprKind::kAggregate) out->push_back(&e.selector);
  if (e.kind == ExprKind::kSequence && !e.steps.empty()) out->push_back(&e.steps.back());
  // A where predicate holds no aggregate or sequence (the checker rejects them there).
  for (const auto& c : e.children) CollectAppendedEventSelectors(*c, out);
}

}  // namespace

Polarity EventPolarity(const Expr& rule, std::string_view type) { return BoolPolarity(rule, type); }

std::vector<const Selector*> AppendedEventSelectors(const Expr& rule) {
  std::vector<const Selector*> out;
  CollectAppendedEventSelectors(rule, &out);
  return out;
}

}  // namespace segd
