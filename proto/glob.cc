// Redis's stringmatchlen(), ported with bounds-checked reads: where Redis's C reads the
// terminating NUL past the pattern's end, this reads '\0' through At().
#include "proto/glob.h"

namespace corral::proto {
namespace {

int Lower(unsigned char c) { return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c; }

// The byte at `i`, or '\0' past the end (what Redis reads from its NUL-terminated sds strings).
unsigned char At(std::string_view s, size_t i) {
  return i < s.size() ? static_cast<unsigned char>(s[i]) : '\0';
}

bool Equal(unsigned char a, unsigned char b, bool nocase) {
  return nocase ? Lower(a) == Lower(b) : a == b;
}

bool Match(std::string_view p, std::string_view s, bool nocase, bool* skip_longer) {
  while (!p.empty() && !s.empty()) {
    switch (p[0]) {
      case '*': {
        while (p.size() > 1 && p[1] == '*') p.remove_prefix(1);
        if (p.size() == 1) return true;
        while (!s.empty()) {
          if (Match(p.substr(1), s, nocase, skip_longer)) return true;
          if (*skip_longer) return false;
          s.remove_prefix(1);
        }
        // The rest of the pattern matches nowhere in the rest of the text: a longer match for
        // an earlier `*` cannot help either (Redis's skipLongerMatches).
        *skip_longer = true;
        return false;
      }
      case '?':
        s.remove_prefix(1);
        break;
      case '[': {
        p.remove_prefix(1);
        const bool negate = At(p, 0) == '^';
        if (negate) p.remove_prefix(1);
        bool match = false;
        const unsigned char c = At(s, 0);
        // `p` keeps one byte at the loop's end (the `]`, or the last byte of an unterminated
        // set), which the step after the switch removes.
        while (true) {
          if (At(p, 0) == '\\' && p.size() >= 2) {
            p.remove_prefix(1);
            if (At(p, 0) == c) match = true;
          } else if (At(p, 0) == ']') {
            break;
          } else if (p.empty()) {
            break;  // unterminated: Redis steps back one byte; the caller's step is skipped below
          } else if (p.size() >= 3 && p[1] == '-') {
            int start = At(p, 0), end = At(p, 2), ch = c;
            if (start > end) std::swap(start, end);
            if (nocase) {
              start = Lower(static_cast<unsigned char>(start));
              end = Lower(static_cast<unsigned char>(end));
              ch = Lower(c);
            }
            p.remove_prefix(2);
            if (ch >= start && ch <= end) match = true;
          } else if (Equal(At(p, 0), c, nocase)) {
            match = true;
          }
          p.remove_prefix(1);
        }
        if (negate) match = !match;
        if (!match) return false;
        s.remove_prefix(1);
        if (p.empty()) {
          // Redis stepped back onto the set's last byte and then past it: the pattern is spent.
          if (s.empty()) return true;
          return false;
        }
        break;
      }
      case '\\':
        if (p.size() >= 2) p.remove_prefix(1);
        [[fallthrough]];
      default:
        if (!Equal(At(p, 0), At(s, 0), nocase)) return false;
        s.remove_prefix(1);
        break;
    }
    p.remove_prefix(1);
    if (s.empty()) {
      while (!p.empty() && p[0] == '*') p.remove_prefix(1);
      break;
    }
  }
  return p.empty() && s.empty();
}

}  // namespace

bool GlobMatch(std::string_view pattern, std::string_view text, bool nocase) {
  bool skip_longer = false;
  return Match(pattern, text, nocase, &skip_longer);
}

bool GlobIsLiteral(std::string_view pattern) {
  return pattern.find_first_of("*?[\\") == std::string_view::npos;
}

}  // namespace corral::proto
