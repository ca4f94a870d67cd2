// Builds pgoutput and replication-protocol messages byte by byte for the decoder's tests, as the
// PostgreSQL 15 docs ("Logical Replication Message Formats") lay them out.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace corral::pg::testing {

class Bytes {
 public:
  explicit Bytes(char type) { out_.push_back(type); }
  Bytes& U8(uint8_t v) {
    out_.push_back(static_cast<char>(v));
    return *this;
  }
  Bytes& U16(uint16_t v) { return Int(v, 2); }
  Bytes& U32(uint32_t v) { return Int(v, 4); }
  Bytes& U64(uint64_t v) { return Int(v, 8); }
  Bytes& Str(std::string_view s) {
    out_.append(s);
    out_.push_back('\0');
    return *this;
  }
  Bytes& Raw(std::string_view s) {
    out_.append(s);
    return *this;
  }
  // TupleData: each value is 'n', 'u', or text (anything else), in order.
  Bytes& Tuple(const std::vector<std::pair<char, std::string>>& values) {
    U16(static_cast<uint16_t>(values.size()));
    for (const auto& [kind, text] : values) {
      U8(static_cast<uint8_t>(kind));
      if (kind == 't') {
        U32(static_cast<uint32_t>(text.size()));
        Raw(text);
      }
    }
    return *this;
  }
  const std::string& str() const { return out_; }
  operator std::string_view() const { return out_; }

 private:
  Bytes& Int(uint64_t v, int width) {
    for (int shift = (width - 1) * 8; shift >= 0; shift -= 8) {
      out_.push_back(static_cast<char>(v >> shift));
    }
    return *this;
  }
  std::string out_;
};

inline std::pair<char, std::string> Text(std::string s) { return {'t', std::move(s)}; }
inline std::pair<char, std::string> Null() { return {'n', {}}; }
inline std::pair<char, std::string> Toast() { return {'u', {}}; }

// Relation: relid, schema, table, identity, then (in_identity, name) columns typed int8.
inline std::string RelationBytes(uint32_t relid, std::string_view schema, std::string_view table,
                                 char identity,
                                 const std::vector<std::pair<bool, std::string>>& columns) {
  Bytes b('R');
  b.U32(relid).Str(schema).Str(table).U8(static_cast<uint8_t>(identity));
  b.U16(static_cast<uint16_t>(columns.size()));
  for (const auto& [key, name] : columns) b.U8(key ? 1 : 0).Str(name).U32(20).U32(0xffffffff);
  return b.str();
}

inline std::string BeginBytes(uint64_t final_lsn, uint32_t xid = 700) {
  return Bytes('B').U64(final_lsn).U64(1234567).U32(xid).str();
}

inline std::string CommitBytes(uint64_t commit_lsn, uint64_t end_lsn) {
  return Bytes('C').U8(0).U64(commit_lsn).U64(end_lsn).U64(1234567).str();
}

}  // namespace corral::pg::testing
