// RESP2 reply writer: appends replies to a caller-owned std::string (the connection's output
// buffer). Pure and allocation-free once `out` has grown to its working size.
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

}  // namespace corral::proto
