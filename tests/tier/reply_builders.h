// Builders of corral's Reply copies for tests of the tier's decoders: a reply as hiredis would
// hand it over, written inline.
#pragma once

#include <initializer_list>
#include <string>
#include <utility>

#include "tier/redis_client.h"

namespace corral::tier::test_replies {

inline Reply Str(std::string s) {
  Reply r;
  r.type = Reply::Type::kString;
  r.str = std::move(s);
  return r;
}

inline Reply Int(long long v) {
  Reply r;
  r.type = Reply::Type::kInteger;
  r.integer = v;
  return r;
}

inline Reply Nil() { return Reply{}; }

inline Reply Err(std::string s) {
  Reply r = Str(std::move(s));
  r.type = Reply::Type::kError;
  return r;
}

inline Reply Arr(std::initializer_list<Reply> elements) {
  Reply r;
  r.type = Reply::Type::kArray;
  r.elements = elements;
  return r;
}

}  // namespace corral::tier::test_replies
