#include "core/rule_lexer.h"

#include <cmath>
#include <cstdlib>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace segd {
namespace {

constexpr uint64_t kInt64Max = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());

bool IsIdentStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsIdentChar(char c) { return IsIdentStart(c) || (c >= '0' && c <= '9'); }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Decodes the UTF-8 sequence at text[i]; returns its length, or 0 when it is invalid
// (truncated, overlong, a surrogate or past U+10FFFF).
size_t DecodeUtf8(std::string_view text, size_t i, char32_t* cp) {
  const auto b0 = static_cast<unsigned char>(text[i]);
  if (b0 < 0x80) {
    *cp = b0;
    return 1;
  }
  size_t len;
  char32_t min;
  if ((b0 & 0xe0) == 0xc0) {
    len = 2, min = 0x80, *cp = b0 & 0x1f;
  } else if ((b0 & 0xf0) == 0xe0) {
    len = 3, min = 0x800, *cp = b0 & 0x0f;
  } else if ((b0 & 0xf8) == 0xf0) {
    len = 4, min = 0x10000, *cp = b0 & 0x07;
  } else {
    return 0;
  }
  if (i + len > text.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(text[i + k]);
    if ((b & 0xc0) != 0x80) return 0;
    *cp = (*cp << 6) | (b & 0x3f);
  }
  if (*cp < min || *cp > 0x10ffff || (*cp >= 0xd800 && *cp <= 0xdfff)) return 0;
  return len;
}

void AppendUtf8(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xc0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xe0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else {
    out->push_back(static_cast<char>(0xf0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  }
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Milliseconds per duration unit, 0 for an unknown unit.
int64_t UnitMs(std::string_view unit) {
  if (unit == "ms") return 1;
  if (unit == "s") return 1000;
  if (unit == "m") return 60 * 1000;
  if (unit == "h") return 3600 * 1000;
  if (unit == "d") return 86400 * 1000;
  if (unit == "w") return 7 * 86400 * 1000;
  return 0;
}

// Shortens `s` to at most `max` bytes at a code point boundary, marking the cut.
std::string Truncate(std::string_view s, size_t max) {
  if (s.size() <= max) return std::string(s);
  size_t cut = max;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xc0) == 0x80) --cut;
  return absl::StrCat(AsAbsl(s.substr(0, cut)), "...");
}

class Lexer {
 public:
  explicit Lexer(std::string_view text) : text_(text) {}

  std::vector<Token> Run() {
    std::vector<Token> tokens;
    while (true) {
      if (!SkipSpaceAndComments()) {
        tokens.push_back(std::move(error_));
        return tokens;
      }
      Token t = LexOne();
      const TokenKind kind = t.kind;
      tokens.push_back(std::move(t));
      if (kind == TokenKind::kEnd || kind == TokenKind::kError) return tokens;
    }
  }

 private:
  bool AtEnd() const { return off_ >= text_.size(); }
  char Cur() const { return AtEnd() ? '\0' : text_[off_]; }
  char At(size_t ahead) const { return off_ + ahead < text_.size() ? text_[off_ + ahead] : '\0'; }

  // Moves past one code point, keeping the line and column. False on invalid UTF-8
  // (error_ is set, positioned at the bad byte).
  bool Advance(char32_t* out = nullptr) {
    char32_t cp;
    const size_t len = DecodeUtf8(text_, off_, &cp);
    if (len == 0) {
      SetError(pos_, off_, "invalid UTF-8 in rule text");
      return false;
    }
    off_ += len;
    if (cp == '\n') {
      ++pos_.line;
      pos_.column = 1;
    } else {
      ++pos_.column;
    }
    if (out != nullptr) *out = cp;
    return true;
  }

  void SetError(Position pos, size_t begin, std::string message) {
    error_ = Token();
    error_.kind = TokenKind::kError;
    error_.pos = pos;
    error_.begin = begin;
    error_.end = begin;
    error_.text = std::move(message);
  }

  Token Error(Position pos, size_t begin, std::string message) {
    SetError(pos, begin, std::move(message));
    return std::move(error_);
  }

  bool SkipSpaceAndComments() {
    while (!AtEnd()) {
      const char c = Cur();
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
        Advance();
      } else if (c == '#') {
        while (!AtEnd() && Cur() != '\n') {
          if (!Advance()) return false;
        }
      } else {
        break;
      }
    }
    return true;
  }

  Token Make(TokenKind kind, Position pos, size_t begin) {
    Token t;
    t.kind = kind;
    t.pos = pos;
    t.begin = begin;
    t.end = off_;
    t.raw = text_.substr(begin, off_ - begin);
    return t;
  }

  Token LexOne() {
    const Position pos = pos_;
    const size_t begin = off_;
    if (AtEnd()) return Make(TokenKind::kEnd, pos, begin);
    const char c = Cur();
    if (IsIdentStart(c)) {
      while (IsIdentChar(Cur())) ++off_, ++pos_.column;
      return Make(TokenKind::kIdent, pos, begin);
    }
    if (IsDigit(c)) return LexNumber();
    if (c == '"' || c == '\'') return LexString();
    if (c == '`') return LexBacktick();
    auto punct = [&](TokenKind kind, size_t len) {
      off_ += len;
      pos_.column += len;
      return Make(kind, pos, begin);
    };
    switch (c) {
      case '(':
        return punct(TokenKind::kLParen, 1);
      case ')':
        return punct(TokenKind::kRParen, 1);
      case '[':
        return punct(TokenKind::kLBracket, 1);
      case ']':
        return punct(TokenKind::kRBracket, 1);
      case ',':
        return punct(TokenKind::kComma, 1);
      case '.':
        return punct(TokenKind::kDot, 1);
      case '*':
        return punct(TokenKind::kStar, 1);
      case '+':
        return punct(TokenKind::kPlus, 1);
      case '-':
        return punct(TokenKind::kMinus, 1);
      case '/':
        return punct(TokenKind::kSlash, 1);
      case '=':
        return punct(TokenKind::kEq, 1);
      case '<':
        return At(1) == '=' ? punct(TokenKind::kLe, 2) : punct(TokenKind::kLt, 1);
      case '>':
        return At(1) == '=' ? punct(TokenKind::kGe, 2) : punct(TokenKind::kGt, 1);
      case '!':
        if (At(1) == '=') return punct(TokenKind::kNe, 2);
        return Error(pos, begin, "unexpected character '!' (use 'not' or '!=')");
      default:
        break;
    }
    char32_t cp;
    if (DecodeUtf8(text_, off_, &cp) == 0) return Error(pos, begin, "invalid UTF-8 in rule text");
    if (cp < 0x20 || cp == 0x7f) {
      return Error(pos, begin, absl::StrFormat("unexpected character U+%04X", cp));
    }
    std::string shown;
    AppendUtf8(cp, &shown);
    return Error(pos, begin, absl::StrCat("unexpected character '", shown, "'"));
  }

  // int, float or duration. A letter run right after the digits is a duration unit;
  // `1.5`, `2e3`, `1.5e-3` are floats.
  Token LexNumber() {
    const Position pos = pos_;
    const size_t begin = off_;
    auto step = [&] { ++off_, ++pos_.column; };
    while (IsDigit(Cur())) step();
    bool is_float = false;
    if (Cur() == '.' && IsDigit(At(1))) {
      is_float = true;
      step();
      while (IsDigit(Cur())) step();
    }
    if ((Cur() == 'e' || Cur() == 'E') &&
        (IsDigit(At(1)) || ((At(1) == '+' || At(1) == '-') && IsDigit(At(2))))) {
      is_float = true;
      step();
      if (Cur() == '+' || Cur() == '-') step();
      while (IsDigit(Cur())) step();
    }
    const size_t number_end = off_;
    while (IsIdentChar(Cur())) step();
    const std::string_view number = text_.substr(begin, number_end - begin);
    const std::string_view suffix = text_.substr(number_end, off_ - number_end);
    const std::string_view raw = text_.substr(begin, off_ - begin);
    if (is_float) {
      if (!suffix.empty()) {
        return Error(
            pos, begin,
            absl::StrCat("invalid number '", Truncate(raw, 40),
                         "': a duration is an int followed by a unit (ms, s, m, h, d, w)"));
      }
      const std::string copy(number);
      const double value = std::strtod(copy.c_str(), nullptr);
      if (std::isinf(value)) {
        return Error(pos, begin, absl::StrCat("float ", Truncate(number, 40), " is out of range"));
      }
      Token t = Make(TokenKind::kFloat, pos, begin);
      t.number = value;
      return t;
    }
    uint64_t magnitude = 0;
    bool overflow = false;
    for (char d : number) {
      const uint64_t digit = static_cast<uint64_t>(d - '0');
      if (magnitude > (kInt64Max + 1 - digit) / 10) {
        overflow = true;
        break;
      }
      magnitude = magnitude * 10 + digit;
    }
    if (suffix.empty()) {
      if (overflow) {
        return Error(pos, begin,
                     absl::StrCat("integer ", Truncate(number, 40), " does not fit in int64"));
      }
      Token t = Make(TokenKind::kInt, pos, begin);
      t.magnitude = magnitude;
      return t;
    }
    const int64_t unit_ms = UnitMs(suffix);
    if (unit_ms == 0) {
      return Error(pos, begin,
                   absl::StrCat("unknown duration unit '", Truncate(suffix, 40), "' in '",
                                Truncate(raw, 40), "' (units: ms, s, m, h, d, w)"));
    }
    if (overflow || magnitude > kInt64Max / static_cast<uint64_t>(unit_ms)) {
      return Error(pos, begin,
                   absl::StrCat("duration ", Truncate(raw, 40), " overflows int64 milliseconds"));
    }
    Token t = Make(TokenKind::kDuration, pos, begin);
    t.magnitude = magnitude * static_cast<uint64_t>(unit_ms);
    return t;
  }

  // A string in single or double quotes; it may not span lines.
  Token LexString() {
    const Position pos = pos_;
    const size_t begin = off_;
    const char quote = Cur();
    Advance();
    std::string value;
    while (true) {
      if (AtEnd() || Cur() == '\n') return Error(pos, begin, "unterminated string");
      const char c = Cur();
      if (c == quote) {
        Advance();
        break;
      }
      if (c != '\\') {
        const size_t from = off_;
        if (!Advance()) return std::move(error_);
        value.append(text_.substr(from, off_ - from));
        continue;
      }
      const Position esc_pos = pos_;
      const size_t esc_begin = off_;
      Advance();
      if (AtEnd() || Cur() == '\n') return Error(pos, begin, "unterminated string");
      const char e = Cur();
      switch (e) {
        case '\\':
          value.push_back('\\');
          break;
        case '"':
          value.push_back('"');
          break;
        case '\'':
          value.push_back('\'');
          break;
        case 'n':
          value.push_back('\n');
          break;
        case 't':
          value.push_back('\t');
          break;
        case 'r':
          value.push_back('\r');
          break;
        case 'u': {
          char32_t cp = 0;
          for (size_t k = 1; k <= 4; ++k) {
            const int h = HexValue(At(k));
            if (h < 0) {
              return Error(esc_pos, esc_begin,
                           "invalid escape '\\u': expected 4 hex digits (\\uXXXX)");
            }
            cp = cp * 16 + static_cast<char32_t>(h);
          }
          if (cp >= 0xd800 && cp <= 0xdfff) {
            return Error(
                esc_pos, esc_begin,
                absl::StrFormat("invalid escape '\\u%04X': a surrogate is not a character", cp));
          }
          AppendUtf8(cp, &value);
          off_ += 4;
          pos_.column += 4;
          break;
        }
        default: {
          char32_t cp;
          const size_t len = DecodeUtf8(text_, off_, &cp);
          if (len == 0) return Error(pos_, off_, "invalid UTF-8 in rule text");
          return Error(esc_pos, esc_begin,
                       absl::StrCat("invalid escape '\\", AsAbsl(text_.substr(off_, len)),
                                    "' in string (valid: \\\\ \\\" \\' \\n \\t \\r \\uXXXX)"));
        }
      }
      Advance();
    }
    Token t = Make(TokenKind::kString, pos, begin);
    t.text = std::move(value);
    return t;
  }

  // `any characters but a backtick`, newlines included.
  Token LexBacktick() {
    const Position pos = pos_;
    const size_t begin = off_;
    Advance();
    const size_t from = off_;
    while (true) {
      if (AtEnd()) return Error(pos, begin, "unterminated backtick name");
      if (Cur() == '`') break;
      if (!Advance()) return std::move(error_);
    }
    const size_t to = off_;
    Advance();
    if (to == from) return Error(pos, begin, "empty backtick name: a name has 1 to 128 bytes");
    Token t = Make(TokenKind::kBacktick, pos, begin);
    t.text = std::string(text_.substr(from, to - from));
    return t;
  }

  std::string_view text_;
  size_t off_ = 0;
  Position pos_;
  Token error_;
};

}  // namespace

std::vector<Token> LexRule(std::string_view text) { return Lexer(text).Run(); }

bool IsReservedWord(std::string_view word) {
  static constexpr std::string_view kReserved[] = {
      "and",       "or",      "not",  "in",    "contains", "starts_with",
      "ends_with", "matches", "true", "false", "where",    "within"};
  for (std::string_view r : kReserved) {
    if (word == r) return true;
  }
  return false;
}

std::string DescribeToken(const Token& token) {
  switch (token.kind) {
    case TokenKind::kEnd:
      return "end of rule";
    case TokenKind::kString:
      return Truncate(token.raw, 40);
    default:
      return absl::StrCat("'", Truncate(token.raw, 40), "'");
  }
}

}  // namespace segd
