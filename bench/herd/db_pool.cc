// DbPool (db_pool.h): one libpqxx connection per worker thread, prepared statements, autocommit
// loads. A broken connection fails the job in hand and is reopened for the next one.
#include "bench/herd/db_pool.h"

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

namespace corral::herd {

namespace {

std::string StatementName(size_t i) { return "herd_" + std::to_string(i); }

std::string FirstLine(const std::string& text) { return text.substr(0, text.find('\n')); }

LoadDone Convert(const pqxx::result& result) {
  LoadDone out;
  if (result.empty()) {
    out.kind = LoadDone::Kind::kNotFound;
    return out;
  }
  if (result.size() > 1 || result.columns() == 0) {
    out.value = "query returned " + std::to_string(result.size()) + " rows, " +
                std::to_string(result.columns()) + " columns";
    return out;
  }
  const pqxx::row row = result[0];
  if (result.columns() == 1) {
    if (row[0].is_null()) {
      out.kind = LoadDone::Kind::kNotFound;
    } else {
      out.kind = LoadDone::Kind::kValue;
      out.value.assign(row[0].c_str(), row[0].size());
    }
    return out;
  }
  nlohmann::ordered_json object = nlohmann::ordered_json::object();
  for (pqxx::row::size_type i = 0; i < result.columns(); ++i) {
    if (row[i].is_null()) {
      object[result.column_name(i)] = nullptr;
    } else {
      object[result.column_name(i)] = std::string(row[i].c_str(), row[i].size());
    }
  }
  out.kind = LoadDone::Kind::kValue;
  out.value = object.dump();
  return out;
}

}  // namespace

DbPool::DbPool(std::vector<std::string> conninfos, std::vector<std::string> queries,
               int connections, int64_t statement_timeout_ms)
    : conninfos_(std::move(conninfos)),
      queries_(std::move(queries)),
      connection_count_(connections),
      statement_timeout_ms_(statement_timeout_ms) {}

DbPool::~DbPool() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    queue_.clear();
  }
  work_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

std::string DbPool::Start() {
  if (conninfos_.empty()) return "no database to load from";
  for (int i = 0; i < connection_count_; ++i) {
    workers_.emplace_back([this, i] { Work(static_cast<size_t>(i)); });
  }
  std::unique_lock lock(start_mu_);
  start_cv_.wait(lock, [&] { return started_ == workers_.size(); });
  return start_error_;
}

void DbPool::SetNotify(std::function<void()> notify) {
  std::lock_guard lock(notify_mu_);
  notify_ = std::move(notify);
}

void DbPool::NewEpoch() {
  std::lock_guard lock(mu_);
  ++epoch_;
  done_.clear();
}

void DbPool::Submit(LoadJob job) {
  {
    std::lock_guard lock(mu_);
    queue_.push_back({epoch_, std::move(job)});
  }
  work_cv_.notify_one();
}

std::vector<LoadDone> DbPool::TakeDone() {
  std::lock_guard lock(mu_);
  std::vector<LoadDone> out;
  out.swap(done_);
  return out;
}

size_t DbPool::outstanding() const {
  std::lock_guard lock(mu_);
  return queue_.size() + running_;
}

size_t DbPool::DropQueued() {
  std::lock_guard lock(mu_);
  size_t n = queue_.size();
  queue_.clear();
  if (running_ == 0) idle_cv_.notify_all();
  return n;
}

bool DbPool::WaitIdle(TimePoint deadline) {
  std::unique_lock lock(mu_);
  return idle_cv_.wait_until(lock, deadline, [&] { return queue_.empty() && running_ == 0; });
}

std::vector<LoadDone> DbPool::RunAll(std::vector<LoadJob> jobs, TimePoint deadline) {
  const size_t n = jobs.size();
  std::vector<LoadDone> results(n);
  std::vector<bool> have(n, false);
  size_t remaining = n;
  std::mutex m;
  std::condition_variable cv;
  auto previous = [&] {
    std::lock_guard lock(notify_mu_);
    return notify_;
  }();
  NewEpoch();
  SetNotify([&] {
    std::lock_guard lock(m);
    cv.notify_all();
  });
  for (size_t i = 0; i < n; ++i) {
    jobs[i].cookie = i;
    Submit(std::move(jobs[i]));
  }
  while (remaining > 0) {
    for (LoadDone& d : TakeDone()) {
      if (d.cookie < n && !have[d.cookie]) {
        have[d.cookie] = true;
        results[d.cookie] = std::move(d);
        --remaining;
      }
    }
    if (remaining == 0) break;
    std::unique_lock lock(m);
    if (cv.wait_until(lock, std::min(deadline, Clock::now() + Millis(20))) ==
            std::cv_status::timeout &&
        Clock::now() >= deadline) {
      break;
    }
  }
  for (size_t i = 0; i < n; ++i) {
    if (!have[i]) results[i].value = "timed out";
  }
  SetNotify(previous);
  NewEpoch();
  return results;
}

void DbPool::Work(size_t index) {
  const std::string& conninfo = conninfos_[index % conninfos_.size()];
  std::unique_ptr<pqxx::connection> conn;
  auto open = [&]() -> std::string {
    try {
      conn = std::make_unique<pqxx::connection>(conninfo);
      pqxx::nontransaction setup(*conn);
      setup.exec0("SET statement_timeout = " + std::to_string(statement_timeout_ms_));
      setup.commit();
      for (size_t s = 0; s < queries_.size(); ++s) conn->prepare(StatementName(s), queries_[s]);
      return "";
    } catch (const std::exception& e) {
      conn.reset();
      return FirstLine(e.what());
    }
  };
  std::string error = open();
  {
    std::lock_guard lock(start_mu_);
    if (!error.empty() && start_error_.empty()) start_error_ = conninfo + ": " + error;
    ++started_;
  }
  start_cv_.notify_all();

  while (true) {
    LoadJob job;
    uint64_t epoch;
    {
      std::unique_lock lock(mu_);
      work_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      epoch = queue_.front().epoch;
      job = std::move(queue_.front().job);
      queue_.pop_front();
      ++running_;
    }
    LoadDone done;
    done.cookie = job.cookie;
    if (!conn) {
      std::string why = open();
      if (!why.empty()) done.value = "connect: " + why;
    }
    if (conn) {
      try {
        pqxx::nontransaction txn(*conn);
        done = Convert(txn.exec_prepared(StatementName(job.statement), job.id));
        done.cookie = job.cookie;
      } catch (const pqxx::broken_connection& e) {
        done.kind = LoadDone::Kind::kError;
        done.value = "connection lost: " + FirstLine(e.what());
        conn.reset();
      } catch (const std::exception& e) {
        done.kind = LoadDone::Kind::kError;
        done.value = FirstLine(e.what());
      }
    }
    {
      std::lock_guard lock(mu_);
      if (epoch == epoch_) done_.push_back(std::move(done));
      --running_;
      if (queue_.empty() && running_ == 0) idle_cv_.notify_all();
    }
    std::lock_guard lock(notify_mu_);
    if (notify_) notify_();
  }
}

}  // namespace corral::herd
