// libFuzzer target for the logical replication decoder (pg-loader/pgoutput.h) and the WAL key
// mapping (pg-loader/wal_keys.h): what a primary's walsender sends through a slot. Checks: no
// crash or over-read (each message is decoded from a buffer of exactly its size); a decoded
// message fills its bytes exactly (a byte more or less is an error); every key is for a configured
// namespace and carries the open transaction's commit LSN; flushes come only from a Truncate;
// decoding and mapping the same messages twice gives the same result.
//
// Input: bytes 0-3 seed the split offsets; the rest is frames, each a big-endian 16-bit length and
// that many bytes (the last may be short). A frame starting with 'w' or 'k' is a CopyData payload
// (XLogData or keepalive), any other a bare pgoutput message, as
// pg_logical_slot_get_binary_changes returns them. The frames' bytes are also fed cut at the
// split offsets instead, and as one message.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "pg-loader/pgoutput.h"
#include "pg-loader/wal_keys.h"
#include "tests/fuzz/split.h"

namespace {

using namespace corral::pg;

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "pgoutput_fuzz: invariant broken: %s\n", what);
    std::abort();
  }
}

const char* const kNamespaces[] = {"item", "item_email", "user"};

std::vector<KeySource> Sources() {
  return {*MakeKeySource("item", "public.wal_items", "id"),
          *MakeKeySource("item_email", "wal_items", "email"),
          *MakeKeySource("user", "users", "id")};
}

bool Configured(const std::string& ns) {
  for (const char* known : kNamespaces) {
    if (ns == known) return true;
  }
  return false;
}

// Decodes `bytes` from a heap copy of exactly their size, so reading one byte past the end is an
// ASan report.
template <class T, class F>
T DecodeExact(std::string_view bytes, F decode, std::unique_ptr<char[]>& keep) {
  keep = std::make_unique<char[]>(bytes.size() == 0 ? 1 : bytes.size());
  std::copy(bytes.begin(), bytes.end(), keep.get());
  return decode(std::string_view(keep.get(), bytes.size()));
}

// A decoded pgoutput message must fill its bytes exactly.
void CheckExactFill(std::string_view bytes) {
  if (bytes.size() > 1) {
    std::unique_ptr<char[]> keep;
    const auto shorter = DecodeExact<Decoded<PgoutputMessage>>(bytes.substr(0, bytes.size() - 1),
                                                               DecodePgoutput, keep);
    // A Message's content or a text column can end anywhere, but its length was read first.
    Check(std::holds_alternative<DecodeError>(shorter), "a message one byte short decoded");
  }
  std::string longer(bytes);
  longer.push_back('\0');
  Check(std::holds_alternative<DecodeError>(DecodePgoutput(longer)),
        "a message with a trailing byte decoded");
}

// Feeds `frames` through the decoders and a fresh mapper; returns a trace of every result.
std::string Run(const std::vector<std::string_view>& frames) {
  WalKeyMapper mapper(Sources());
  std::string trace;
  bool open = false;
  Lsn commit_lsn = 0;
  for (std::string_view frame : frames) {
    std::unique_ptr<char[]> keep;
    std::string_view message = frame;
    if (!frame.empty() && (frame[0] == 'w' || frame[0] == 'k')) {
      const auto copy = DecodeExact<Decoded<CopyMessage>>(frame, DecodeCopyData, keep);
      if (const auto* error = std::get_if<DecodeError>(&copy)) {
        Check(!error->message.empty(), "an empty CopyData error");
        trace += "copy error: " + error->message + "\n";
        continue;
      }
      const CopyMessage& m = std::get<CopyMessage>(copy);
      if (const auto* k = std::get_if<Keepalive>(&m)) {
        StandbyStatus status;
        status.flushed = k->wal_end;
        status.reply_requested = k->reply_requested;
        const std::string reply = EncodeStandbyStatus(status);
        Check(reply.size() == kStandbyStatusSize && reply[0] == 'r', "a bad status update");
        trace += "keepalive " + FormatLsn(k->wal_end) + "\n";
        continue;
      }
      const XLogData& w = std::get<XLogData>(m);
      Check(!w.payload.empty(), "XLogData without a payload");
      Check(w.payload.data() >= keep.get() &&
                w.payload.data() + w.payload.size() <= keep.get() + frame.size(),
            "XLogData's payload outside its bytes");
      message = w.payload;
    }
    std::unique_ptr<char[]> keep_message;
    const auto decoded =
        DecodeExact<Decoded<PgoutputMessage>>(message, DecodePgoutput, keep_message);
    if (const auto* error = std::get_if<DecodeError>(&decoded)) {
      Check(!error->message.empty(), "an empty decode error");
      trace += "error: " + error->message + "\n";
      continue;
    }
    if (message.size() <= 512) CheckExactFill(message);
    const PgoutputMessage& m = std::get<PgoutputMessage>(decoded);
    const Decoded<WalChanges> applied = mapper.Apply(m);
    if (const auto* error = std::get_if<DecodeError>(&applied)) {
      Check(!error->message.empty(), "an empty mapping error");
      trace += "stream error: " + error->message + "\n";
      continue;
    }
    // The harness's own idea of the transaction, from the messages the mapper accepted.
    if (const auto* begin = std::get_if<BeginMessage>(&m)) {
      open = true;
      commit_lsn = begin->final_lsn;
    }
    const WalChanges& changes = std::get<WalChanges>(applied);
    Check(changes.commit_end_lsn.has_value() == std::holds_alternative<CommitMessage>(m),
          "a commit position from something other than a Commit");
    if (changes.commit_end_lsn) open = false;
    Check(open == mapper.in_transaction(), "the mapper's transaction state is wrong");
    const bool row_change = std::holds_alternative<InsertMessage>(m) ||
                            std::holds_alternative<UpdateMessage>(m) ||
                            std::holds_alternative<DeleteMessage>(m);
    for (const WalInvalidation& i : changes.invalidations) {
      Check(Configured(i.ns), "an invalidation for a namespace nobody configured");
      Check(i.commit_lsn == commit_lsn, "an invalidation without its transaction's commit LSN");
      if (i.kind == WalInvalidation::Kind::kKey) {
        Check(row_change, "a key from something other than a row change");
        Check(i.key.size() > i.ns.size() && i.key.compare(0, i.ns.size() + 1, i.ns + ":") == 0,
              "a key outside its namespace");
        trace += "key " + i.key + " @" + FormatLsn(i.commit_lsn) + "\n";
      } else {
        Check(std::holds_alternative<TruncateMessage>(m), "a flush from something but Truncate");
        trace += "flush " + i.ns + "\n";
      }
    }
    for (const WalKeyError& e : changes.errors) {
      Check(Configured(e.ns) && row_change && !e.message.empty(), "a bad key error");
      trace += "key error: " + e.message + "\n";
    }
  }
  return trace;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 4) return 0;
  uint32_t seed = static_cast<uint32_t>(data[0]) | static_cast<uint32_t>(data[1]) << 8 |
                  static_cast<uint32_t>(data[2]) << 16 | static_cast<uint32_t>(data[3]) << 24;
  if (seed == 0) seed = 1;  // xorshift stays at 0
  const std::string_view input(reinterpret_cast<const char*>(data) + 4, size - 4);

  // Framed: length-prefixed messages, run twice for determinism.
  std::vector<std::string_view> frames;
  std::string joined;
  for (size_t pos = 0; pos + 2 <= input.size();) {
    const size_t length =
        static_cast<unsigned char>(input[pos]) << 8 | static_cast<unsigned char>(input[pos + 1]);
    pos += 2;
    const std::string_view frame = input.substr(pos, length);
    frames.push_back(frame);
    joined.append(frame);
    pos += frame.size();
  }
  const std::string first = Run(frames);
  Check(Run(frames) == first, "the same messages gave different results");

  // Split: the frames' bytes cut at other offsets, each piece taken as a message.
  std::vector<std::string_view> pieces;
  for (size_t pos = 0; pos < joined.size();) {
    const size_t chunk = corral::fuzz::NextChunk(seed, joined.size() - pos);
    pieces.emplace_back(joined.data() + pos, chunk);
    pos += chunk;
  }
  Run(pieces);

  // Whole: everything after the seed as one message.
  Run({input});
  return 0;
}
