// libFuzzer target for proto::RespParser, the first code to see a RESP client's bytes. Each input
// is parsed three times: whole, fed in chunks split at offsets drawn from the input's first bytes
// (a client's reads can end anywhere), and byte by byte (which never holds a whole multibulk
// command, so the state machine alone reads it, never the one-pass path for whole commands).
// Checks: no crash or sanitizer report, consumed() within the input, kNeedMore consumes nothing,
// and all runs yield the same commands and the same end.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "proto/resp_parser.h"
#include "tests/fuzz/split.h"

namespace {

using corral::proto::ParseStatus;
using corral::proto::RespLimits;
using corral::proto::RespParser;

// Stops the run with a message libFuzzer will show next to the crashing input.
void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "resp_parser_fuzz: invariant broken: %s\n", what);
    std::abort();
  }
}

struct Outcome {
  std::vector<std::vector<std::string>> commands;
  ParseStatus last = ParseStatus::kNeedMore;
  std::string error;
};

// Parses every complete command at the front of `buffer` as a connection does, dropping what
// is consumed. Returns false once the parser reports an error.
bool Drain(RespParser& parser, std::string& buffer, Outcome& out) {
  for (;;) {
    const ParseStatus status = parser.Parse(buffer);
    out.last = status;
    Check(parser.consumed() <= buffer.size(), "consumed() beyond the input");
    if (status == ParseStatus::kNeedMore) {
      Check(parser.consumed() == 0, "kNeedMore with consumed() != 0");
      return true;
    }
    if (status == ParseStatus::kError) {
      out.error = std::string(parser.error());
      Check(!out.error.empty(), "kError with an empty error()");
      // An unusable parser stays unusable until Reset().
      Check(parser.Parse(buffer) == ParseStatus::kError, "a failed parser parsed again");
      return false;
    }
    Check(parser.consumed() > 0, "kCommand consumed nothing");
    Check(!parser.args().empty(), "kCommand without arguments");
    std::vector<std::string> args;
    for (std::string_view arg : parser.args()) args.emplace_back(arg);
    out.commands.push_back(std::move(args));
    buffer.erase(0, parser.consumed());
  }
}

bool IsSizeLimitError(const std::string& error) {
  return error.find("too big") != std::string::npos;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Byte 0: options; bytes 1-4: split seed; the rest is what the client sent.
  if (size < 5) return 0;
  const uint8_t options = data[0];
  uint32_t seed = data[1] | data[2] << 8 | data[3] << 16 | static_cast<uint32_t>(data[4]) << 24;
  const std::string_view input(reinterpret_cast<const char*>(data + 5), size - 5);

  RespLimits limits;
  const bool small_limits = (options & 1) != 0;
  if (small_limits) {
    // Reach the limit paths with short inputs.
    limits.max_inline = 8 + (options >> 4);
    limits.max_bulk_len = 4 + (options >> 4);
    limits.max_multibulk_len = 3 + (options >> 5);
  }
  const bool authenticated = (options & 2) == 0;

  Outcome whole;
  {
    RespParser parser(limits);
    parser.set_authenticated(authenticated);
    std::string buffer(input);
    Drain(parser, buffer, whole);
  }

  Outcome split;
  {
    RespParser parser(limits);
    parser.set_authenticated(authenticated);
    std::string buffer;
    size_t at = 0;
    while (at < input.size()) {
      const size_t chunk = corral::fuzz::NextChunk(seed, input.size() - at);
      buffer.append(input.substr(at, chunk));
      at += chunk;
      if (!Drain(parser, buffer, split)) break;
    }
  }

  Outcome bytes;
  {
    RespParser parser(limits);
    parser.set_authenticated(authenticated);
    std::string buffer;
    for (char c : input) {
      buffer.push_back(c);
      if (!Drain(parser, buffer, bytes)) break;
    }
  }

  if (IsSizeLimitError(whole.error) || IsSizeLimitError(split.error) ||
      IsSizeLimitError(bytes.error)) {
    // "too big ... request/count string" depends on how many bytes are buffered without a line
    // end, so it can come earlier when the bytes arrive in pieces (as in Redis). Up to there,
    // both runs agree.
    for (const Outcome* other : {&split, &bytes}) {
      const size_t n = std::min(whole.commands.size(), other->commands.size());
      for (size_t i = 0; i < n; ++i) {
        Check(whole.commands[i] == other->commands[i], "split changed a command before a limit");
      }
    }
    return 0;
  }
  Check(whole.commands == split.commands, "split input parsed into different commands");
  Check(whole.last == split.last, "split input ended in a different state");
  Check(whole.error == split.error, "split input failed with a different error");
  Check(whole.commands == bytes.commands, "byte by byte parsed into different commands");
  Check(whole.last == bytes.last, "byte by byte ended in a different state");
  Check(whole.error == bytes.error, "byte by byte failed with a different error");
  return 0;
}
