// libFuzzer target for what corral reads from its Redis tier: the bytes go through hiredis's
// reply reader (the one its async contexts use), each reply is copied with CopyReply, and every
// decoder the tier's client, subscriber and TierBackend apply to replies gets it (and each nested
// element): redirects, CLUSTER SLOTS, pub/sub pushes and their payloads, INFO's run_id, each Lua
// script's reply. The input is read twice: whole, and fed in chunks split at offsets drawn from
// the input's first bytes (a socket read can end anywhere). Checks: no crash or sanitizer report;
// decoded slots within 0..16383 with start <= end, ports within 1..65535, redirects to a slot in
// range and a non-empty address, each decoder's documented ranges; both runs yield the same
// replies, the same reader error and the same decoded results.
#include <hiredis/hiredis.h>
#include <hiredis/read.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "cache-server/tier_replies.h"
#include "tests/fuzz/split.h"
#include "tier/hiredis_util.h"
#include "tier/reply_decode.h"

namespace {

using corral::tier::Reply;

// Stops the run with a message libFuzzer will show next to the crashing input.
void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "redis_reply_fuzz: invariant broken: %s\n", what);
    std::abort();
  }
}

// hiredis 0.14 allocates an array of the announced count before any element arrives, so
// "*1000000000\r\n" is an 8 GB calloc, which libFuzzer reports as a crash (its malloc limit).
// That is hiredis's, not a decoder's: announced arrays above this get hiredis's own out-of-memory
// error instead (its createArray returning NULL), and the rest of the reader is the real one.
constexpr int kMaxArray = 1 << 20;
redisReplyObjectFunctions g_default_functions;
redisReplyObjectFunctions g_capped_functions;

void* CreateCappedArray(const redisReadTask* task, int elements) {
  if (elements > kMaxArray) return nullptr;
  return g_default_functions.createArray(task, elements);
}

redisReader* NewReader() {
  redisReader* reader = redisReaderCreate();
  Check(reader != nullptr, "redisReaderCreate failed");
  if (g_capped_functions.createArray == nullptr) {
    g_default_functions = *reader->fn;
    g_capped_functions = *reader->fn;
    g_capped_functions.createArray = &CreateCappedArray;
  }
  reader->fn = &g_capped_functions;
  return reader;
}

bool Same(const Reply& a, const Reply& b) {
  if (a.type != b.type || a.str != b.str || a.integer != b.integer ||
      a.elements.size() != b.elements.size()) {
    return false;
  }
  for (size_t i = 0; i < a.elements.size(); ++i) {
    if (!Same(a.elements[i], b.elements[i])) return false;
  }
  return true;
}

struct Outcome {
  std::vector<Reply> replies;
  int error = 0;  // the reader's err once it failed (REDIS_ERR_PROTOCOL, REDIS_ERR_OOM)
  std::string errstr;
  std::string decoded;  // every decoder's result, in order, as text
};

// Takes every complete reply out of `reader`. Returns false once the reader failed.
bool Drain(redisReader* reader, Outcome& out) {
  for (;;) {
    void* raw = nullptr;
    if (redisReaderGetReply(reader, &raw) != REDIS_OK) {
      Check(raw == nullptr, "a failed read returned a reply");
      Check(reader->err != 0, "a failed read without an error");
      out.error = reader->err;
      out.errstr = reader->errstr;
      return false;
    }
    if (raw == nullptr) return true;
    out.replies.push_back(corral::tier::CopyReply(static_cast<redisReply*>(raw)));
    freeReplyObject(raw);
  }
}

void CheckSlot(int slot) { Check(slot >= 0 && slot < corral::tier::kClusterSlots, "slot range"); }

// The payloads TierBackend::OnMessage decodes, whichever channel they came on.
void DecodePayload(std::string_view message, std::string& out) {
  using namespace corral::server;
  if (auto m = DecodeInvalidation(message)) {
    Check(m->origin.find(' ') == std::string::npos, "invalidation origin holds a space");
    Check(m->origin.size() + m->seq.size() + m->key.size() + 2 <= message.size(),
          "invalidation fields longer than the message");
    Check(message.substr(message.size() - m->key.size()) == m->key,
          "invalidation key is not the message's end");
    Check(m->seq_number == 0 || m->seq != "0", "seq \"0\" read as a number");
    out += "inv(" + m->origin + "," + m->seq + "," + std::to_string(m->seq_number) + "," +
           std::to_string(m->position) + "," + m->key + ")";
  }
  if (auto ack = DecodeAck(message)) {
    Check(ack->seq >= 1, "ack seq 0");
    Check(!ack->node.empty(), "ack without a node");
    out += "ack(" + std::to_string(ack->seq) + "," + ack->node + ")";
  }
  if (auto epoch = DecodeEpochMessage(message)) {
    Check(*epoch >= 0, "negative published epoch");
    out += "epoch(" + std::to_string(*epoch) + ")";
  }
}

// Every decoder on `reply`, then on each nested element.
void DecodeAll(const Reply& reply, std::string& out) {
  using namespace corral::tier;
  using namespace corral::server;
  out += "[";
  if (reply.type == Reply::Type::kString || reply.type == Reply::Type::kStatus ||
      reply.type == Reply::Type::kError) {
    if (auto e = ParseClusterError(reply.str)) {
      if (e->kind == ClusterError::Kind::kMoved || e->kind == ClusterError::Kind::kAsk) {
        CheckSlot(e->slot);
        Check(!e->address.empty(), "redirect without an address");
        Check(reply.str.size() > e->address.size(), "redirect address longer than the error");
      } else {
        Check(e->slot == -1 && e->address.empty(), "TRYAGAIN/CLUSTERDOWN with a slot");
      }
      out += "redirect(" + std::to_string(static_cast<int>(e->kind)) + "," +
             std::to_string(e->slot) + "," + e->address + ")";
    }
    if (auto run_id = ParseRunId(reply.str)) {
      Check(run_id->find_first_of("\r\n") == std::string::npos, "run_id holds a line end");
      out += "run_id(" + *run_id + ")";
    }
    DecodePayload(reply.str, out);
  }
  if (auto map = DecodeClusterSlots(reply)) {
    Check(map->ranges.size() + map->skipped == reply.elements.size(), "slot entries lost");
    out += "slots(";
    for (const SlotRange& range : map->ranges) {
      CheckSlot(range.start);
      CheckSlot(range.end);
      Check(range.start <= range.end, "reversed slot range");
      Check(range.port >= 1 && range.port <= 65535, "port range");
      Check(range.host != "?", "unknown endpoint not turned into the node asked");
      out += std::to_string(range.start) + "-" + std::to_string(range.end) + "@" + range.host +
             ":" + std::to_string(range.port) + ";";
    }
    out += std::to_string(map->skipped) + ")";
  } else {
    Check(reply.type != Reply::Type::kArray, "an array that is no slot map at all");
  }
  if (auto push = DecodePubSub(reply)) {
    Check(reply.elements.size() >= 3, "a push of fewer than 3 elements");
    Check(push->kind == PubSubPush::Kind::kMessage || push->payload.empty(),
          "a payload outside a message");
    out += "push(" + std::to_string(static_cast<int>(push->kind)) + "," + push->channel + "," +
           push->payload + ")";
    if (push->kind == PubSubPush::Kind::kMessage) DecodePayload(push->payload, out);
  }
  if (auto lookup = DecodeLookup(reply)) {
    if (lookup->kind == LookupReply::Kind::kHit) {
      Check(lookup->fresh_left_ms > 0, "a hit that is not fresh");
      Check(lookup->stale_window_ms >= 0, "a negative stale window");
    }
    if (lookup->kind == LookupReply::Kind::kWait) Check(!lookup->data.empty(), "wait on nobody");
    out += "lookup(" + std::to_string(static_cast<int>(lookup->kind)) + "," + lookup->data + "," +
           std::to_string(lookup->not_found) + "," + std::to_string(lookup->fresh_left_ms) + "," +
           std::to_string(lookup->stale_window_ms) + "," + std::to_string(lookup->load_ms) + "," +
           std::to_string(lookup->position) + ")";
  }
  if (auto fill = DecodeFill(reply)) {
    Check(fill->kind == FillReply::Kind::kFenced || fill->fenced_at == 0,
          "a fence outside kFenced");
    out += "fill(" + std::to_string(static_cast<int>(fill->kind)) + "," +
           std::to_string(fill->fenced_at) + ")";
  }
  if (auto flag = DecodeFlag(reply)) {
    Check(reply.type == Reply::Type::kInteger, "a flag from a non-integer");
    out += "flag(" + std::to_string(*flag) + ")";
  }
  if (auto inv = DecodeInvalidate(reply)) {
    Check(inv->reached >= -1, "reached below -1");
    out += "invalidate(" + std::to_string(inv->held) + "," + std::to_string(inv->reached) + ")";
  }
  if (auto members = DecodeMembers(reply)) {
    Check(members->size() <= reply.elements.size(), "more members than elements");
    out += "members(";
    for (const std::string& m : *members) {
      Check(!m.empty(), "an empty member");
      out += m + ";";
    }
    out += ")";
  }
  if (auto epoch = DecodeBumpedEpoch(reply)) {
    Check(*epoch >= 0, "negative bumped epoch");
    out += "bumped(" + std::to_string(*epoch) + ")";
  }
  if (auto epoch = DecodeStoredEpoch(reply)) {
    Check(*epoch >= 0, "negative stored epoch");
    out += "stored(" + std::to_string(*epoch) + ")";
  }
  for (const Reply& element : reply.elements) DecodeAll(element, out);
  out += "]";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Bytes 0-3: split seed; the rest is what Redis sent.
  if (size < 4) return 0;
  uint32_t seed = data[0] | data[1] << 8 | data[2] << 16 | static_cast<uint32_t>(data[3]) << 24;
  const std::string_view input(reinterpret_cast<const char*>(data + 4), size - 4);

  Outcome whole;
  {
    redisReader* reader = NewReader();
    if (redisReaderFeed(reader, input.data(), input.size()) == REDIS_OK) Drain(reader, whole);
    redisReaderFree(reader);
  }

  Outcome split;
  {
    redisReader* reader = NewReader();
    size_t at = 0;
    while (at < input.size()) {
      const size_t chunk = corral::fuzz::NextChunk(seed, input.size() - at);
      Check(redisReaderFeed(reader, input.data() + at, chunk) == REDIS_OK, "feed refused");
      at += chunk;
      if (!Drain(reader, split)) break;
    }
    redisReaderFree(reader);
  }

  Check(whole.replies.size() == split.replies.size(), "split input read a different reply count");
  for (size_t i = 0; i < whole.replies.size(); ++i) {
    Check(Same(whole.replies[i], split.replies[i]), "split input read a different reply");
  }
  Check(whole.error == split.error, "split input failed differently");
  Check(whole.errstr == split.errstr, "split input failed with a different message");

  for (const Reply& reply : whole.replies) DecodeAll(reply, whole.decoded);
  for (const Reply& reply : split.replies) DecodeAll(reply, split.decoded);
  Check(whole.decoded == split.decoded, "split input decoded differently");
  return 0;
}
