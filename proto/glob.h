// Redis's glob-style pattern matching (KEYS, SCAN MATCH): `*`, `?`, `[abc]`, `[a-c]`, `[^a]` and
// `\` escapes, with exactly the semantics of Redis 7.0's stringmatchlen() (src/util.c).
#pragma once

#include <string_view>

namespace corral::proto {

// True if `text` matches `pattern`. Binary-safe over both; `nocase` folds ASCII letters.
// As Redis: `*` matches any run of bytes, `?` one byte, `[...]` one byte from a set of bytes
// and ranges (`a-z`, reversed `z-a` too) negated by a leading `^`, `\x` the byte x (also inside
// a set); an unterminated `[` set ends at the pattern's end. Time is bounded by
// O(|pattern| * |text|): after `*` fails to match the rest anywhere, earlier `*`s give up too.
bool GlobMatch(std::string_view pattern, std::string_view text, bool nocase = false);

// True if `pattern` has no glob special character: it matches exactly one key, itself.
bool GlobIsLiteral(std::string_view pattern);

}  // namespace corral::proto
