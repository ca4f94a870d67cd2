// libpqxx side of the loader: one connection, one short read-only transaction per load, error
// classification (broken connection vs. SQL error) and row conversion.
#include "pg-loader/session.h"

#include <chrono>
#include <exception>
#include <optional>
#include <pqxx/pqxx>
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

std::string StatementName(size_t statement) { return "corral_" + std::to_string(statement); }

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
  const pqxx::row row = result[0];
  std::vector<Column> columns;
  columns.reserve(width);
  for (pqxx::row::size_type i = 0; i < width; ++i) {
    const pqxx::field field = row[i];
    Column column;
    column.name = result.column_name(i);
    column.type_oid = static_cast<uint32_t>(result.column_type(i));
    column.is_null = field.is_null();
    if (!column.is_null) column.text = std::string_view(field.c_str(), field.size());
    columns.push_back(column);
  }
  std::optional<std::string> value = RowToValue(columns);
  if (value) {
    out.kind = Kind::kValue;
    out.data = std::move(*value);
  } else {
    out.kind = Kind::kNotFound;
  }
  return out;
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
  std::vector<bool> prepared;  // per statement index: prepare() registered on this connection

  // Runs `body(txn)` in a read-only transaction with the statement timeout set, and turns every
  // failure into a SessionResult. `body` returns the converted result.
  template <typename Body>
  SessionResult InTransaction(int64_t timeout_ms, Body body) {
    const auto start = std::chrono::steady_clock::now();
    SessionResult out;
    try {
      pqxx::read_transaction txn(*connection);
      // SET LOCAL: it ends with the transaction, so nothing leaks into a pooled server session.
      txn.exec0("SET LOCAL statement_timeout = " + std::to_string(timeout_ms));
      out = body(txn);
      txn.commit();
    } catch (const pqxx::broken_connection& e) {
      out = Lost(e.what());
    } catch (const pqxx::sql_error& e) {
      if (IsConnectionSqlState(e.sqlstate()) || !connection->is_open()) {
        out = Lost(e.what());
      } else {
        out = SessionResult{Kind::kError, FirstErrorLine(e.what())};
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
    return {};
  } catch (const std::exception& e) {
    return FirstErrorLine(e.what());
  }
}

void Session::Close() {
  impl_->connection.reset();
  impl_->prepared.clear();
}

bool Session::is_open() const { return impl_->connection && impl_->connection->is_open(); }

int Session::socket() const { return impl_->connection ? impl_->connection->sock() : -1; }

SessionResult Session::Load(size_t statement, const std::string& sql, const std::string& id,
                            int64_t timeout_ms, bool prepared) {
  if (!impl_->connection) return Impl::Lost("not connected");
  if (prepared) {
    if (impl_->prepared.size() <= statement) impl_->prepared.resize(statement + 1, false);
    if (!impl_->prepared[statement]) {
      try {
        // Only registers the text; libpqxx sends PREPARE on first use, inside the transaction.
        impl_->connection->prepare(StatementName(statement), sql);
        impl_->prepared[statement] = true;
      } catch (const std::exception& e) {
        return SessionResult{Kind::kError, FirstErrorLine(e.what())};
      }
    }
  }
  return impl_->InTransaction(timeout_ms, [&](pqxx::read_transaction& txn) {
    const pqxx::result result =
        prepared ? txn.exec_prepared(StatementName(statement), id) : txn.exec_params(sql, id);
    return Convert(result);
  });
}

HealthResult Session::CheckHealth(int64_t timeout_ms) {
  HealthResult health;
  if (!impl_->connection) {
    health.error = "not connected";
    return health;
  }
  double lag = 0;
  bool lag_known = true;
  SessionResult result = impl_->InTransaction(timeout_ms, [&](pqxx::read_transaction& txn) {
    const pqxx::row row = txn.exec1(kLagSql);
    lag_known = !row[0].is_null();
    lag = lag_known ? row[0].as<double>() : 0.0;
    return SessionResult{Kind::kValue, {}};
  });
  if (result.kind == Kind::kValue) {
    health.ok = true;
    health.lag_known = lag_known;
    health.lag_seconds = lag;
  } else {
    health.error = result.data;
  }
  return health;
}

}  // namespace corral::pg
