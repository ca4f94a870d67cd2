// Unit tests for proto::GlobMatch against the cases Redis's stringmatchlen() decides (src/util.c,
// tests/unit/keyspace.tcl), including its edge cases: unterminated sets, escapes inside sets,
// reversed ranges, trailing backslashes, and the bound on nested stars.
#include "proto/glob.h"

#include <gtest/gtest.h>

#include <string>

namespace corral::proto {
namespace {

struct Case {
  const char* pattern;
  const char* text;
  bool match;
};

TEST(GlobTest, RedisCases) {
  const Case cases[] = {
      // Literals and the empty pattern.
      {"", "", true},
      {"", "a", false},
      {"a", "", false},
      {"abc", "abc", true},
      {"abc", "abcd", false},
      {"abc", "ab", false},
      // `*`: any run, also empty; repeated stars collapse.
      // Redis's matcher says no for an empty text even to "*"; KEYS and SCAN treat a lone "*"
      // as "every key" before matching, so the empty key is still listed (checked there).
      {"*", "", false},
      {"*", "anything", true},
      {"**", "x", true},
      {"a*", "a", true},
      {"a*", "abc", true},
      {"*c", "abc", true},
      {"*c", "abd", false},
      {"a*c", "ac", true},
      {"a*c", "abbbc", true},
      {"a*c", "abbbd", false},
      {"a*b*c", "axbyc", true},
      {"a*b*c", "axcyb", false},
      {"foo*", "foo", true},
      {"*foo*", "xfoox", true},
      {"key:*", "key:1", true},
      {"key:*", "key", false},
      {"abc*", "ab", false},
      {"ab**", "ab", true},
      // `?`: exactly one byte.
      {"?", "a", true},
      {"?", "", false},
      {"?", "ab", false},
      {"h?llo", "hello", true},
      {"h?llo", "hllo", false},
      {"a?*", "a", false},
      {"a?*", "ab", true},
      // Sets, ranges, negation.
      {"h[ae]llo", "hello", true},
      {"h[ae]llo", "hallo", true},
      {"h[ae]llo", "hillo", false},
      {"h[^e]llo", "hallo", true},
      {"h[^e]llo", "hello", false},
      {"h[a-b]llo", "hbllo", true},
      {"h[a-b]llo", "hcllo", false},
      {"[b-a]", "a", true},  // reversed range
      {"[z-a]", "m", true},
      {"[^a-c]", "d", true},
      {"[^a-c]", "b", false},
      {"[a-]", "a", true},  // a range from 'a' to ']' (reversed), as redis-server decides
      {"[a-]", "-", false},
      {"[a-]]", "]", true},
      {"[]", "a", false},  // an empty set matches nothing
      {"[^]", "a", true},
      {"[\\]]", "]", true},  // escape inside a set
      {"[\\-]", "-", true},
      {"[\\^]", "^", true},
      {"[a\\-c]", "b", false},
      // Unterminated sets run to the pattern's end.
      {"[abc", "a", true},
      {"[abc", "c", true},
      {"[abc", "d", false},
      {"[abc", "ab", false},
      {"[", "a", false},
      {"[^", "a", true},
      {"a[", "a", false},
      // Escapes outside sets.
      {"\\*", "*", true},
      {"\\*", "a", false},
      {"\\?", "?", true},
      {"\\[a]", "[a]", true},
      {"h\\ello", "hello", true},
      {"a\\", "a\\", true},  // a trailing backslash is itself
      {"\\", "\\", true},
      // Stars after the text ends.
      {"a**", "a", true},
      {"a*?", "a", false},
      // Bytes beyond ASCII and NUL are plain bytes.
      {"caf\xc3\xa9", "caf\xc3\xa9", true},
      {"caf?", "caf\xc3\xa9", false},
      {"caf??", "caf\xc3\xa9", true},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(GlobMatch(c.pattern, c.text), c.match)
        << "pattern '" << c.pattern << "' text '" << c.text << "'";
  }
  EXPECT_TRUE(GlobMatch(std::string_view("a\0b", 3), std::string_view("a\0b", 3)));
  EXPECT_TRUE(GlobMatch("a?b", std::string_view("a\0b", 3)));
  EXPECT_FALSE(GlobMatch(std::string_view("a\0b", 3), "a"));
}

TEST(GlobTest, NoCaseFoldsLettersAndRanges) {
  EXPECT_FALSE(GlobMatch("HELLO", "hello"));
  EXPECT_TRUE(GlobMatch("HELLO", "hello", true));
  EXPECT_TRUE(GlobMatch("h[A-C]llo", "hbllo", true));
  EXPECT_FALSE(GlobMatch("h[A-C]llo", "hbllo"));
  EXPECT_TRUE(GlobMatch("[XY]", "y", true));
}

TEST(GlobTest, ManyStarsDoNotTakeExponentialTime) {
  // Redis's regression test "pattern matching very long nested loops": without the skip it
  // would take ~forever; with it, a moment.
  std::string text(50000, 'a');
  std::string pattern;
  for (int i = 0; i < 50; ++i) pattern += "a*";
  pattern += "b";
  EXPECT_FALSE(GlobMatch(pattern, text));
  EXPECT_TRUE(GlobMatch(pattern.substr(0, pattern.size() - 1), text));
}

TEST(GlobTest, LiteralPatterns) {
  EXPECT_TRUE(GlobIsLiteral("user:1"));
  EXPECT_TRUE(GlobIsLiteral(""));
  EXPECT_FALSE(GlobIsLiteral("user:*"));
  EXPECT_FALSE(GlobIsLiteral("user:?"));
  EXPECT_FALSE(GlobIsLiteral("user:[1]"));
  EXPECT_FALSE(GlobIsLiteral("user:\\1"));
}

}  // namespace
}  // namespace corral::proto
