// Recursive-descent parser for the rule language of SPEC §3, one function per grammar
// production. Errors: the first failure is recorded in `error_` and every function
// returns null/false from then on, so the first error in parse order is reported;
// since the lexer stops at its first error and the parser never consumes a kError
// token, a lexical error is reported only when no syntax error precedes it.
//
// Recursion happens only through parentheses, calls (their where predicates), `not`
// and unary minus, and each of them passes through Nest, which rejects depth 65
// before recursing further; binary operators are parsed by loops.

#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/rule.h"
#include "core/rule_checker.h"
#include "core/rule_lexer.h"
#include "re2/re2.h"

namespace segd {
namespace {

constexpr uint64_t kInt64Max = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
constexpr size_t kMaxNameBytes = 128;

bool ValidSegmentId(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '.' || c == '-';
    if (!ok) return false;
  }
  return true;
}

enum class Function {
  kNone,
  kHas,
  kNow,
  kInSegment,
  kSelectorAggregate,  // count, did, first, last
  kPropertyAggregate,  // sum, avg, min, max, count_distinct
  kSequence,
};

Function LookupFunction(std::string_view name, AggregateFn* fn) {
  static constexpr std::pair<std::string_view, AggregateFn> kSelectorFns[] = {
      {"count", AggregateFn::kCount},
      {"did", AggregateFn::kDid},
      {"first", AggregateFn::kFirst},
      {"last", AggregateFn::kLast}};
  static constexpr std::pair<std::string_view, AggregateFn> kPropertyFns[] = {
      {"sum", AggregateFn::kSum},
      {"avg", AggregateFn::kAvg},
      {"min", AggregateFn::kMin},
      {"max", AggregateFn::kMax},
      {"count_distinct", AggregateFn::kCountDistinct}};
  if (name == "has") return Function::kHas;
  if (name == "now") return Function::kNow;
  if (name == "in_segment") return Function::kInSegment;
  if (name == "sequence") return Function::kSequence;
  for (const auto& [n, f] : kSelectorFns) {
    if (name == n) {
      *fn = f;
      return Function::kSelectorAggregate;
    }
  }
  for (const auto& [n, f] : kPropertyFns) {
    if (name == n) {
      *fn = f;
      return Function::kPropertyAggregate;
    }
  }
  return Function::kNone;
}

std::optional<CompareOp> CompareOpOf(TokenKind kind) {
  switch (kind) {
    case TokenKind::kEq:
      return CompareOp::kEq;
    case TokenKind::kNe:
      return CompareOp::kNe;
    case TokenKind::kLt:
      return CompareOp::kLt;
    case TokenKind::kLe:
      return CompareOp::kLe;
    case TokenKind::kGt:
      return CompareOp::kGt;
    case TokenKind::kGe:
      return CompareOp::kGe;
    default:
      return std::nullopt;
  }
}

std::string PositionString(Position pos) { return absl::StrCat(pos.line, ":", pos.column); }

class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text), tokens_(LexRule(text)) {}

  // rule <end>
  std::unique_ptr<Expr> ParseWholeRule() {
    auto rule = ParseOr();
    if (rule == nullptr) return nullptr;
    if (Peek().kind != TokenKind::kEnd) {
      if (CompareOpOf(Peek().kind)) return Fail(Peek(), ChainMessage());
      return Fail(Peek(), absl::StrCat("expected end of rule, found ", DescribeToken(Peek())));
    }
    return rule;
  }

  // event_type [where rule] <end>
  std::optional<Selector> ParseWholeFunnelStep() {
    Selector step;
    if (!ParseEventType(&step, "a funnel step")) return std::nullopt;
    if (!ParseWhere(&step)) return std::nullopt;
    if (IsWord(Peek(), "within")) {
      Fail(Peek(), "'within' is not allowed in a funnel step: the funnel's window applies");
      return std::nullopt;
    }
    if (Peek().kind != TokenKind::kEnd) {
      Fail(Peek(),
           absl::StrCat("expected 'where' or end of funnel step, found ", DescribeToken(Peek())));
      return std::nullopt;
    }
    return step;
  }

  const Diagnostic& error() const { return error_; }

 private:
  // Counts one level of nesting for as long as it lives.
  class Nest {
   public:
    explicit Nest(Parser& p) : p_(p) { ++p_.depth_; }
    ~Nest() { --p_.depth_; }
    Nest(const Nest&) = delete;
    Nest& operator=(const Nest&) = delete;
    bool TooDeep() const { return p_.depth_ > kMaxRuleDepth; }

   private:
    Parser& p_;
  };

  const Token& Peek(size_t ahead = 0) const {
    const size_t i = std::min(i_ + ahead, tokens_.size() - 1);
    return tokens_[i];
  }
  // REQUIRES: Peek() is neither kEnd nor kError.
  const Token& Next() {
    const Token& t = tokens_[i_];
    prev_end_ = t.end;
    if (i_ + 1 < tokens_.size()) ++i_;
    return t;
  }
  static bool IsWord(const Token& t, std::string_view word) {
    return t.kind == TokenKind::kIdent && t.raw == word;
  }

  // Records the first error (a lexical error wins when the parser stopped at it).
  std::nullptr_t Fail(const Token& at, std::string message) {
    if (!failed_) {
      failed_ = true;
      error_.pos = at.pos;
      error_.message = at.kind == TokenKind::kError ? at.text : std::move(message);
    }
    return nullptr;
  }
  std::nullptr_t TooDeep(const Token& at) {
    return Fail(at, absl::StrCat("rule is nested deeper than ", kMaxRuleDepth,
                                 " levels (parentheses, calls, 'not', unary minus)"));
  }
  static std::string ChainMessage() {
    return "comparisons cannot be chained: combine them with 'and'";
  }
  // "expected X, found Y", where Y is the token at hand.
  std::nullptr_t Expected(absl::string_view what) {
    return Fail(Peek(), absl::StrCat("expected ", what, ", found ", DescribeToken(Peek())));
  }
  bool Expect(TokenKind kind, absl::string_view what) {
    if (Peek().kind == kind) {
      Next();
      return true;
    }
    Expected(what);
    return false;
  }

  std::unique_ptr<Expr> New(ExprKind kind, Position pos) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->pos = pos;
    return e;
  }
  // Sets e's text to the source from byte `begin` to the end of the last token taken.
  std::unique_ptr<Expr> Finish(std::unique_ptr<Expr> e, size_t begin) {
    e->text = std::string(text_.substr(begin, prev_end_ - begin));
    return e;
  }

  // or_expr and and_expr: flattened n-ary chains.
  std::unique_ptr<Expr> ParseOr() { return ParseChain(ExprKind::kOr, "or"); }

  std::unique_ptr<Expr> ParseChain(ExprKind kind, std::string_view word) {
    const Token& first = Peek();
    const size_t begin = first.begin;
    const Position pos = first.pos;
    auto left = kind == ExprKind::kOr ? ParseChain(ExprKind::kAnd, "and") : ParseNot();
    if (left == nullptr) return nullptr;
    if (!IsWord(Peek(), word)) return left;
    auto e = New(kind, pos);
    e->children.push_back(std::move(left));
    while (IsWord(Peek(), word)) {
      Next();
      auto right = kind == ExprKind::kOr ? ParseChain(ExprKind::kAnd, "and") : ParseNot();
      if (right == nullptr) return nullptr;
      e->children.push_back(std::move(right));
    }
    return Finish(std::move(e), begin);
  }

  // not_expr = "not" not_expr | comparison
  std::unique_ptr<Expr> ParseNot() {
    if (!IsWord(Peek(), "not")) return ParseComparison();
    const Token& tok = Next();
    Nest nest(*this);
    if (nest.TooDeep()) return TooDeep(tok);
    auto operand = ParseNot();
    if (operand == nullptr) return nullptr;
    auto e = New(ExprKind::kNot, tok.pos);
    e->children.push_back(std::move(operand));
    return Finish(std::move(e), tok.begin);
  }

  std::unique_ptr<Expr> ParseComparison() {
    const size_t begin = Peek().begin;
    const Position pos = Peek().pos;
    auto left = ParseAdditive();
    if (left == nullptr) return nullptr;
    const Token& t = Peek();
    std::unique_ptr<Expr> e;
    if (auto op = CompareOpOf(t.kind)) {
      Next();
      e = New(ExprKind::kCompare, pos);
      e->op = *op;
      if (*op == CompareOp::kEq && Peek().kind == TokenKind::kEq) {
        return Fail(Peek(), "'==' is not an operator: compare with '='");
      }
      if (!AddOperand(e.get(), std::move(left))) return nullptr;
    } else if (IsWord(t, "in") || (IsWord(t, "not") && IsWord(Peek(1), "in"))) {
      const bool negated = IsWord(t, "not");
      Next();
      if (negated) Next();
      e = New(negated ? ExprKind::kNotIn : ExprKind::kIn, pos);
      e->children.push_back(std::move(left));
      if (!ParseList(&e->list, negated ? "'not in'" : "'in'")) return nullptr;
    } else if (IsWord(t, "not")) {
      Next();
      return Expected("'in' after 'not'");
    } else if (IsWord(t, "contains") || IsWord(t, "starts_with") || IsWord(t, "ends_with")) {
      Next();
      e = New(t.raw == "contains"      ? ExprKind::kContains
              : t.raw == "starts_with" ? ExprKind::kStartsWith
                                       : ExprKind::kEndsWith,
              pos);
      if (!AddOperand(e.get(), std::move(left))) return nullptr;
    } else if (IsWord(t, "matches")) {
      Next();
      e = New(ExprKind::kMatches, pos);
      e->children.push_back(std::move(left));
      if (!ParsePattern(e.get())) return nullptr;
    } else {
      return left;
    }
    if (CompareOpOf(Peek().kind) || IsWord(Peek(), "in") || IsWord(Peek(), "contains") ||
        IsWord(Peek(), "starts_with") || IsWord(Peek(), "ends_with") || IsWord(Peek(), "matches")) {
      return Fail(Peek(), ChainMessage());
    }
    return Finish(std::move(e), begin);
  }

  // Parses the right operand of a binary comparison into e (whose left is `left`).
  bool AddOperand(Expr* e, std::unique_ptr<Expr> left) {
    e->children.push_back(std::move(left));
    auto right = ParseAdditive();
    if (right == nullptr) return false;
    e->children.push_back(std::move(right));
    return true;
  }

  // "matches" string: the pattern, compiled with RE2 (UTF-8, default semantics).
  bool ParsePattern(Expr* e) {
    if (Peek().kind != TokenKind::kString) {
      Expected("a string pattern after 'matches'");
      return false;
    }
    const Token& tok = Next();
    RE2::Options options;
    options.set_log_errors(false);
    auto re = std::make_shared<const RE2>(tok.text, options);
    if (!re->ok()) {
      Fail(tok, absl::StrCat("invalid regular expression ", DescribeToken(tok), ": ", re->error()));
      return false;
    }
    e->pattern = tok.text;
    e->regex = std::move(re);
    return true;
  }

  // list = "[" [ item { "," item } ] "]"
  bool ParseList(std::vector<Value>* list, absl::string_view after) {
    if (!Expect(TokenKind::kLBracket, absl::StrCat("'[' after ", after))) return false;
    if (Peek().kind == TokenKind::kRBracket) {
      Next();
      return true;
    }
    while (true) {
      if (!ParseListItem(list)) return false;
      if (Peek().kind == TokenKind::kComma) {
        Next();
      } else if (Peek().kind == TokenKind::kRBracket) {
        Next();
        return true;
      } else {
        Expected("',' or ']' in list");
        return false;
      }
    }
  }

  // item = literal | "-" int | "-" float | "-" duration
  bool ParseListItem(std::vector<Value>* list) {
    if (Peek().kind == TokenKind::kMinus) {
      Next();
      const Token& t = Peek();
      if (t.kind == TokenKind::kInt || t.kind == TokenKind::kDuration) {
        Next();
        // -2^63 is the one negative int whose magnitude does not fit int64.
        list->push_back(Value::Int(t.magnitude > kInt64Max ? std::numeric_limits<int64_t>::min()
                                                           : -static_cast<int64_t>(t.magnitude)));
        return true;
      }
      if (t.kind == TokenKind::kFloat) {
        Next();
        list->push_back(Value::Float(-t.number));
        return true;
      }
      Expected("a number or a duration after '-' in list");
      return false;
    }
    const Token& t = Peek();
    switch (t.kind) {
      case TokenKind::kInt:
        if (!IntFits(t)) return false;
        Next();
        list->push_back(Value::Int(static_cast<int64_t>(t.magnitude)));
        return true;
      case TokenKind::kDuration:
        Next();
        list->push_back(Value::Int(static_cast<int64_t>(t.magnitude)));
        return true;
      case TokenKind::kFloat:
        Next();
        list->push_back(Value::Float(t.number));
        return true;
      case TokenKind::kString:
        Next();
        list->push_back(Value::String(t.text));
        return true;
      default:
        if (IsWord(t, "true") || IsWord(t, "false")) {
          Next();
          list->push_back(Value::Bool(t.raw == "true"));
          return true;
        }
        Expected("a literal list item (number, string, bool or duration)");
        return false;
    }
  }

  bool IntFits(const Token& t) {
    if (t.magnitude <= kInt64Max) return true;
    Fail(t, absl::StrCat("integer ", AsAbsl(t.raw), " does not fit in int64"));
    return false;
  }

  // additive = term { ("+" | "-") term }; term = unary { ("*" | "/") unary }
  std::unique_ptr<Expr> ParseAdditive() { return ParseBinary(/*additive=*/true); }

  // One operator gives a binary node; more give one kArith node folded from the left.
  std::unique_ptr<Expr> ParseBinary(bool additive) {
    const size_t begin = Peek().begin;
    const Position pos = Peek().pos;
    auto first = additive ? ParseBinary(false) : ParseUnary();
    if (first == nullptr) return nullptr;
    std::vector<std::unique_ptr<Expr>> operands;
    std::vector<ExprKind> ops;
    operands.push_back(std::move(first));
    while (true) {
      const TokenKind k = Peek().kind;
      ExprKind kind;
      if (additive && k == TokenKind::kPlus) {
        kind = ExprKind::kAdd;
      } else if (additive && k == TokenKind::kMinus) {
        kind = ExprKind::kSub;
      } else if (!additive && k == TokenKind::kStar) {
        kind = ExprKind::kMul;
      } else if (!additive && k == TokenKind::kSlash) {
        kind = ExprKind::kDiv;
      } else {
        break;
      }
      Next();
      auto right = additive ? ParseBinary(false) : ParseUnary();
      if (right == nullptr) return nullptr;
      operands.push_back(std::move(right));
      ops.push_back(kind);
    }
    if (ops.empty()) return std::move(operands[0]);
    auto e = New(ops.size() == 1 ? ops[0] : ExprKind::kArith, pos);
    e->children = std::move(operands);
    if (ops.size() > 1) e->ops = std::move(ops);
    return Finish(std::move(e), begin);
  }

  // unary = "-" unary | primary
  std::unique_ptr<Expr> ParseUnary() {
    if (Peek().kind != TokenKind::kMinus) return ParsePrimary();
    const Token& tok = Next();
    Nest nest(*this);
    if (nest.TooDeep()) return TooDeep(tok);
    if (Peek().kind == TokenKind::kInt && Peek().magnitude > kInt64Max) {
      // -9223372036854775808: the literal INT64_MIN.
      Next();
      auto e = New(ExprKind::kLiteral, tok.pos);
      e->literal = Value::Int(std::numeric_limits<int64_t>::min());
      return Finish(std::move(e), tok.begin);
    }
    auto operand = ParseUnary();
    if (operand == nullptr) return nullptr;
    auto e = New(ExprKind::kNeg, tok.pos);
    e->children.push_back(std::move(operand));
    return Finish(std::move(e), tok.begin);
  }

  // primary = literal | name | call | "(" rule ")"
  std::unique_ptr<Expr> ParsePrimary() {
    const Token& t = Peek();
    switch (t.kind) {
      case TokenKind::kInt:
        if (!IntFits(t)) return nullptr;
        return Literal(Value::Int(static_cast<int64_t>(t.magnitude)));
      case TokenKind::kDuration:
        return Literal(Value::Int(static_cast<int64_t>(t.magnitude)));
      case TokenKind::kFloat:
        return Literal(Value::Float(t.number));
      case TokenKind::kString:
        return Literal(Value::String(t.text));
      case TokenKind::kBacktick:
        return NameExpr();
      case TokenKind::kLParen:
        return ParseParens();
      case TokenKind::kIdent:
        break;
      default:
        return Expected("an expression");
    }
    if (t.raw == "true" || t.raw == "false") return Literal(Value::Bool(t.raw == "true"));
    if (IsReservedWord(t.raw)) return Fail(t, ReservedMessage("an expression", t));
    if (Peek(1).kind == TokenKind::kLParen) return ParseCall();
    return NameExpr();
  }

  static std::string ReservedMessage(absl::string_view expected, const Token& t) {
    std::string m = absl::StrCat("expected ", expected, ", found '", AsAbsl(t.raw), "'");
    if (t.raw != "and" && t.raw != "or" && t.raw != "not" && t.raw != "true" && t.raw != "false") {
      absl::StrAppend(&m, " (a reserved word: write `", AsAbsl(t.raw), "` to use it as a name)");
    }
    return m;
  }

  std::unique_ptr<Expr> Literal(Value v) {
    const Token& t = Next();
    auto e = New(ExprKind::kLiteral, t.pos);
    e->literal = std::move(v);
    return Finish(std::move(e), t.begin);
  }

  // REQUIRES: Peek() is a non-reserved identifier or a backtick name.
  std::unique_ptr<Expr> NameExpr() {
    const Token& t = Peek();
    std::string name;
    if (!TakeName(&name)) return nullptr;
    auto e = New(ExprKind::kName, t.pos);
    e->name = std::move(name);
    e->is_property = in_where_ > 0;
    return Finish(std::move(e), t.begin);
  }

  // name = identifier | `...`; fails naming `what` when the token is not a name.
  bool TakeName(std::string* name, absl::string_view what = "a name") {
    const Token& t = Peek();
    if (t.kind == TokenKind::kIdent) {
      if (IsReservedWord(t.raw)) {
        Fail(t, ReservedMessage(what, t));
        return false;
      }
      *name = std::string(t.raw);
    } else if (t.kind == TokenKind::kBacktick) {
      *name = t.text;
    } else {
      Expected(what);
      return false;
    }
    if (name->size() > kMaxNameBytes) {
      Fail(t, absl::StrCat("name is longer than ", kMaxNameBytes, " bytes"));
      return false;
    }
    Next();
    return true;
  }

  std::unique_ptr<Expr> ParseParens() {
    const Token& open = Next();
    Nest nest(*this);
    if (nest.TooDeep()) return TooDeep(open);
    auto inner = ParseOr();
    if (inner == nullptr) return nullptr;
    if (Peek().kind != TokenKind::kRParen) {
      if (CompareOpOf(Peek().kind)) return Fail(Peek(), ChainMessage());
      return Expected(absl::StrCat("')' to close '(' at ", PositionString(open.pos)));
    }
    Next();
    // The parentheses belong to the sub-expression's text and position.
    inner->pos = open.pos;
    return Finish(std::move(inner), open.begin);
  }

  // call: a function name followed by "(".
  std::unique_ptr<Expr> ParseCall() {
    const Token& name = Next();
    AggregateFn fn = AggregateFn::kCount;
    const Function f = LookupFunction(name.raw, &fn);
    if (f == Function::kNone) {
      return Fail(name, absl::StrCat("unknown function '", AsAbsl(name.raw), "'"));
    }
    Nest nest(*this);
    if (nest.TooDeep()) return TooDeep(name);
    Next();  // "("
    std::unique_ptr<Expr> e;
    switch (f) {
      case Function::kHas:
        e = New(ExprKind::kHas, name.pos);
        e->is_property = in_where_ > 0;
        if (!TakeName(&e->name, "a name in has()")) return nullptr;
        if (!Expect(TokenKind::kRParen, "')' after the name in has()")) return nullptr;
        break;
      case Function::kNow:
        e = New(ExprKind::kNow, name.pos);
        if (Peek().kind != TokenKind::kRParen) {
          return Fail(Peek(), absl::StrCat("now() takes no arguments: expected ')', found ",
                                           DescribeToken(Peek())));
        }
        Next();
        break;
      case Function::kInSegment:
        e = New(ExprKind::kInSegment, name.pos);
        if (!ParseSegmentId(e.get())) return nullptr;
        if (!Expect(TokenKind::kRParen, "')' after the segment id")) return nullptr;
        break;
      case Function::kSelectorAggregate:
        e = New(ExprKind::kAggregate, name.pos);
        e->fn = fn;
        if (!ParseSelector(&e->selector, AsAbsl(name.raw))) return nullptr;
        if (!Expect(TokenKind::kRParen, "')' after selector")) return nullptr;
        break;
      case Function::kPropertyAggregate:
        e = New(ExprKind::kAggregate, name.pos);
        e->fn = fn;
        if (!ParsePropertySelector(e.get(), AsAbsl(name.raw))) return nullptr;
        if (!Expect(TokenKind::kRParen, "')' after selector")) return nullptr;
        break;
      case Function::kSequence:
        e = New(ExprKind::kSequence, name.pos);
        if (!ParseSequence(e.get())) return nullptr;
        break;
      case Function::kNone:
        return nullptr;
    }
    return Finish(std::move(e), name.begin);
  }

  bool ParseSegmentId(Expr* e) {
    if (Peek().kind != TokenKind::kString) {
      Expected("a segment id string in in_segment()");
      return false;
    }
    const Token& t = Next();
    if (!ValidSegmentId(t.text)) {
      Fail(t, absl::StrCat("invalid segment id ", DescribeToken(t),
                           ": a segment id is 1 to 128 bytes of [A-Za-z0-9_.-]"));
      return false;
    }
    e->segment = t.text;
    return true;
  }

  // event_type = identifier | string | "*"
  bool ParseEventType(Selector* s, absl::string_view context) {
    const Token& t = Peek();
    s->pos = t.pos;
    if (t.kind == TokenKind::kStar) {
      s->any_type = true;
      s->event_type = "*";
    } else if (t.kind == TokenKind::kString) {
      if (t.text.empty() || t.text.size() > kMaxNameBytes) {
        Fail(t, "an event type has 1 to 128 bytes");
        return false;
      }
      s->event_type = t.text;
    } else if (t.kind == TokenKind::kIdent && !IsReservedWord(t.raw)) {
      if (t.raw.size() > kMaxNameBytes) {
        Fail(t, "an event type has 1 to 128 bytes");
        return false;
      }
      s->event_type = std::string(t.raw);
    } else {
      Expected(absl::StrCat("an event type (a name, a string or '*') in ", context));
      return false;
    }
    Next();
    return true;
  }

  // [ "where" rule ]: the predicate's names are event properties.
  bool ParseWhere(Selector* s) {
    if (!IsWord(Peek(), "where")) return true;
    Next();
    ++in_where_;
    s->where = ParseOr();
    --in_where_;
    return s->where != nullptr;
  }

  // [ "within" duration ]
  bool ParseWithin(int64_t* within_ms) {
    if (!IsWord(Peek(), "within")) return true;
    Next();
    const Token& t = Peek();
    if (t.kind != TokenKind::kDuration) {
      if (t.kind == TokenKind::kInt) {
        Fail(t, absl::StrCat("expected a duration after 'within', found '", AsAbsl(t.raw),
                             "' (add a unit: ms, s, m, h, d or w)"));
      } else {
        Expected("a duration after 'within' (e.g. 30d)");
      }
      return false;
    }
    Next();
    *within_ms = static_cast<int64_t>(t.magnitude);
    return true;
  }

  // The selector tail after the event type: [where rule] [within duration].
  bool ParseSelectorTail(Selector* s) {
    if (!ParseWhere(s) || !ParseWithin(&s->within_ms)) return false;
    if (IsWord(Peek(), "where")) {
      Fail(Peek(), "'where' must come before 'within'");
      return false;
    }
    return true;
  }

  // selector = event_type [ "where" rule ] [ "within" duration ]
  bool ParseSelector(Selector* s, absl::string_view fn) {
    return ParseEventType(s, absl::StrCat(fn, "()")) && ParseSelectorTail(s);
  }

  // event_type "." name [ "where" rule ] [ "within" duration ]
  bool ParsePropertySelector(Expr* e, absl::string_view fn) {
    if (!ParseEventType(&e->selector, absl::StrCat(fn, "()"))) return false;
    if (Peek().kind != TokenKind::kDot) {
      Expected(absl::StrCat("'.' and a property name after the event type in ", fn, "(), as in ",
                            fn, "(purchase.price)"));
      return false;
    }
    Next();
    if (!TakeName(&e->property, "a property name after '.'")) return false;
    return ParseSelectorTail(&e->selector);
  }

  // "sequence" "(" step { "," step } [ "within" duration ] ")"
  bool ParseSequence(Expr* e) {
    while (true) {
      Selector step;
      if (!ParseEventType(&step, "sequence()") || !ParseWhere(&step)) return false;
      e->steps.push_back(std::move(step));
      if (Peek().kind == TokenKind::kComma) {
        Next();
        continue;
      }
      if (IsWord(Peek(), "within")) {
        if (!ParseWithin(&e->within_ms)) return false;
        if (Peek().kind == TokenKind::kComma) {
          Fail(Peek(), "'within' must come last in sequence(): it applies to the whole sequence");
          return false;
        }
        return Expect(TokenKind::kRParen, "')' after the duration of sequence()");
      }
      return Expect(TokenKind::kRParen, "',', 'within' or ')' after a step of sequence()");
    }
  }

  std::string_view text_;
  std::vector<Token> tokens_;
  size_t i_ = 0;
  size_t prev_end_ = 0;
  int depth_ = 0;
  int in_where_ = 0;
  bool failed_ = false;
  Diagnostic error_;
};

absl::Status ToStatus(const Diagnostic& d) {
  return absl::InvalidArgumentError(absl::StrCat(d.pos.line, ":", d.pos.column, ": ", d.message));
}

// Parses and checks a rule; on failure returns null and stores every diagnostic found
// (at least one) in *diags.
std::unique_ptr<Expr> ParseAndCheck(std::string_view text, std::vector<Diagnostic>* diags) {
  if (text.size() > kMaxRuleBytes) {
    diags->push_back(
        Diagnostic{Position{}, absl::StrCat("rule is longer than ", kMaxRuleBytes, " bytes")});
    return nullptr;
  }
  Parser parser(text);
  auto rule = parser.ParseWholeRule();
  if (rule == nullptr) {
    diags->push_back(parser.error());
    return nullptr;
  }
  *diags = CheckRule(*rule);
  if (!diags->empty()) return nullptr;
  return rule;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Expr>> ParseRule(std::string_view text) {
  std::vector<Diagnostic> diags;
  auto rule = ParseAndCheck(text, &diags);
  if (rule == nullptr) return ToStatus(diags.front());
  return rule;
}

absl::StatusOr<Selector> ParseFunnelStep(std::string_view text) {
  if (text.size() > kMaxRuleBytes) {
    return ToStatus(Diagnostic{
        Position{}, absl::StrCat("funnel step is longer than ", kMaxRuleBytes, " bytes")});
  }
  Parser parser(text);
  std::optional<Selector> step = parser.ParseWholeFunnelStep();
  if (!step.has_value()) return ToStatus(parser.error());
  std::vector<Diagnostic> diags = CheckFunnelStep(*step);
  if (!diags.empty()) return ToStatus(diags.front());
  return std::move(*step);
}

std::vector<Diagnostic> ValidateRule(std::string_view text) {
  std::vector<Diagnostic> diags;
  ParseAndCheck(text, &diags);
  return diags;
}

}  // namespace segd
