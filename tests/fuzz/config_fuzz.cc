// libFuzzer target for the JSON configuration parser (cache-server/config.h ParseConfig): any
// text either parses or is rejected with ConfigError; no other exception, crash or sanitizer
// report. A configuration that parses is also described for the log and re-checked for its
// listen addresses' round trip. The same text is applied as ACL rules (auth/acl.h), the path both
// `users.NAME.acl` and ACL SETUSER take: a user that results describes itself (ACL LIST) in rules
// that rebuild the same user.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <string_view>

#include "auth/acl.h"
#include "cache-server/config.h"
#include "cache-server/users.h"

namespace {

[[noreturn]] void Fail(const char* what) {
  std::fprintf(stderr, "config_fuzz: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    corral::server::Config config = corral::server::ParseConfig(text);
    (void)corral::server::DescribeConfig(config);
    (void)corral::server::BuildUsers(config);
  } catch (const corral::server::ConfigError& e) {
    if (e.problem.empty()) Fail("a ConfigError that does not say what is wrong");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "config_fuzz: ParseConfig threw something other than ConfigError: %s\n",
                 e.what());
    std::abort();
  } catch (...) {
    Fail("ParseConfig threw a non-exception");
  }
  // ParseHostPort sees the listen addresses' text: it must never fail other than with nullopt.
  if (auto parsed = corral::server::ParseHostPort(text)) {
    auto again = corral::server::ParseHostPort(corral::server::FormatHostPort(*parsed));
    if (!again || again->host != parsed->host || again->port != parsed->port) {
      Fail("FormatHostPort(ParseHostPort(x)) does not parse back to the same address");
    }
  }
  namespace auth = corral::auth;
  auth::User user;
  user.name = "fuzz";
  if (!auth::ApplyRuleString(user, text, corral::server::CommandCatalogue())) {
    const std::string described = user.Describe();  // "user fuzz on|off RULES..."
    auth::User rebuilt;
    rebuilt.name = "fuzz";
    const std::string rules = "reset " + described.substr(std::string_view("user fuzz ").size());
    if (auth::ApplyRuleString(rebuilt, rules, corral::server::CommandCatalogue())) {
      Fail("ACL LIST's description of a user is not a valid rule string");
    }
    if (rebuilt.Describe() != described) Fail("ACL LIST's description does not rebuild the user");
  }
  return 0;
}
