// Redis 7.0 error texts in one place, so that clients that match on them see the same bytes,
// and Redis's strict integer parsing (string2ll) that commands and the RESP parser share.
// All strings exclude the leading '-' and the trailing CRLF; pass them to AppendError().
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace corral::proto {

inline constexpr std::string_view kSyntaxError = "ERR syntax error";
inline constexpr std::string_view kNotInteger = "ERR value is not an integer or out of range";
inline constexpr std::string_view kNoAuth = "NOAUTH Authentication required.";
inline constexpr std::string_view kWrongPass =
    "WRONGPASS invalid username-password pair or user is disabled.";
inline constexpr std::string_view kNoProto = "NOPROTO unsupported protocol version";
inline constexpr std::string_view kDbIndexOutOfRange = "ERR DB index is out of range";

// "ERR unknown command 'foo', with args beginning with: 'a' 'b' " as Redis 7.0 builds it: the
// name is cut to 128 bytes, the arguments are quoted one after another while their text is
// shorter than 128 bytes, each cut to what is left of those 128; CR and LF become spaces.
// `args` holds the command name first; an empty span gives an empty name.
std::string UnknownCommandError(std::span<const std::string_view> args);

// "ERR wrong number of arguments for 'get' command"; `cmd` is lower-cased (Redis prints the
// table name, e.g. "client|setname" for a subcommand).
std::string WrongArgsError(std::string_view cmd);

// "ERR unknown subcommand 'x'. Try CLIENT HELP." with `sub` cut to 128 bytes and `cmd`
// upper-cased; CR and LF become spaces.
std::string UnknownSubcommandError(std::string_view cmd, std::string_view sub);

// "ERR invalid expire time in 'set' command"; `cmd` is lower-cased.
std::string InvalidExpireError(std::string_view cmd);

// Redis's string2ll(): optional '-', then "0" alone or digits without a leading zero; no spaces,
// no '+', no "-0", nothing after the digits, at most 20 characters, within int64_t. On success
// stores the value in *value (which may be null) and returns true; otherwise leaves it alone.
bool ParseInt64(std::string_view s, int64_t* value);

}  // namespace corral::proto
