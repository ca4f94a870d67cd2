// From decoded pgoutput messages to cache invalidations (issue 17): a relation cache (relid →
// table, columns, replica identity, from Relation messages) and each namespace's table/key_column,
// so a changed row becomes the keys `ns:value` to invalidate, each with its transaction's commit
// LSN. Pure and single-threaded: the replication connection feeds it messages in stream order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "pg-loader/pgoutput.h"

namespace corral::pg {

// One namespace's source of invalidations: rows of schema.table, keyed by key_column's text.
struct KeySource {
  std::string ns;
  std::string schema;
  std::string table;
  std::string key_column;
};

// A KeySource from a namespace's config: "schema.table", or "table" for schema public. nullopt when
// `table` is empty or a part of it is. (Quoted identifiers holding a '.' are not supported.)
std::optional<KeySource> MakeKeySource(std::string ns, std::string_view table,
                                       std::string key_column);

// One thing to invalidate. kKey: `key` is "ns:value", the cache key a read of that row uses (as
// the NOTIFY trigger's payload). kFlushNamespace: every entry of `ns` (a TRUNCATE).
struct WalInvalidation {
  enum class Kind { kKey, kFlushNamespace };
  Kind kind = Kind::kKey;
  std::string ns;
  std::string key;  // kKey only
  Lsn commit_lsn = 0;

  bool operator==(const WalInvalidation&) const = default;
};

// A change whose keys cannot be known, for one namespace: the key column is not in the table's
// replica identity (so an UPDATE or DELETE does not carry the old key), or the key is an unchanged
// TOASTed value the change does not include. The caller cannot invalidate precisely; the safe
// answer is to flush `ns` and report `message`, which says what to change (e.g. REPLICA IDENTITY).
struct WalKeyError {
  std::string ns;
  std::string message;
  Lsn commit_lsn = 0;
};

// What one message asks for. `commit_end_lsn` is set on a Commit: once everything the transaction
// produced is applied, that is the position to confirm (StandbyStatus::flushed).
struct WalChanges {
  std::vector<WalInvalidation> invalidations;
  std::vector<WalKeyError> errors;
  std::optional<Lsn> commit_end_lsn;
};

class WalKeyMapper {
 public:
  // `sources` may name the same table more than once (several namespaces over one table).
  explicit WalKeyMapper(std::vector<KeySource> sources);

  // Applies one decoded message, in stream order. A DecodeError means the stream itself is not
  // what pgoutput sends (a change outside Begin/Commit, a relation id no Relation message named, a
  // row whose column count differs from its relation's, a Commit for another transaction): the
  // caller should drop the connection and resume from the last confirmed position.
  Decoded<WalChanges> Apply(const PgoutputMessage& message);

  // Whether a transaction is open (between Begin and Commit).
  bool in_transaction() const { return in_transaction_; }

 private:
  // A namespace whose table a relation is: the source's index and the key column's position in
  // the relation's columns (nullopt when the table has no such column).
  struct Match {
    size_t source = 0;
    std::optional<size_t> column;
  };
  struct Relation {
    RelationMessage shape;
    std::vector<Match> matches;
  };

  void OnRelation(const RelationMessage& message);
  // The relation `relid` names, or nullptr (and `error` set) when none or the tuple's width
  // differs.
  const Relation* Find(uint32_t relid, const Tuple* tuple, std::string& error) const;
  enum class RowChange { kInsert, kUpdate, kDelete };
  // The keys (and errors) of one row change, for every namespace over the relation. old_tuple is
  // read only when old_kind is not kNone; new_tuple is unused for a kDelete.
  void MapRow(const Relation& relation, RowChange change, OldTuple old_kind, const Tuple* old_tuple,
              const Tuple* new_tuple, WalChanges& out) const;
  void AddKey(const std::string& ns, const std::string& value, WalChanges& out) const;

  std::vector<KeySource> sources_;
  std::unordered_map<uint32_t, Relation> relations_;
  bool in_transaction_ = false;
  Lsn commit_lsn_ = 0;
};

}  // namespace corral::pg
