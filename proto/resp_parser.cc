// Incremental RESP2 request parser; see resp_parser.h for the contract. Each state mirrors a step
// of Redis 7.0's processMultibulkBuffer() / processInlineBuffer(), quirks included, so that the
// same bytes get the same replies from corral as from redis-server.
#include "proto/resp_parser.h"

#include <cstring>

#include "proto/errors.h"

namespace corral::proto {
namespace {

constexpr size_t kNpos = std::string_view::npos;

// Redis's limits before AUTH when a password is set (authRequired()).
constexpr int64_t kUnauthMaxMultibulk = 10;
constexpr int64_t kUnauthMaxBulk = 16 * 1024;

// Buffers that one huge command grew are released before the next command, so a connection
// does not hold them forever; ordinary traffic never reaches these sizes.
constexpr size_t kRetainedArgs = 1024;
constexpr size_t kRetainedBytes = 64 * 1024;

// isspace() in the C locale: what sdssplitargs() skips between arguments.
bool IsBlank(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

// Inside an unquoted argument sdssplitargs() stops only at these (and the end of the line):
// "\v" and "\f" belong to the argument.
bool EndsPlainArg(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

bool IsHexDigit(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return c - 'A' + 10;
}

// The character a backslash escape inside double quotes stands for.
char Unescape(char c) {
  switch (c) {
    case 'n':
      return '\n';
    case 'r':
      return '\r';
    case 't':
      return '\t';
    case 'b':
      return '\b';
    case 'a':
      return '\a';
    default:
      return c;
  }
}

// ParseInt64() with the common case inlined: a short positive length. Same answers.
bool ParseLength(std::string_view s, int64_t* value) {
  if (s.empty() || s.size() > 18 || s[0] < '1' || s[0] > '9') return ParseInt64(s, value);
  int64_t n = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + (c - '0');
  }
  *value = n;
  return true;
}

// A header's number as ParseLength reads it, for the fast path: plain decimal, "0" or a leading
// 1-9, at most 18 digits, then '\r' and one more byte (not looked at, as Redis does). Moves `p`
// past them. False, `p` unmoved, for everything else; the state machine then reads the
// same bytes and answers them (a partial line, an error, a NUL).
[[gnu::always_inline]] inline bool ReadHeaderNumber(const char*& p, const char* end,
                                                    int64_t* value) {
  const char* q = p;
  if (q == end) return false;
  unsigned digit = static_cast<unsigned char>(*q) - '0';
  if (digit > 9) return false;
  int64_t n = digit;
  ++q;
  if (n != 0) {
    const char* const last = end - q > 17 ? q + 17 : end;
    while (q != last && (digit = static_cast<unsigned char>(*q) - '0') <= 9) {
      n = n * 10 + digit;
      ++q;
    }
  }
  if (end - q < 2 || *q != '\r') return false;
  p = q + 2;
  *value = n;
  return true;
}

}  // namespace

RespParser::RespParser(RespLimits limits) : limits_(limits) {}

void RespParser::Reset() {
  state_ = State::kStart;
  pos_ = 0;
  scan_ = 0;
  nul_seen_ = false;
  remaining_ = 0;
  bulk_len_ = 0;
  consumed_ = 0;
  spans_.clear();
  args_.clear();
  error_.clear();
}

ParseStatus RespParser::Parse(std::string_view input) {
  if (state_ == State::kError) return ParseStatus::kError;
  consumed_ = 0;
  args_.clear();
  if (pos_ > input.size() || scan_ > input.size()) {
    // The caller broke the contract and handed back fewer bytes than before. Its input still
    // starts at the current command, so parsing again from there is correct, just slower.
    state_ = State::kStart;
    pos_ = 0;
  }
  if (state_ == State::kStart && pos_ == 0) {
    ReleaseOversizedBuffers();
    if (ParseWhole(input)) return ParseStatus::kCommand;
  }

  while (true) {
    Step step = Step::kContinue;
    switch (state_) {
      case State::kStart:
        if (pos_ == input.size()) return ParseStatus::kNeedMore;
        StartLine(input[pos_] == '*' ? State::kCount : State::kInline);
        break;
      case State::kInline:
        step = ParseInline(input);
        break;
      case State::kCount:
        step = ParseCount(input);
        break;
      case State::kBulkHeader:
        step = ParseBulkHeader(input);
        break;
      case State::kBulkData:
        step = ParseBulkData(input);
        break;
      case State::kError:
        return ParseStatus::kError;
    }
    switch (step) {
      case Step::kContinue:
        break;
      case Step::kCommand:
        return ParseStatus::kCommand;
      case Step::kNeedMore:
        return ParseStatus::kNeedMore;
      case Step::kError:
        return ParseStatus::kError;
    }
  }
}

bool RespParser::ParseWhole(std::string_view input) {
  // Pipelined commands arrive whole: read one straight through, with none of the state machine's
  // bookkeeping (which costs several times as much per command). It changes nothing but args_
  // unless the command is whole and well formed; otherwise the state machine reads it from the
  // start, and the answer is the same either way (limits before AUTH are left to it too).
  if (!authenticated_ || input.empty() || input[0] != '*') return false;
  const char* p = input.data() + 1;
  const char* const end = input.data() + input.size();
  int64_t count = 0;
  if (!ReadHeaderNumber(p, end, &count) || count == 0 || count > limits_.max_multibulk_len) {
    return false;
  }
  for (int64_t i = 0; i < count; ++i) {
    int64_t len = 0;
    if (p == end || *p != '$') break;
    ++p;
    if (!ReadHeaderNumber(p, end, &len) || len > limits_.max_bulk_len || end - p < len + 2) {
      break;
    }
    args_.emplace_back(p, static_cast<size_t>(len));
    p += len + 2;
  }
  if (args_.size() != static_cast<size_t>(count)) {
    args_.clear();
    return false;
  }
  consumed_ = static_cast<size_t>(p - input.data());
  return true;
}

void RespParser::StartLine(State state) {
  state_ = state;
  scan_ = pos_;
  nul_seen_ = false;
}

size_t RespParser::FindInHeader(std::string_view input, char c) {
  // Count lines are a few bytes long: a plain loop beats two memchr() calls.
  if (nul_seen_) return kNpos;
  for (size_t i = scan_; i < input.size(); ++i) {
    if (input[i] == c) {
      scan_ = i;
      return i;
    }
    if (input[i] == '\0') {
      nul_seen_ = true;
      return kNpos;
    }
  }
  scan_ = input.size();
  return kNpos;
}

size_t RespParser::FindInLine(std::string_view input, char c) {
  if (nul_seen_) return kNpos;
  const char* begin = input.data() + scan_;
  const size_t size = input.size() - scan_;
  const auto* hit = static_cast<const char*>(std::memchr(begin, c, size));
  const size_t searched = hit == nullptr ? size : static_cast<size_t>(hit - begin);
  if (std::memchr(begin, '\0', searched) != nullptr) {
    nul_seen_ = true;
    return kNpos;
  }
  scan_ += searched;
  return hit == nullptr ? kNpos : scan_;
}

RespParser::Step RespParser::ParseInline(std::string_view input) {
  const size_t newline = FindInLine(input, '\n');
  if (newline == kNpos) {
    if (input.size() - pos_ > limits_.max_inline) return Fail("too big inline request");
    return Step::kNeedMore;
  }
  size_t end = newline;
  if (end > pos_ && input[end - 1] == '\r') --end;
  if (!SplitInline(input.substr(pos_, end - pos_))) return Fail("unbalanced quotes in request");
  pos_ = newline + 1;
  if (args_.empty()) {
    // A blank line: Redis resets the client and moves on.
    state_ = State::kStart;
    return Step::kContinue;
  }
  return Complete();
}

RespParser::Step RespParser::ParseCount(std::string_view input) {
  const size_t cr = FindInHeader(input, '\r');
  if (cr == kNpos) {
    if (input.size() - pos_ > limits_.max_inline) return Fail("too big mbulk count string");
    return Step::kNeedMore;
  }
  // Redis waits for the byte after '\r' and then skips it without checking that it is '\n'.
  if (cr + 2 > input.size()) return Step::kNeedMore;
  int64_t count = 0;
  if (!ParseLength(input.substr(pos_ + 1, cr - pos_ - 1), &count) ||
      count > limits_.max_multibulk_len) {
    return Fail("invalid multibulk length");
  }
  if (count > kUnauthMaxMultibulk && !authenticated_) {
    return Fail("unauthenticated multibulk length");
  }
  pos_ = cr + 2;
  if (count <= 0) {
    // "*0\r\n", "*-1\r\n", "*-10\r\n": an empty command, skipped.
    state_ = State::kStart;
    return Step::kContinue;
  }
  // No reserve() from `count`: the client may announce two billion elements and send none.
  remaining_ = count;
  spans_.clear();
  StartLine(State::kBulkHeader);
  return Step::kContinue;
}

RespParser::Step RespParser::ParseBulkHeader(std::string_view input) {
  const size_t cr = FindInHeader(input, '\r');
  if (cr == kNpos) {
    if (input.size() - pos_ > limits_.max_inline) return Fail("too big bulk count string");
    return Step::kNeedMore;
  }
  if (cr + 2 > input.size()) return Step::kNeedMore;
  if (input[pos_] != '$') {
    // Redis formats the byte with "%c" and then maps CR and LF to spaces.
    const char got = (input[pos_] == '\r' || input[pos_] == '\n') ? ' ' : input[pos_];
    const char message[] = {'e',  'x', 'p', 'e', 'c', 't', 'e', 'd',  ' ', '\'', '$',
                            '\'', ',', ' ', 'g', 'o', 't', ' ', '\'', got, '\''};
    return Fail(std::string_view(message, sizeof(message)));
  }
  int64_t len = 0;
  if (!ParseLength(input.substr(pos_ + 1, cr - pos_ - 1), &len) || len < 0 ||
      len > limits_.max_bulk_len) {
    return Fail("invalid bulk length");
  }
  if (len > kUnauthMaxBulk && !authenticated_) return Fail("unauthenticated bulk length");
  pos_ = cr + 2;
  bulk_len_ = len;
  state_ = State::kBulkData;
  return Step::kContinue;
}

RespParser::Step RespParser::ParseBulkData(std::string_view input) {
  // Like Redis, take the two bytes after the data as its CRLF without looking at them. Only
  // lengths are compared here, so a large bulk arriving in many reads costs nothing per read.
  const uint64_t needed = static_cast<uint64_t>(bulk_len_) + 2;
  if (input.size() - pos_ < needed) return Step::kNeedMore;
  spans_.push_back({pos_, static_cast<size_t>(bulk_len_)});
  pos_ += static_cast<size_t>(needed);
  if (--remaining_ > 0) {
    StartLine(State::kBulkHeader);
    return Step::kContinue;
  }
  for (const Span& span : spans_) args_.emplace_back(input.data() + span.offset, span.size);
  return Complete();
}

RespParser::Step RespParser::Complete() {
  consumed_ = pos_;
  // The caller drops the consumed bytes: the next input starts at the next command.
  pos_ = 0;
  scan_ = 0;
  state_ = State::kStart;
  return Step::kCommand;
}

RespParser::Step RespParser::Fail(std::string_view message) {
  error_ = "ERR Protocol error: ";
  error_.append(message);
  state_ = State::kError;
  args_.clear();
  consumed_ = 0;
  return Step::kError;
}

bool RespParser::SplitInline(std::string_view line) {
  args_.clear();
  unescaped_.clear();
  const size_t n = line.size();
  // Reads the line like the C string sdssplitargs() sees: it holds no NUL (FindInLine stops at
  // one), so NUL stands for its end.
  auto at = [line, n](size_t i) { return i < n ? line[i] : '\0'; };
  size_t i = 0;
  while (true) {
    while (i < n && IsBlank(line[i])) ++i;
    if (i == n) return true;

    // The common case, an argument without quotes, stays a view into the line.
    const size_t start = i;
    while (i < n && !EndsPlainArg(line[i]) && line[i] != '"' && line[i] != '\'') ++i;
    if (i == n || EndsPlainArg(line[i])) {
      args_.push_back(line.substr(start, i - start));
      if (i < n) ++i;
      continue;
    }

    // Quotes: unescape into unescaped_. Its capacity covers the whole line, since unescaping
    // never lengthens text, so the views taken into it stay valid.
    if (unescaped_.capacity() < n) unescaped_.reserve(n);
    const size_t arg_start = unescaped_.size();
    unescaped_.append(line.substr(start, i - start));
    bool in_double = false;
    bool in_single = false;
    bool done = false;
    while (!done) {
      const char c = at(i);
      if (in_double) {
        if (c == '\\' && at(i + 1) == 'x' && IsHexDigit(at(i + 2)) && IsHexDigit(at(i + 3))) {
          unescaped_.push_back(static_cast<char>(HexValue(at(i + 2)) * 16 + HexValue(at(i + 3))));
          i += 3;
        } else if (c == '\\' && at(i + 1) != '\0') {
          ++i;
          unescaped_.push_back(Unescape(line[i]));
        } else if (c == '"') {
          // A closing quote must be followed by a blank or the end of the line.
          if (at(i + 1) != '\0' && !IsBlank(at(i + 1))) return false;
          done = true;
        } else if (c == '\0') {
          return false;  // unterminated quotes
        } else {
          unescaped_.push_back(c);
        }
      } else if (in_single) {
        if (c == '\\' && at(i + 1) == '\'') {
          ++i;
          unescaped_.push_back('\'');
        } else if (c == '\'') {
          if (at(i + 1) != '\0' && !IsBlank(at(i + 1))) return false;
          done = true;
        } else if (c == '\0') {
          return false;
        } else {
          unescaped_.push_back(c);
        }
      } else if (c == '\0' || EndsPlainArg(c)) {
        done = true;
      } else if (c == '"') {
        in_double = true;
      } else if (c == '\'') {
        in_single = true;
      } else {
        unescaped_.push_back(c);
      }
      if (at(i) != '\0') ++i;
    }
    args_.emplace_back(unescaped_.data() + arg_start, unescaped_.size() - arg_start);
  }
}

void RespParser::ReleaseOversizedBuffers() {
  if (args_.capacity() > kRetainedArgs) std::vector<std::string_view>().swap(args_);
  if (spans_.capacity() > kRetainedArgs) std::vector<Span>().swap(spans_);
  if (unescaped_.capacity() > kRetainedBytes) std::string().swap(unescaped_);
}

}  // namespace corral::proto
