// libpqxx side of the loader: one connection, one short read-only transaction per load, error
// classification (broken connection vs. SQL error) and row conversion.
#include "pg-loader/session.h"

#include <charconv>
#include <chrono>
#include <exception>
#include <optional>
#include <pqxx/pqxx>
#include <span>
#include <utility>
#include <vector>

#include "pg-loader/value.h"

namespace corral::pg {
namespace {

using Kind = LoadOutcome::Kind;

// SQLSTATEs that mean the session is gone rather than that the statement failed: class 08
// (connection exception), 57P01..57P04 (shutdown, crash, cannot connect now, database dropped) and
// 25P03 (idle-in-transaction timeout, which terminates the session).
bool IsConnectionSqlState(const std::string& sqlstate) {
  return sqlstate.starts_with("08") || sqlstate.starts_with("57P") || sqlstate == "25P03";
}

// libpq sends text parameters as C strings, so an id with a NUL byte cannot be asked for at all.
constexpr char kNulIdError[] = "id contains a NUL byte";

std::string StatementName(size_t statement) { return "corral_" + std::to_string(statement); }
std::string BatchStatementName(size_t statement) {
  return "corral_batch_" + std::to_string(statement);
}

// Fills `columns` with fields [first, width) of `row`; the views borrow from `result`.
void RowColumns(const pqxx::result& result, const pqxx::row& row, pqxx::row::size_type first,
                std::vector<Column>* columns) {
  columns->clear();
  const auto width = result.columns();
  for (pqxx::row::size_type i = first; i < width; ++i) {
    const pqxx::field field = row[i];
    Column column;
    column.name = result.column_name(i);
    column.type_oid = static_cast<uint32_t>(result.column_type(i));
    column.is_null = field.is_null();
    if (!column.is_null) column.text = std::string_view(field.c_str(), field.size());
    columns->push_back(column);
  }
}

SessionResult Convert(const pqxx::result& result) {
  SessionResult out;
  if (result.empty()) {
    out.kind = Kind::kNotFound;
    return out;
  }
  if (result.size() > 1) {
    out.data = "query returned " + std::to_string(result.size()) + " rows";
    return out;
  }
  const auto width = result.columns();
  if (width == 0) {
    out.data = "query returned no columns";
    return out;
  }
  std::vector<Column> columns;
  columns.reserve(width);
  RowColumns(result, result[0], 0, &columns);
  std::optional<std::string> value = RowToValue(columns);
  if (value) {
    out.kind = Kind::kValue;
    out.data = std::move(*value);
  } else {
    out.kind = Kind::kNotFound;
  }
  return out;
}

// A batch result: the first column is the id as text, the rest the value.
std::vector<KeyAnswer> ConvertBatch(const pqxx::result& result, std::span<const std::string> ids) {
  const auto width = result.columns();
  if (width < 2) {
    return AnswerAll(ids.size(), Kind::kError,
                     "batch query returned " + std::to_string(width) +
                         " column(s); it needs the id and the value");
  }
  BatchAnswers answers(ids);
  std::vector<Column> columns;
  columns.reserve(width - 1);
  for (const pqxx::row& row : result) {
    const pqxx::field id = row[0];
    if (id.is_null()) continue;  // cannot be an id that was asked for
    RowColumns(result, row, 1, &columns);
    answers.AddRow(std::string_view(id.c_str(), id.size()), columns);
  }
  return answers.Take();
}

// A position as the text of a numeric (pg_lsn - '0/0'); 0 when NULL or not a number.
uint64_t ParsePosition(const pqxx::field& field) {
  if (field.is_null()) return 0;
  uint64_t position = 0;
  const char* begin = field.c_str();
  const char* end = begin + field.size();
  auto [ptr, ec] = std::from_chars(begin, end, position);
  return ec == std::errc() ? position : 0;
}

}  // namespace

std::string FirstErrorLine(const std::string& what) {
  std::string_view line(what);
  line = line.substr(0, line.find('\n'));
  for (std::string_view prefix : {"ERROR:", "FATAL:", "PANIC:"}) {
    if (line.starts_with(prefix)) {
      line.remove_prefix(prefix.size());
      break;
    }
  }
  while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
  while (!line.empty() && (line.back() == ' ' || line.back() == '\r')) line.remove_suffix(1);
  if (line.empty()) return "unknown database error";
  return std::string(line);
}

struct Session::Impl {
  std::string conninfo;
  std::unique_ptr<pqxx::connection> connection;
  std::vector<bool> prepared;        // per statement index: prepare() registered on this connection
  std::vector<bool> prepared_batch;  // the same for batch statements

  // Registers `sql` under `name` once per connection (libpqxx sends PREPARE on first use, inside
  // the transaction). Returns an empty string, or the error.
  std::string Prepare(std::vector<bool>& flags, size_t statement, const std::string& name,
                      const std::string& sql) {
    if (flags.size() <= statement) flags.resize(statement + 1, false);
    if (flags[statement]) return {};
    try {
      connection->prepare(name, sql);
      flags[statement] = true;
      return {};
    } catch (const std::exception& e) {
      return FirstErrorLine(e.what());
    }
  }

  // Runs `sql`, which returns one row, under InTransaction and hands the row to `read`. Empty on
  // success, else why not (the health and position checks).
  template <typename Read>
  std::string ReadRow(int64_t timeout_ms, const char* sql, Read read) {
    if (!connection) return "not connected";
    SessionResult result = InTransaction(timeout_ms, [&](pqxx::read_transaction& txn) {
      read(txn.exec1(sql));
      return SessionResult{Kind::kValue, {}};
    });
    return result.kind == Kind::kValue ? std::string() : std::move(result.data);
  }

  // Runs `body(txn)` in a read-only transaction with the statement timeout set, and turns every
  // failure into a SessionResult. `body` returns the converted result.
  template <typename Body>
  SessionResult InTransaction(int64_t timeout_ms, Body body) {
    const auto start = std::chrono::steady_clock::now();
    SessionResult out;
    try {
      pqxx::read_transaction txn(*connection);
      // SET LOCAL: it ends with the transaction, so nothing leaks into a pooled server session.
      // Sent with the position query as one simple-protocol message: one round trip for both.
      const pqxx::row row = txn.exec1(
          "SET LOCAL statement_timeout = " + std::to_string(timeout_ms) + "; " + kPositionSql);
      const uint64_t position = ParsePosition(row[0]);
      out = body(txn);
      txn.commit();
      out.position = position;
    } catch (const pqxx::broken_connection& e) {
      out = Lost(e.what());
    } catch (const pqxx::sql_error& e) {
      if (IsConnectionSqlState(e.sqlstate()) || !connection->is_open()) {
        out = Lost(e.what());
      } else {
        out = SessionResult{Kind::kError, FirstErrorLine(e.what())};
        out.sqlstate = e.sqlstate();
      }
    } catch (const pqxx::in_doubt_error& e) {
      out = Lost(e.what());
    } catch (const std::exception& e) {
      if (!connection->is_open()) {
        out = Lost(e.what());
      } else {
        out = SessionResult{Kind::kError, FirstErrorLine(e.what())};
      }
    }
    out.micros = std::chrono::duration_cast<std::chrono::microseconds>(
                     std::chrono::steady_clock::now() - start)
                     .count();
    return out;
  }

  static SessionResult Lost(const std::string& what) {
    SessionResult out{Kind::kError, FirstErrorLine(what)};
    out.connection_lost = true;
    return out;
  }
};

Session::Session(std::string conninfo) : impl_(std::make_unique<Impl>()) {
  impl_->conninfo = std::move(conninfo);
}

Session::~Session() = default;

std::string Session::Connect() {
  if (is_open()) return {};
  Close();
  try {
    auto connection = std::make_unique<pqxx::connection>(impl_->conninfo);
    // libpqxx 6 would otherwise reconnect silently on the next use after a break; the loader wants
    // to see the break (to mark the server down and retry elsewhere) and reconnects by itself.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    connection->inhibit_reactivation(true);
#pragma GCC diagnostic pop
    impl_->connection = std::move(connection);
    impl_->prepared.clear();
    impl_->prepared_batch.clear();
    return {};
  } catch (const std::exception& e) {
    return FirstErrorLine(e.what());
  }
}

void Session::Close() {
  impl_->connection.reset();
  impl_->prepared.clear();
  impl_->prepared_batch.clear();
}

bool Session::is_open() const { return impl_->connection && impl_->connection->is_open(); }

int Session::socket() const { return impl_->connection ? impl_->connection->sock() : -1; }

SessionResult Session::Load(size_t statement, const std::string& sql, const std::string& id,
                            int64_t timeout_ms, bool prepared) {
  if (!impl_->connection) return Impl::Lost("not connected");
  if (id.find('\0') != std::string::npos) return SessionResult{Kind::kError, kNulIdError};
  if (prepared) {
    std::string error = impl_->Prepare(impl_->prepared, statement, StatementName(statement), sql);
    if (!error.empty()) return SessionResult{Kind::kError, std::move(error)};
  }
  return impl_->InTransaction(timeout_ms, [&](pqxx::read_transaction& txn) {
    const pqxx::result result =
        prepared ? txn.exec_prepared(StatementName(statement), id) : txn.exec_params(sql, id);
    return Convert(result);
  });
}

SessionBatchResult Session::LoadBatch(size_t statement, const std::string& batch_sql,
                                      std::span<const std::string> ids, int64_t timeout_ms,
                                      bool prepared) {
  SessionBatchResult out;
  if (!impl_->connection) {
    out.connection_lost = true;
    out.lost_reason = "not connected";
    return out;
  }
  if (prepared) {
    std::string error =
        impl_->Prepare(impl_->prepared_batch, statement, BatchStatementName(statement), batch_sql);
    if (!error.empty()) {
      out.answers = AnswerAll(ids.size(), Kind::kError, error);
      return out;
    }
  }
  // An id with a NUL byte would cut the array literal short and fail the whole batch; it is left
  // out and answered with an error of its own. (No result row can carry it, so nothing matches.)
  std::vector<std::string> sendable;
  sendable.reserve(ids.size());
  for (const std::string& id : ids) {
    if (id.find('\0') == std::string::npos) sendable.push_back(id);
  }
  const std::string array = EncodeTextArray(sendable);
  SessionResult status = impl_->InTransaction(timeout_ms, [&](pqxx::read_transaction& txn) {
    const pqxx::result result = prepared ? txn.exec_prepared(BatchStatementName(statement), array)
                                         : txn.exec_params(batch_sql, array);
    out.answers = ConvertBatch(result, ids);
    return SessionResult{Kind::kValue, {}};
  });
  out.micros = status.micros;
  out.position = status.position;
  if (status.connection_lost) {
    out.answers.clear();
    out.connection_lost = true;
    out.lost_reason = std::move(status.data);
  } else if (status.kind == Kind::kError) {
    // The query failed (or the commit did): nothing it returned counts.
    out.answers = AnswerAll(ids.size(), Kind::kError, status.data);
    out.data_error = status.sqlstate.starts_with("22");
  }
  if (!out.connection_lost) {
    for (size_t i = 0; i < ids.size(); ++i) {
      if (ids[i].find('\0') != std::string::npos) out.answers[i] = {Kind::kError, kNulIdError};
    }
  }
  return out;
}

HealthResult Session::CheckHealth(int64_t timeout_ms) {
  HealthResult health;
  health.error = impl_->ReadRow(timeout_ms, kLagSql, [&](const pqxx::row& row) {
    health.in_recovery = row[0].as<bool>();
    health.receive_lsn = row[1].as<double>();
    health.replay_lsn = row[2].as<double>();
  });
  if (!health.error.empty()) return HealthResult{.error = std::move(health.error)};
  health.ok = true;
  return health;
}

PrimaryPosition Session::CurrentPosition(int64_t timeout_ms) {
  // Asked explicitly: the transaction's own position is 0 under another isolation level.
  PrimaryPosition position;
  position.error = impl_->ReadRow(timeout_ms, kCurrentPositionSql, [&](const pqxx::row& row) {
    position.inserted = ParsePosition(row[0]);
    position.flushed = ParsePosition(row[1]);
  });
  if (!position.error.empty()) return PrimaryPosition{.error = std::move(position.error)};
  if (position.inserted == 0)
    return PrimaryPosition{.error = "the primary reported no WAL position"};
  position.ok = true;
  return position;
}

}  // namespace corral::pg
