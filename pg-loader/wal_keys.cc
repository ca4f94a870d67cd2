// The relation cache and the row → key rules of invalidation from the WAL: an INSERT invalidates
// the new key (it may replace a cached "not found"), a DELETE the old one, an UPDATE both when the
// key changed, a TRUNCATE the whole namespace.
#include "pg-loader/wal_keys.h"

#include <algorithm>
#include <utility>
#include <variant>

namespace corral::pg {
namespace {

template <class... F>
struct Overloaded : F... {
  using F::operator()...;
};
// Clang 14 does not deduce an aggregate's template arguments (P1816) without this guide.
template <class... F>
Overloaded(F...) -> Overloaded<F...>;

// A key column's value in one row image.
struct KeyValue {
  enum class State {
    kText,     // `text` is the key
    kNull,     // no key: nothing is cached under a NULL
    kSame,     // an UPDATE's other image holds it (the column did not change)
    kUnknown,  // the change does not carry it; `why` says so
  };
  State state = State::kUnknown;
  std::string_view text;
  std::string why;
};

std::string TableName(const RelationMessage& relation) {
  return (relation.schema.empty() ? std::string("pg_catalog") : relation.schema) + "." +
         relation.table;
}

}  // namespace

std::optional<KeySource> MakeKeySource(std::string ns, std::string_view table,
                                       std::string key_column) {
  KeySource source;
  source.ns = std::move(ns);
  source.key_column = std::move(key_column);
  const size_t dot = table.find('.');
  if (dot == std::string_view::npos) {
    source.schema = "public";
    source.table = std::string(table);
  } else {
    source.schema = std::string(table.substr(0, dot));
    source.table = std::string(table.substr(dot + 1));
  }
  if (source.ns.empty() || source.schema.empty() || source.table.empty() ||
      source.key_column.empty()) {
    return std::nullopt;
  }
  return source;
}

WalKeyMapper::WalKeyMapper(std::vector<KeySource> sources) : sources_(std::move(sources)) {}

void WalKeyMapper::OnRelation(const RelationMessage& message) {
  Relation relation;
  relation.shape = message;
  for (size_t i = 0; i < sources_.size(); ++i) {
    const KeySource& source = sources_[i];
    if (source.schema != message.schema || source.table != message.table) continue;
    Match match;
    match.source = i;
    for (size_t c = 0; c < message.columns.size(); ++c) {
      if (message.columns[c].name == source.key_column) {
        match.column = c;
        break;
      }
    }
    relation.matches.push_back(match);
  }
  // A later Relation message for the same id (after ALTER TABLE) replaces the earlier shape.
  relations_[message.relid] = std::move(relation);
}

const WalKeyMapper::Relation* WalKeyMapper::Find(uint32_t relid, const Tuple* tuple,
                                                 std::string& error) const {
  const auto it = relations_.find(relid);
  if (it == relations_.end()) {
    error = "pgoutput: a change to relation id " + std::to_string(relid) +
            " before any Relation message for it";
    return nullptr;
  }
  if (tuple && tuple->size() != it->second.shape.columns.size()) {
    error = "pgoutput: a row of " + std::to_string(tuple->size()) + " columns for " +
            TableName(it->second.shape) + ", whose Relation message has " +
            std::to_string(it->second.shape.columns.size());
    return nullptr;
  }
  return &it->second;
}

void WalKeyMapper::AddKey(const std::string& ns, const std::string& value, WalChanges& out) const {
  WalInvalidation invalidation;
  invalidation.kind = WalInvalidation::Kind::kKey;
  invalidation.ns = ns;
  invalidation.key = ns + ":" + value;
  invalidation.commit_lsn = commit_lsn_;
  if (std::find(out.invalidations.begin(), out.invalidations.end(), invalidation) ==
      out.invalidations.end()) {
    out.invalidations.push_back(std::move(invalidation));
  }
}

void WalKeyMapper::MapRow(const Relation& relation, RowChange change, OldTuple old_kind,
                          const Tuple* old_tuple, const Tuple* new_tuple, WalChanges& out) const {
  const std::string table = TableName(relation.shape);
  for (const Match& match : relation.matches) {
    const KeySource& source = sources_[match.source];
    const auto fail = [&](std::string message) {
      out.errors.push_back({source.ns, "namespace " + source.ns + ": " + message, commit_lsn_});
    };
    if (!match.column) {
      fail(table + " has no column " + source.key_column + " (its key_column)");
      continue;
    }
    const size_t c = *match.column;
    const RelationColumn& column = relation.shape.columns[c];
    const std::string needs_identity =
        source.key_column + " is not in the replica identity of " + table +
        ", so an UPDATE or DELETE does not carry the old key; needs REPLICA IDENTITY FULL (or " +
        "USING INDEX of a unique index on " + source.key_column + ")";
    const std::string toasted = "key column " + source.key_column + " of " + table +
                                " is an unchanged TOASTed value that the change does not carry";

    KeyValue new_value, old_value;
    if (change != RowChange::kDelete) {
      const TupleValue& v = (*new_tuple)[c];
      switch (v.kind) {
        case TupleValue::Kind::kText:
          new_value = {KeyValue::State::kText, v.text, {}};
          break;
        case TupleValue::Kind::kNull:
          new_value = {KeyValue::State::kNull, {}, {}};
          break;
        case TupleValue::Kind::kUnchangedToast:
          // Unchanged, so the old row's value, if the change carries it (never in an INSERT).
          new_value = change == RowChange::kUpdate
                          ? KeyValue{KeyValue::State::kSame, {}, {}}
                          : KeyValue{KeyValue::State::kUnknown, {}, toasted};
          break;
      }
    }
    if (change != RowChange::kInsert) {
      if (old_kind != OldTuple::kNone) {
        const TupleValue& v = (*old_tuple)[c];
        switch (v.kind) {
          case TupleValue::Kind::kText:
            old_value = {KeyValue::State::kText, v.text, {}};
            break;
          case TupleValue::Kind::kNull:
            // An identity-only old row ('K') sends every column outside the identity as NULL.
            old_value = old_kind == OldTuple::kKey && !column.in_identity
                            ? KeyValue{KeyValue::State::kUnknown, {}, needs_identity}
                            : KeyValue{KeyValue::State::kNull, {}, {}};
            break;
          case TupleValue::Kind::kUnchangedToast:
            old_value = {KeyValue::State::kUnknown, {}, toasted};
            break;
        }
      } else if (column.in_identity) {
        // An UPDATE without an old row: pgoutput sends one whenever an identity column changes,
        // so the key is the new row's.
        old_value = {KeyValue::State::kSame, {}, {}};
      } else {
        old_value = {KeyValue::State::kUnknown, {}, needs_identity};
      }
    }
    // Each image that says "the same as the other" takes the other's value; both doing so (an
    // unchanged TOASTed identity column) leaves the key unknown.
    if (new_value.state == KeyValue::State::kSame && old_value.state == KeyValue::State::kSame) {
      new_value = old_value = {KeyValue::State::kUnknown, {}, toasted};
    } else if (new_value.state == KeyValue::State::kSame) {
      new_value = old_value;
    } else if (old_value.state == KeyValue::State::kSame) {
      old_value = new_value;
    }

    std::string why;
    for (const KeyValue* value : {&old_value, &new_value}) {
      const bool used =
          value == &old_value ? change != RowChange::kInsert : change != RowChange::kDelete;
      if (!used) continue;
      if (value->state == KeyValue::State::kText) {
        AddKey(source.ns, std::string(value->text), out);
      } else if (value->state == KeyValue::State::kUnknown && why.empty()) {
        why = value->why;
      }
    }
    if (!why.empty()) fail(why);
  }
}

Decoded<WalChanges> WalKeyMapper::Apply(const PgoutputMessage& message) {
  WalChanges out;
  std::string error;
  const auto need_transaction = [&](const char* what) {
    if (!in_transaction_) error = std::string("pgoutput: ") + what + " outside a transaction";
    return in_transaction_;
  };
  std::visit(Overloaded{
                 [&](const BeginMessage& m) {
                   if (in_transaction_) {
                     error = "pgoutput: Begin inside a transaction";
                     return;
                   }
                   in_transaction_ = true;
                   commit_lsn_ = m.final_lsn;
                 },
                 [&](const CommitMessage& m) {
                   if (!need_transaction("Commit")) return;
                   if (m.commit_lsn != commit_lsn_) {
                     error = "pgoutput: Commit at " + FormatLsn(m.commit_lsn) +
                             " ends the transaction that Begin said commits at " +
                             FormatLsn(commit_lsn_);
                     return;
                   }
                   in_transaction_ = false;
                   out.commit_end_lsn = m.end_lsn;
                 },
                 [&](const RelationMessage& m) { OnRelation(m); },
                 [&](const InsertMessage& m) {
                   if (!need_transaction("Insert")) return;
                   if (const Relation* r = Find(m.relid, &m.new_tuple, error)) {
                     MapRow(*r, RowChange::kInsert, OldTuple::kNone, nullptr, &m.new_tuple, out);
                   }
                 },
                 [&](const UpdateMessage& m) {
                   if (!need_transaction("Update")) return;
                   const Relation* r = Find(m.relid, &m.new_tuple, error);
                   if (r && m.old_kind != OldTuple::kNone) r = Find(m.relid, &m.old_tuple, error);
                   if (r)
                     MapRow(*r, RowChange::kUpdate, m.old_kind, &m.old_tuple, &m.new_tuple, out);
                 },
                 [&](const DeleteMessage& m) {
                   if (!need_transaction("Delete")) return;
                   if (const Relation* r = Find(m.relid, &m.old_tuple, error)) {
                     MapRow(*r, RowChange::kDelete, m.old_kind, &m.old_tuple, nullptr, out);
                   }
                 },
                 [&](const TruncateMessage& m) {
                   if (!need_transaction("Truncate")) return;
                   for (uint32_t relid : m.relids) {
                     const Relation* r = Find(relid, nullptr, error);
                     if (!r) return;
                     for (const Match& match : r->matches) {
                       WalInvalidation flush;
                       flush.kind = WalInvalidation::Kind::kFlushNamespace;
                       flush.ns = sources_[match.source].ns;
                       flush.commit_lsn = commit_lsn_;
                       if (std::find(out.invalidations.begin(), out.invalidations.end(), flush) ==
                           out.invalidations.end()) {
                         out.invalidations.push_back(std::move(flush));
                       }
                     }
                   }
                 },
                 // No row changes: Origin, Type, and logical messages (which may also come outside
                 // a transaction, when not transactional).
                 [&](const OriginMessage&) {},
                 [&](const TypeMessage&) {},
                 [&](const LogicalMessage&) {},
             },
             message);
  if (!error.empty()) return DecodeError{std::move(error)};
  return out;
}

}  // namespace corral::pg
