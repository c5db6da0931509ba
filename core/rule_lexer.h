#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/string_view.h"
#include "core/rule.h"
#include "core/text.h"

namespace segd {

enum class TokenKind : uint8_t {
  kEnd,       // end of the text
  kError,     // a lexical error: `text` holds the message (without position)
  kIdent,     // identifier, keyword or function name: [A-Za-z_][A-Za-z0-9_]*
  kBacktick,  // `name`: `text` holds the name without the backticks
  kInt,       // decimal int: `magnitude`, at most 2^63 (2^63 only fits when negated)
  kFloat,     // `number`
  kDuration,  // int + unit: `magnitude` is the duration in ms (fits int64)
  kString,    // `text` holds the decoded string
  kLParen,
  kRParen,
  kLBracket,
  kRBracket,
  kComma,
  kDot,
  kStar,
  kPlus,
  kMinus,
  kSlash,
  kEq,
  kNe,
  kLt,
  kLe,
  kGt,
  kGe,
};

struct Token {
  TokenKind kind = TokenKind::kEnd;
  Position pos;            // of the token's first character
  size_t begin = 0;        // byte offsets of the token in the rule text
  size_t end = 0;          // one past its last byte
  std::string_view raw;    // the token as written
  std::string text;        // kBacktick, kString: decoded content; kError: the message
  uint64_t magnitude = 0;  // kInt, kDuration
  double number = 0;       // kFloat
};

// Splits rule text into tokens (SPEC §3), skipping whitespace and `#` comments. The
// result always ends with exactly one kEnd or kError token: lexing stops at the first
// lexical error (invalid UTF-8, unterminated string or name, bad escape, number out of
// range, unknown duration unit, unexpected character), so that a parser that stops at
// its first error reports the earliest one in the text.
std::vector<Token> LexRule(std::string_view text);

// Whether `word` is always reserved (SPEC §3) and so cannot be a bare name.
bool IsReservedWord(std::string_view word);

// How an error message names a token: `'x'`, a string as written, or "end of rule".
std::string DescribeToken(const Token& token);

}  // namespace segd
