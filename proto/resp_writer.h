// RESP2 and RESP3 reply writer: appends replies to a caller-owned std::string (the connection's
// output buffer). Pure and allocation-free once `out` has grown to its working size.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace corral::proto {

// Each function appends one complete reply (or array header) to `out` and touches nothing else.
// None validates its text: simple strings and errors must not contain CR or LF.
void AppendSimple(std::string& out, std::string_view s);  // +s\r\n
void AppendError(std::string& out,
                 std::string_view s);  // -s\r\n  (s carries the prefix, "ERR ...")
void AppendError(std::string& out, std::string_view prefix,
                 std::string_view s);                   // -<prefix>s\r\n  (no temporary)
void AppendInteger(std::string& out, int64_t v);        // :v\r\n
void AppendBulk(std::string& out, std::string_view s);  // $len\r\ns\r\n  (binary safe)
void AppendNullBulk(std::string& out);                  // $-1\r\n
void AppendArrayHeader(std::string& out, size_t n);     // *n\r\n
void AppendNullArray(std::string& out);                 // *-1\r\n

// RESP3 types (after HELLO 3).
void AppendNull(std::string& out);                     // _\r\n
void AppendMapHeader(std::string& out, size_t pairs);  // %pairs\r\n, then 2 x pairs replies
void AppendPushHeader(std::string& out, size_t n);     // >n\r\n: an out-of-band push of n
// =len\r\nfmt:s\r\n; `format` is three bytes ("txt").
void AppendVerbatim(std::string& out, std::string_view format, std::string_view s);

// What depends on the connection's protocol (2 or 3): a missing value (RESP2's null bulk, RESP3's
// null), a map header (a flat array of 2 x pairs in RESP2), and human-readable text (bulk, or
// RESP3's verbatim "txt").
void AppendNil(std::string& out, int protocol);
void AppendMap(std::string& out, size_t pairs, int protocol);
void AppendText(std::string& out, std::string_view s, int protocol);
// A set header: RESP3's ~n, RESP2's array.
void AppendSet(std::string& out, size_t n, int protocol);

}  // namespace corral::proto
