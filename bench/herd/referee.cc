// Referee (referee.h): one libpqxx connection per node; a sample is one round trip per node that
// reads pg_stat_statements(false) (no query texts) and pg_stat_activity together. Query texts are
// read only for queryids not seen before, to learn which ones are the namespace query.
#include "bench/herd/referee.h"

#include <cctype>
#include <map>
#include <pqxx/pqxx>

namespace corral::herd {

namespace {

std::string FirstLine(const std::string& text) { return text.substr(0, text.find('\n')); }

bool IsWordChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

constexpr char kSampleSql[] =
    "SELECT 's', queryid::text, calls FROM pg_stat_statements(false)"
    " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " UNION ALL SELECT 'a', query, 0 FROM pg_stat_activity"
    " WHERE state = 'active' AND pid <> pg_backend_pid() AND datname = current_database()";

constexpr char kTextsSql[] =
    "SELECT queryid::text, query FROM pg_stat_statements"
    " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())";

}  // namespace

std::string NormalizeSql(std::string_view sql) {
  std::string out;
  out.reserve(sql.size());
  size_t i = 0;
  auto put_space = [&] {
    if (!out.empty() && out.back() != ' ') out += ' ';
  };
  while (i < sql.size()) {
    char c = sql[i];
    if (std::isspace(static_cast<unsigned char>(c))) {
      put_space();
      ++i;
    } else if (c == '\'') {  // string literal, '' escapes a quote
      ++i;
      while (i < sql.size()) {
        if (sql[i] == '\'') {
          if (i + 1 < sql.size() && sql[i + 1] == '\'') {
            i += 2;
            continue;
          }
          ++i;
          break;
        }
        ++i;
      }
      out += '?';
    } else if (c == '$' && i + 1 < sql.size() &&
               std::isdigit(static_cast<unsigned char>(sql[i + 1]))) {
      ++i;
      while (i < sql.size() && std::isdigit(static_cast<unsigned char>(sql[i]))) ++i;
      out += '?';
    } else if (std::isdigit(static_cast<unsigned char>(c)) ||
               (c == '.' && i + 1 < sql.size() &&
                std::isdigit(static_cast<unsigned char>(sql[i + 1])))) {
      while (i < sql.size() && (std::isalnum(static_cast<unsigned char>(sql[i])) || sql[i] == '.'))
        ++i;
      out += '?';
    } else if (IsWordChar(c)) {
      size_t start = i;
      while (i < sql.size() && IsWordChar(sql[i])) ++i;
      std::string word(sql.substr(start, i - start));
      for (char& ch : word) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      out += (word == "true" || word == "false" || word == "null") ? std::string("?") : word;
    } else if (c == '"') {  // quoted identifier, kept verbatim
      size_t end = sql.find('"', i + 1);
      end = end == std::string_view::npos ? sql.size() : end + 1;
      out.append(sql.substr(i, end - i));
      i = end;
    } else {
      out += c;
      ++i;
    }
  }
  while (!out.empty() && (out.back() == ' ' || out.back() == ';')) out.pop_back();
  return out;
}

struct Referee::Node {
  std::string conninfo;
  std::unique_ptr<pqxx::connection> conn;
  std::map<std::string, uint64_t> kind;  // queryid → bit q set if it is queries[q]
  std::vector<int64_t> last_calls;       // per query, for a node that stops answering
};

Referee::Referee(std::vector<std::string> nodes, std::vector<std::string> queries) {
  for (const auto& q : queries) normalized_.push_back(NormalizeSql(q));
  for (auto& n : nodes) {
    auto node = std::make_unique<Node>();
    node->conninfo = std::move(n);
    node->last_calls.assign(normalized_.size(), 0);
    nodes_.push_back(std::move(node));
  }
}

Referee::~Referee() {
  if (sampling_) StopSampling();
}

std::string Referee::Connect() {
  std::lock_guard lock(mu_);
  for (auto& node : nodes_) {
    try {
      node->conn = std::make_unique<pqxx::connection>(node->conninfo);
      pqxx::nontransaction txn(*node->conn);
      txn.exec("SELECT calls FROM pg_stat_statements(false) LIMIT 1");
    } catch (const std::exception& e) {
      node->conn.reset();
      std::string why = FirstLine(e.what());
      if (why.find("pg_stat_statements") != std::string::npos) {
        why += " (it must be in shared_preload_libraries and created in the database)";
      }
      return node->conninfo + ": " + why;
    }
  }
  return "";
}

bool Referee::Sample(size_t query, int64_t& calls, int& active, std::string* error) {
  calls = 0;
  active = 0;
  bool ok = true;
  for (auto& node : nodes_) {
    try {
      if (!node->conn) node->conn = std::make_unique<pqxx::connection>(node->conninfo);
      pqxx::nontransaction txn(*node->conn);
      pqxx::result rows = txn.exec(kSampleSql);
      bool unknown = false;
      for (const auto& row : rows) {
        if (row[0].c_str()[0] == 's' && !node->kind.contains(row[1].c_str())) unknown = true;
      }
      if (unknown) {
        for (const auto& row : txn.exec(kTextsSql)) {
          std::string text = NormalizeSql(row[1].c_str());
          uint64_t kind = 0;
          for (size_t q = 0; q < normalized_.size(); ++q) {
            if (normalized_[q] == text) kind |= uint64_t{1} << q;
          }
          node->kind[row[0].c_str()] = kind;
        }
      }
      std::vector<int64_t> sums(normalized_.size(), 0);
      for (const auto& row : rows) {
        if (row[0].c_str()[0] == 's') {
          auto it = node->kind.find(row[1].c_str());
          if (it == node->kind.end()) continue;
          for (size_t q = 0; q < normalized_.size(); ++q) {
            if (it->second & (uint64_t{1} << q)) sums[q] += row[2].as<int64_t>();
          }
        } else if (query < normalized_.size() &&
                   NormalizeSql(row[1].c_str()) == normalized_[query]) {
          ++active;
        }
      }
      node->last_calls = sums;
    } catch (const std::exception& e) {
      if (error != nullptr && error->empty()) *error = node->conninfo + ": " + FirstLine(e.what());
      try {
        if (node->conn && !node->conn->is_open()) node->conn.reset();
      } catch (...) {
        node->conn.reset();
      }
      ok = false;
    }
    if (query < node->last_calls.size()) calls += node->last_calls[query];
  }
  return ok;
}

int64_t Referee::Calls(size_t query, std::string* error) {
  std::lock_guard lock(mu_);
  int64_t calls = 0;
  int active = 0;
  return Sample(query, calls, active, error) ? calls : -1;
}

void Referee::StartSampling(size_t query, TimePoint t0, Clock::duration period) {
  samples_.clear();
  sampling_ = true;
  sampler_ = std::thread([this, query, t0, period] {
    TimePoint next = Clock::now();
    while (sampling_) {
      int64_t calls = 0;
      int active = 0;
      {
        std::lock_guard lock(mu_);
        Sample(query, calls, active, nullptr);
      }
      TimePoint now = Clock::now();
      samples_.push_back({SecondsBetween(t0, now), calls, active});
      latest_calls_ = calls;
      latest_active_ = active;
      next += period;
      if (next < now) next = now;
      while (sampling_ && Clock::now() < next) {
        std::this_thread::sleep_for(std::min<Clock::duration>(next - Clock::now(), Millis(10)));
      }
    }
  });
}

std::vector<DbSample> Referee::StopSampling() {
  sampling_ = false;
  if (sampler_.joinable()) sampler_.join();
  return std::move(samples_);
}

std::string Referee::SetSetting(const std::string& name, const std::string& value) {
  for (char c : name) {
    if (!IsWordChar(c) && c != '.') return "bad setting name '" + name + "'";
  }
  std::lock_guard lock(mu_);
  for (auto& node : nodes_) {
    try {
      if (!node->conn) node->conn = std::make_unique<pqxx::connection>(node->conninfo);
      pqxx::nontransaction txn(*node->conn);
      // SET first: ALTER SYSTEM only accepts a custom (dotted) name the session already knows.
      txn.exec("SET " + name + " = " + txn.quote(value));
      txn.exec("ALTER SYSTEM SET " + name + " = " + txn.quote(value));
      txn.exec("SELECT pg_reload_conf()");
    } catch (const std::exception& e) {
      return node->conninfo + ": " + FirstLine(e.what());
    }
  }
  return "";
}

}  // namespace corral::herd
