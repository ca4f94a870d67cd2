// Byte-exact error texts (each expectation was checked against redis-server 7.0.15) and
// ParseInt64's string2ll strictness.
#include "proto/errors.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace corral::proto {
namespace {

using namespace std::literals;

std::string Unknown(const std::vector<std::string>& args) {
  const std::vector<std::string_view> views(args.begin(), args.end());
  return UnknownCommandError(views);
}

TEST(Errors, UnknownCommand) {
  EXPECT_EQ(Unknown({"foo", "a", "b"}),
            "ERR unknown command 'foo', with args beginning with: 'a' 'b' ");
  EXPECT_EQ(Unknown({"foo"}), "ERR unknown command 'foo', with args beginning with: ");
  EXPECT_EQ(Unknown({"foo", ""}), "ERR unknown command 'foo', with args beginning with: '' ");
  EXPECT_EQ(Unknown({}), "ERR unknown command '', with args beginning with: ");
}

TEST(Errors, UnknownCommandTruncatesLikeRedis) {
  const std::string x200(200, 'x');
  const std::string y200(200, 'y');
  EXPECT_EQ(Unknown({x200, y200}), "ERR unknown command '" + std::string(128, 'x') +
                                       "', with args beginning with: '" + std::string(128, 'y') +
                                       "' ");
  // Arguments are added while their text is under 128 bytes, each cut to what is left.
  const std::string a60(60, 'a');
  const std::string b60(60, 'b');
  const std::string c60(60, 'c');
  EXPECT_EQ(
      Unknown({"foo", a60, b60, c60, "d"}),
      "ERR unknown command 'foo', with args beginning with: '" + a60 + "' '" + b60 + "' 'cc' ");
}

TEST(Errors, UnknownCommandSanitizesUserBytes) {
  EXPECT_EQ(Unknown({"foo", "a\r\nb", "c\0d"s}),
            "ERR unknown command 'foo', with args beginning with: 'a  b' 'c' ");
  EXPECT_EQ(Unknown({"f\0oo"s, "a"}), "ERR unknown command 'f', with args beginning with: 'a' ");
}

TEST(Errors, WrongArgs) {
  EXPECT_EQ(WrongArgsError("GET"), "ERR wrong number of arguments for 'get' command");
  EXPECT_EQ(WrongArgsError("client|SetName"),
            "ERR wrong number of arguments for 'client|setname' command");
}

TEST(Errors, NamespaceKeyRefusal) {
  EXPECT_EQ(NamespaceKeyError("user:1", "incrby"),
            "ERR read-through key 'user:1': INCRBY is not supported on namespace keys");
  EXPECT_EQ(NamespaceKeyError("user:a\r\nb", "append"),
            "ERR read-through key 'user:a  b': APPEND is not supported on namespace keys");
  EXPECT_EQ(NamespaceKeyError(std::string(200, 'k'), "getdel"),
            "ERR read-through key '" + std::string(128, 'k') +
                "': GETDEL is not supported on namespace keys");
}

TEST(Errors, UnknownSubcommand) {
  EXPECT_EQ(UnknownSubcommandError("client", "x"), "ERR unknown subcommand 'x'. Try CLIENT HELP.");
  EXPECT_EQ(UnknownSubcommandError("cLiEnt", std::string(200, 'x')),
            "ERR unknown subcommand '" + std::string(128, 'x') + "'. Try CLIENT HELP.");
  EXPECT_EQ(UnknownSubcommandError("client", "foo\r\n"),
            "ERR unknown subcommand 'foo  '. Try CLIENT HELP.");
}

TEST(Errors, InvalidExpire) {
  EXPECT_EQ(InvalidExpireError("SET"), "ERR invalid expire time in 'set' command");
  EXPECT_EQ(InvalidExpireError("expire"), "ERR invalid expire time in 'expire' command");
}

TEST(Errors, Constants) {
  EXPECT_EQ(kSyntaxError, "ERR syntax error");
  EXPECT_EQ(kNotInteger, "ERR value is not an integer or out of range");
  EXPECT_EQ(kNoAuth, "NOAUTH Authentication required.");
  EXPECT_EQ(kWrongPass, "WRONGPASS invalid username-password pair or user is disabled.");
  EXPECT_EQ(kNoProto, "NOPROTO unsupported protocol version");
  EXPECT_EQ(kDbIndexOutOfRange, "ERR DB index is out of range");
}

TEST(ParseInt64, Accepts) {
  const struct {
    std::string_view text;
    int64_t value;
  } cases[] = {
      {"0", 0},
      {"1", 1},
      {"-1", -1},
      {"10", 10},
      {"123456789", 123456789},
      {"9223372036854775807", INT64_MAX},
      {"-9223372036854775808", INT64_MIN},
      {"-9223372036854775807", -INT64_MAX},
  };
  for (const auto& c : cases) {
    int64_t v = 42;
    EXPECT_TRUE(ParseInt64(c.text, &v)) << c.text;
    EXPECT_EQ(v, c.value) << c.text;
  }
  EXPECT_TRUE(ParseInt64("7", nullptr));
}

TEST(ParseInt64, RejectsWhatString2llRejects) {
  for (std::string_view text : {
           ""sv,
           "-"sv,
           "+1"sv,
           " 1"sv,
           "1 "sv,
           "01"sv,
           "00"sv,
           "-0"sv,
           "-01"sv,
           "1a"sv,
           "a1"sv,
           "1.0"sv,
           "0x10"sv,
           "1e3"sv,
           "--1"sv,
           "9223372036854775808"sv,
           "-9223372036854775809"sv,
           "18446744073709551616"sv,
           "99999999999999999999"sv,
           "100000000000000000000"sv,
           "000000000000000000001"sv,
           "1\0"sv,
           "\0"sv,
       }) {
    int64_t v = 42;
    EXPECT_FALSE(ParseInt64(text, &v)) << testing::PrintToString(std::string(text));
    EXPECT_EQ(v, 42) << "left alone on failure";
  }
}

TEST(Errors, ShedTextsAndLabels) {
  // The BUSY texts clients and tests match on: byte-identical to the texts before ShedReason.
  EXPECT_EQ(ShedText(ShedReason::kNamespaceInflight, "user"),
            "load shed: max_inflight_loads for namespace user");
  EXPECT_EQ(ShedText(ShedReason::kPoolInflight, "user"),
            "load shed: pool_max_inflight_loads for namespace user");
  EXPECT_EQ(ShedText(ShedReason::kBlocked, "blk"), "load shed: blocked for namespace blk");
  EXPECT_EQ(ShedText(ShedReason::kRate, "r"), "load shed: max_loads_per_s for namespace r");
  EXPECT_EQ(ShedText(ShedReason::kPendingLoads, "p"),
            "load shed: max_pending_loads for namespace p");
  EXPECT_EQ(ShedText(ShedReason::kWaitTimeout, "user"), "lease wait timed out");
  EXPECT_EQ(ShedText(ShedReason::kInvalidatedRepeatedly, "user"),
            "key invalidated repeatedly during load");
  // Every reason has its own label, and none is "unknown".
  for (size_t i = 0; i < kShedReasonCount; ++i) {
    std::string_view label = ShedReasonLabel(static_cast<ShedReason>(i));
    EXPECT_NE(label, "unknown") << i;
    for (size_t j = 0; j < i; ++j) EXPECT_NE(label, ShedReasonLabel(static_cast<ShedReason>(j)));
  }
  EXPECT_EQ(ShedReasonLabel(ShedReason::kMaxClients), "max_clients");
}

TEST(Errors, OptionErrorsKeepOneLine) {
  EXPECT_EQ(UnsupportedOptionError("foo"), "ERR Unsupported option foo");
  EXPECT_EQ(UnsupportedOptionError("a\r\nb"), "ERR Unsupported option a  b");
  EXPECT_EQ(HelloOptionError("x"), "ERR Syntax error in HELLO option 'x'");
  EXPECT_EQ(UnrecognizedOptionError("lib-x"), "ERR Unrecognized option 'lib-x'");
  EXPECT_EQ(ConfigSetError("namespace.x.blocked", "no such namespace"),
            "ERR CONFIG SET failed (possibly related to argument 'namespace.x.blocked') - no such "
            "namespace");
}

}  // namespace
}  // namespace corral::proto
