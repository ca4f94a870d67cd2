// Incremental RESP2 request parser: multibulk and inline commands, pipelined, with Redis 7.0's
// limits and error texts (networking.c processMultibulkBuffer / processInlineBuffer).
// Pure: no I/O, no allocation proportional to lengths the client announces.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace corral::proto {

struct RespLimits {
  size_t max_inline = 64 * 1024;               // Redis PROTO_INLINE_MAX_SIZE
  int64_t max_bulk_len = 512LL * 1024 * 1024;  // Redis proto-max-bulk-len (configurable)
  int64_t max_multibulk_len = INT32_MAX;       // Redis: ll > INT_MAX is invalid
};

enum class ParseStatus { kCommand, kNeedMore, kError };

// One parser per connection. Not thread-safe; it holds no pointer into the caller's buffer
// between calls, only offsets, so the caller may grow or move its buffer freely.
class RespParser {
 public:
  explicit RespParser(RespLimits limits = {});

  // Before AUTH on a server with a password, Redis allows at most 10 multibulk elements and
  // 16 KiB per bulk ("Protocol error: unauthenticated multibulk length" / "... bulk length").
  // Starts authenticated (the server has no password). Takes effect from the next header read.
  void set_authenticated(bool authenticated) { authenticated_ = authenticated; }

  // Parses at most one command from `input` = the caller's unconsumed bytes.
  //  kCommand: args() are views into `input` (or, for quoted inline arguments, into this parser)
  //            valid until the next Parse() or Reset(). The caller drops consumed() bytes, and
  //            the next call's input starts right after them. Empty commands (blank inline lines,
  //            "*0\r\n", "*-1\r\n") are skipped and counted in consumed().
  //  kNeedMore: consumed() == 0; call again with the same bytes plus more appended (the caller may
  //            have moved them in memory). The parser keeps its progress as offsets so that a large
  //            multibulk or bulk arriving in many reads is not re-scanned from the start. Skipped
  //            empty commands stay in the caller's bytes until the next command completes.
  //  kError:   error() is the message after "-" e.g. "ERR Protocol error: invalid bulk length";
  //            the caller writes "-" + error() + "\r\n" and closes the connection. The parser is
  //            then unusable (every call returns kError) until Reset().
  // Line ends are found as Redis finds them, with strchr(): a NUL before the terminator hides
  // it, so that line never completes and only the max_inline limit ends it, as in Redis.
  // Bad input never throws or aborts; no allocation is sized from a length the client announced.
  ParseStatus Parse(std::string_view input);

  std::span<const std::string_view> args() const { return args_; }
  size_t consumed() const { return consumed_; }
  std::string_view error() const { return error_; }

  // Forgets any partial command and error; keeps the limits, the authenticated flag and the
  // reusable buffers.
  void Reset();

 private:
  enum class State { kStart, kInline, kCount, kBulkHeader, kBulkData, kError };
  // What one state's step did: moved on to another state, or ended this call.
  enum class Step { kContinue, kCommand, kNeedMore, kError };
  struct Span {
    size_t offset;
    size_t size;
  };

  // The common case in one pass: a whole multibulk command at the start of `input`.
  bool ParseWhole(std::string_view input);
  Step ParseInline(std::string_view input);
  Step ParseCount(std::string_view input);
  Step ParseBulkHeader(std::string_view input);
  Step ParseBulkData(std::string_view input);
  // Redis's sdssplitargs() over one line that holds no NUL. Returns false on unbalanced quotes.
  bool SplitInline(std::string_view line);
  // Find `c` in input[scan_, end) the way Redis's strchr() does: a NUL ends the search for good
  // (nul_seen_). Return the offset or npos, and move scan_ up to what was searched.
  size_t FindInHeader(std::string_view input, char c);
  size_t FindInLine(std::string_view input, char c);
  Step Fail(std::string_view message);
  Step Complete();
  void StartLine(State state);
  void ReleaseOversizedBuffers();

  RespLimits limits_;
  bool authenticated_ = true;

  State state_ = State::kStart;
  size_t pos_ = 0;         // next unparsed byte of the current command, relative to the input
  size_t scan_ = 0;        // where the search for the current line's terminator resumes
  bool nul_seen_ = false;  // a NUL precedes the terminator: the line can never complete
  int64_t remaining_ = 0;  // multibulk elements still to read
  int64_t bulk_len_ = 0;   // length of the bulk being read (kBulkData)

  size_t consumed_ = 0;
  std::vector<Span> spans_;             // bulks read so far, as offsets into the input
  std::vector<std::string_view> args_;  // the last command
  std::string unescaped_;               // quoted inline arguments
  std::string error_;
};

}  // namespace corral::proto
